"""Screenshot the web explorer serving a model (README picture).

    python tools/web_screenshot.py --out docs/images/web.png [--ckpt RUN]
    python tools/web_screenshot.py --out docs/images/web_mobile.png --viewport 390x844 --full-page

Starts `facevae serve` on a free port, waits for the page in headless Debian
chromium, moves an attribute slider, and saves a screenshot of the viewport (the
layout check: the edited face must stay in view) or of the whole page.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server at {url} did not come up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--attribute", default="Smiling", help="the slider moved (a lower one shows the sticky face)")
    ap.add_argument("--strength", type=float, default=2.0)
    ap.add_argument("--viewport", default="1280x900", help="WIDTHxHEIGHT in CSS pixels")
    ap.add_argument("--full-page", action="store_true", help="the whole page, not only the viewport")
    args = ap.parse_args()
    port = free_port()
    cmd = [sys.executable, "-m", "facevae", "serve", "--port", str(port)] + (["--ckpt", args.ckpt] if args.ckpt else [])
    server = subprocess.Popen(cmd)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_up(url)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            width, height = map(int, args.viewport.lower().split("x"))
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#faces img")
            page.wait_for_selector("#edited img")
            box = page.locator(f"#slider-{args.attribute} input[type=number]")
            if box.count():
                box.scroll_into_view_if_needed()
                box.fill(str(args.strength))
                box.press("Enter")
                time.sleep(2)
            page.screenshot(path=str(args.out), full_page=args.full_page)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

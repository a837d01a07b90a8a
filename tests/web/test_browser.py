"""`facevae serve` in a real browser: Debian's headless chromium driven by Playwright.

The server runs as a subprocess (`python -m facevae serve`) on a tiny model
trained for a few steps on a slice of the mini CelebA. The tests share one page
and run in file order. The page's screenshot is written to $FACEVAE_ARTIFACTS
(default: a pytest temp folder) as web.png; FACEVAE_ARTIFACTS=docs/images
refreshes the picture in the docs.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
START_TIMEOUT_S = 180  # a loaded 2-core machine can take minutes to import Gradio and torch
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="browser tests skipped: chromium is not installed; "
                                                     "`sudo make browser` installs Debian's (needs root)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[web]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"facevae serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"facevae serve did not answer on {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(web_run, web_data, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "facevae", "serve", "--ckpt", str(web_run), "--data", str(web_data),
           "--port", str(port), "--faces", "8", "--no-align"]  # its upload tests use synthetic, faceless pictures
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    try:
        _wait_until_up(proc, url, log)
        yield proc, url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = os.environ.get("FACEVAE_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(server):
    """(new_page(width, height), urls asked of anything but our server): every page is loaded and offline."""
    _, url, _ = server
    outside: list[str] = []
    local = url.rstrip("/")

    def route(r):
        # anything not served by our own server is recorded and refused, so nothing can hang on it
        if r.request.url.startswith(local) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)

        def new_page(width: int, height: int):
            page = chromium.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            page.route("**/*", route)
            page.goto(url)
            # the first answer (model start-up, Gradio's assets) can take a while on a loaded machine
            page.wait_for_selector("#faces img", timeout=START_TIMEOUT_S * 1000)
            page.wait_for_selector("#edited img")
            return page

        try:
            yield new_page, outside
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser_page(browser, artifacts):
    new_page, outside = browser
    page = new_page(1400, 1000)
    try:
        yield page, outside
    finally:
        page.screenshot(path=str(artifacts / "web.png"), full_page=True)


def _src(page, selector: str) -> str:
    return page.locator(selector).first.get_attribute("src")


def _bytes(page, src: str) -> bytes:
    return page.request.get(src).body()


def _wait_src_change(page, selector: str, before: str) -> str:
    page.wait_for_function("([sel, old]) => { const e = document.querySelector(sel); return e && e.src !== old; }",
                           arg=[selector, before])
    return _src(page, selector)


def _settled_src(page, selector: str, quiet_s: float = 1.5, limit_s: float = 60) -> str:
    """The src once it has stopped changing for `quiet_s`: a loaded machine can deliver a redraw late."""
    src, since, start = _src(page, selector), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - start < limit_s:
        page.wait_for_timeout(200)
        now = _src(page, selector)
        if now != src:
            src, since = now, time.monotonic()
    return src


def _type_and_leave(page, slider: str, text: str) -> None:
    """Type into a slider's number box and leave it with Tab, as a user does."""
    box = page.locator(f"{slider} input[type=number]")
    box.fill(text)
    box.press("Tab")


def _wait_value(page, slider: str, value: str) -> None:
    page.wait_for_function("([sel, v]) => document.querySelector(sel).value === v",
                           arg=[f"{slider} input[type=number]", value])


def _slide_to(page, slider: str, value: str, image: str) -> str:
    """Move a range input to `value` and wait for `image` to be redrawn; -> its new src."""
    before = _src(page, image)
    page.locator(f"{slider} input[type=range]").fill(value)
    return _wait_src_change(page, image, before)


def _strip_frames(page, size: int = 32, padding: int = 2) -> int:
    """Faces in the strip now shown, from the picture's width (the tiny model draws 32 px faces)."""
    page.wait_for_function("() => { const i = document.querySelector('#strip img'); return i && i.complete; }")
    width = page.evaluate("() => document.querySelector('#strip img').naturalWidth")
    return (width - padding) // (size + padding)


def test_page_loads_with_faces_sliders_and_crop_note(browser_page):
    page, _ = browser_page
    assert page.locator("#faces img").count() == 8
    assert page.locator("#slider-Smiling input[type=range]").count() == 1
    assert page.locator("[id^=slider-z] input[type=range]").count() == 8  # latent dims (tiny model has 8)
    assert "148x148" in page.content()  # the expected crop is stated on the page
    assert page.locator("#strip img").count() == 1 and page.locator("#gif a").count() >= 1
    assert _src(page, "#gif-preview img").endswith("/facevae-interpolation-slerp-8.gif")  # shown, not only linked


def test_serve_prints_its_own_address_line(browser_page, server):
    _, url, log = server
    text = log.read_text()
    assert f"facevae serve: open {url} in a browser" in text
    assert "share=True" not in text and "Running on local URL" not in text


def test_new_faces_button_changes_the_grid(browser_page):
    page, _ = browser_page
    before = _src(page, "#faces img")
    page.click("#new-faces")
    after = _wait_src_change(page, "#faces img", before)
    assert _bytes(page, after) != _bytes(page, before)
    assert page.input_value("#seed input") == "1"


def _choose_sampler(page, name: str) -> str:
    """Click a sampler's radio button and wait for the grid it draws; -> the first face's src."""
    before = _src(page, "#faces img")
    page.locator("#sampler label", has_text=name).click()
    after = _wait_src_change(page, "#faces img", before)
    assert page.locator("#sampler label", has_text=name).locator("input").is_checked()
    return after


def test_choosing_the_gmm_sampler_draws_new_faces(browser_page):
    page, _ = browser_page
    seed, prior = page.input_value("#seed input"), _src(page, "#faces img")
    gmm = _choose_sampler(page, "gmm")
    assert _bytes(page, gmm) != _bytes(page, prior)
    assert page.input_value("#seed input") == seed  # the same seed: the sampler alone changed the faces
    # each sampler draws its own grid for a seed, not a fresh random one: back and forth gives both again
    assert _bytes(page, _choose_sampler(page, "prior")) == _bytes(page, prior)
    assert _bytes(page, _choose_sampler(page, "gmm")) == _bytes(page, gmm)


def test_smiling_slider_changes_the_edited_face(browser_page):
    page, _ = browser_page
    before = _src(page, "#edited img")
    page.locator("#slider-Smiling input[type=range]").fill("2.5")
    after = _wait_src_change(page, "#edited img", before)
    assert _bytes(page, after) != _bytes(page, before)
    assert _src(page, "#chosen img") == before  # the chosen face itself is untouched
    assert page.get_attribute("#edited a[download]", "download") == "facevae-edit-smiling+2.5.png"


def test_common_attributes_come_first_with_readable_labels_and_a_focus_ring(browser_page):
    from facevae.web.page import COMMON_ATTRIBUTES

    page, _ = browser_page
    ids = page.eval_on_selector_all("[id^=slider-]:not([id^=slider-z])", "els => els.map(e => e.id)")
    assert ids[:len(COMMON_ATTRIBUTES)] == [f"slider-{n}" for n in COMMON_ATTRIBUTES] and len(ids) == 40
    assert "5 o'Clock Shadow" in page.locator("#slider-5_o_Clock_Shadow").inner_text()
    assert "Strength 1 moves the face" in page.locator("#strength-help").inner_text()
    slider = page.locator("#slider-Male input[type=range]")
    slider.focus()
    page.keyboard.press("ArrowRight")
    assert slider.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"  # Gradio's own style is none
    page.keyboard.press("ArrowLeft")


def test_an_out_of_range_strength_is_clamped_and_the_face_shows_the_clamped_value(browser_page):
    page, _ = browser_page
    if page.input_value("#slider-Smiling input[type=number]") != "0":
        _slide_to(page, "#slider-Smiling", "0", "#edited img")
    before = _src(page, "#edited img")
    _type_and_leave(page, "#slider-Smiling", "7")  # the range is -3..3: a toast, then 3 on blur
    _wait_value(page, "#slider-Smiling", "3")
    _wait_src_change(page, "#edited img", before)
    clamped = _settled_src(page, "#edited img")
    # the face drawn after the clamp is the one the slider draws at 3, so "Use as A" takes what is seen
    _slide_to(page, "#slider-Smiling", "0", "#edited img")
    _settled_src(page, "#edited img")
    _slide_to(page, "#slider-Smiling", "3", "#edited img")
    at_three = _settled_src(page, "#edited img")
    assert _bytes(page, at_three) == _bytes(page, clamped)


def test_out_of_range_steps_are_clamped_and_the_strip_redrawn(browser_page):
    page, _ = browser_page
    assert _strip_frames(page) == 8
    before = _src(page, "#strip img")
    _type_and_leave(page, "#steps", "40")  # Steps run 3..16
    _wait_value(page, "#steps", "16")
    _wait_src_change(page, "#strip img", before)
    assert _strip_frames(page) == 16


def test_keyboard_changes_redraw_temperature_and_steps(browser_page):
    page, _ = browser_page
    before = _src(page, "#faces img")
    page.focus("#temperature input[type=range]")
    page.keyboard.press("ArrowLeft")
    _wait_value(page, "#temperature", "0.95")
    _wait_src_change(page, "#faces img", before)
    frames = _strip_frames(page)
    before = _src(page, "#strip img")
    page.focus("#steps input[type=range]")
    page.keyboard.press("ArrowLeft")
    _wait_src_change(page, "#strip img", before)
    assert _strip_frames(page) == frames - 1


def _in_view(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"]


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)])
def test_the_edited_face_and_the_ends_stay_in_view_while_the_lowest_slider_moves(browser, artifacts, width, height):
    new_page, _ = browser
    page = new_page(width, height)
    try:
        lowest = page.locator("[id^=slider-z]").last
        lowest.scroll_into_view_if_needed()
        assert _in_view(page, "[id^=slider-z] >> nth=-1")
        assert _in_view(page, "#edited")
        before = _src(page, "#edited img")
        lowest.locator("input[type=range]").fill("2")
        _wait_src_change(page, "#edited img", before)
        # the end being set is shown beside its button, in view
        before = _src(page, "#end-a img")
        page.click("#use-a")
        _wait_src_change(page, "#end-a img", before)
        assert _in_view(page, "#end-a") and _in_view(page, "#use-a")
        page.screenshot(path=str(artifacts / f"web-{width}x{height}.png"))
    finally:
        page.close()


def test_non_image_upload_shows_an_error_and_the_server_carries_on(browser_page, server, web_data):
    page, _ = browser_page
    proc, _, _ = server
    page.set_input_files("#upload input[type=file]",
                         files=[{"name": "face.png", "mimeType": "image/png", "buffer": b"I am text, not a face.\n" * 40}])
    page.wait_for_function("() => document.querySelector('#upload-error').innerText.includes('Upload rejected')")
    assert "not an image" in page.locator("#upload-error").inner_text()
    red, green, _ = map(int, page.locator("#upload-error p").evaluate("e => getComputedStyle(e).color")[4:-1].split(","))
    assert red > 150 and green < 80  # the error style reaches the text, not only its wrapper
    assert proc.poll() is None
    # a real photo afterwards is taken: reconstruction shown, the error gone
    photos = sorted((web_data / "img_align_celeba").glob("*.jpg"))
    page.set_input_files("#upload input[type=file]", files=[str(photos[0].resolve())])
    page.wait_for_selector("#upload-recon img")
    page.wait_for_function("() => document.querySelector('#upload-error').innerText.trim() === ''")
    # the drop zone is back: a second photo replaces the first without pressing x
    assert "Drop File Here" in page.locator("#upload").inner_text()
    before = _src(page, "#upload-recon img")
    page.set_input_files("#upload input[type=file]", files=[str(photos[1].resolve())])
    _wait_src_change(page, "#upload-recon img", before)


def _shown(page, selector: str) -> np.ndarray:
    """The picture an <img> shows, as uint8 (H, W, 3)."""
    with Image.open(io.BytesIO(_bytes(page, _src(page, selector)))) as im:
        return np.asarray(im.convert("RGB"))


def _model_input(photo: bytes, web_run) -> np.ndarray:
    """What the model sees of a photo: CelebA's centre crop at the model's size, uint8 (H, W, 3)."""
    from facevae.data import preprocess_image
    from facevae.modelfiles.checkpoint import load_model
    from facevae.web.upload import read_upload

    cfg = load_model(web_run).config
    return preprocess_image(read_upload(photo), cfg.model.image_size, cfg.data.crop).transpose(1, 2, 0)


def test_an_example_photo_from_data_is_taken_with_one_click(browser_page, web_data, web_run):
    from facevae.web.handlers import example_photos

    page, _ = browser_page
    assert page.locator("#examples img").count() == 8  # serve --data: validation photos offered
    before, recon = _src(page, "#upload-input img"), _src(page, "#upload-recon img")
    page.locator("#examples img").nth(2).click()
    _wait_src_change(page, "#upload-input img", before)
    _wait_src_change(page, "#upload-recon img", recon)  # encoded and reconstructed, as an upload is
    photos = example_photos(web_data)
    shown = _shown(page, "#upload-input img")
    np.testing.assert_array_equal(shown, _model_input(photos[2], web_run))  # the third photo, not another
    assert not np.array_equal(shown, _model_input(photos[1], web_run))


def test_a_landscape_photo_is_taken_with_a_warning(browser_page):
    page, _ = browser_page
    buf = io.BytesIO()
    Image.new("RGB", (640, 360), (120, 160, 200)).save(buf, format="PNG")
    before, seen = _src(page, "#upload-recon img"), _src(page, "#upload-input img")
    page.set_input_files("#upload input[type=file]",
                         files=[{"name": "beach.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    _wait_src_change(page, "#upload-recon img", before)  # taken
    _wait_src_change(page, "#upload-input img", seen)
    page.wait_for_function("() => document.querySelector('#upload-error').innerText.includes('landscape')")
    # the model sees a square centre crop of the one-colour photo at its size: that colour, every pixel
    shown = _shown(page, "#upload-input img")
    assert shown.shape == (32, 32, 3) and (shown == (120, 160, 200)).all()


def test_a_path_sent_by_a_client_is_never_read(browser_page, server, tmp_path):
    page, _ = browser_page
    proc, url, _ = server
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"SECRET-7f3a not for the page")
    # what a hand-made API call would send: a FileData pointing at a file the browser never uploaded
    call = page.request.post(f"{url}gradio_api/call/on_upload",
                             data={"data": [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}, None]})
    assert call.ok
    result = page.request.get(f"{url}gradio_api/call/on_upload/{call.json()['event_id']}").text()
    assert "event: error" in result and "SECRET" not in result
    assert proc.poll() is None and page.request.get(url).ok


def test_nothing_was_fetched_from_outside(browser_page):
    _, outside = browser_page
    assert outside == []

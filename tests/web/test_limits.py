"""Request bodies are capped before Gradio reads them, and an oversize payload never reaches the log."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[web]'")

from facevae.web.limits import MAX_JSON_BYTES  # noqa: E402


@pytest.fixture(scope="module")
def url():
    from facevae.config import RunConfig
    from facevae.models import build_model
    from facevae.web.page import build_app, launch
    from facevae.api import FaceVAE
    from facevae.web.explorer import Explorer
    from facevae.web.handlers import Handlers

    cfg = RunConfig().override(["model.image_size=32", "model.widths=[8,16]", "model.latent_dim=4"])
    demo = build_app(Handlers(Explorer(FaceVAE.from_model(build_model(cfg.model), cfg)), n_faces=4))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, local_url, _ = launch(demo, "127.0.0.1", port, block=False)
    yield local_url
    demo.close()


def join(url: str, payload: str):
    body = json.dumps({"data": [payload], "fn_index": 0, "session_hash": "s", "trigger_id": 1}).encode()
    req = urllib.request.Request(url + "gradio_api/queue/join", data=body, headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=60)


def test_a_declared_oversize_body_gets_413_before_it_is_sent(url):
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 60000000\r\n\r\n{\"data\": [\"")
        assert s.recv(64).startswith(b"HTTP/1.1 413")


def test_an_oversize_payload_stays_out_of_the_server_log(url, capfd):
    payload = "Q" * (4 * MAX_JSON_BYTES)
    with pytest.raises((urllib.error.HTTPError, urllib.error.URLError, ConnectionError)):
        join(url, payload)
    assert join(url, "small").status == 200  # the page's own small requests still pass
    out, err = capfd.readouterr()
    assert "Q" * 1000 not in out + err

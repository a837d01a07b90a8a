"""facevae.data.download against a local HTTP server (127.0.0.1 only) serving a tiny fake CelebA."""
from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from facevae.cli.data import data_app
from facevae.data import download as dl
from facevae.data.download import RemoteFile, download_celeba
from facevae.errors import FacevaeError

IMAGES = ["000001.jpg", "000002.jpg", "000003.jpg"]
TEXTS = {
    "list_attr_celeba.txt": "3\nBlond_Hair Eyeglasses Smiling\n"
    "000001.jpg -1  1  1\n000002.jpg  1 -1 -1\n000003.jpg -1 -1  1\n",
    "list_eval_partition.txt": "000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n",
    "identity_CelebA.txt": "000001.jpg 2880\n000002.jpg 2937\n000003.jpg 8692\n",
    "list_bbox_celeba.txt": "3\nimage_id x_1 y_1 width height\n000001.jpg 95 71 226 313\n",
}
ZIP = "img_align_celeba.zip"


def _jpeg(seed: int) -> bytes:
    img = Image.effect_noise((24, 30), 40 + 10 * seed).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("img_align_celeba/", b"")  # the official archive has the folder entry too
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


JPEGS = {name: _jpeg(i) for i, name in enumerate(IMAGES)}
FILES = {**{k: v.encode() for k, v in TEXTS.items()},
         ZIP: _zip({f"img_align_celeba/{n}": b for n, b in JPEGS.items()})}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    """Serves server.files with optional Range support and scripted misbehaviour."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        srv: _Server = self.server  # type: ignore[assignment]
        name = urllib.parse.unquote(self.path.lstrip("/"))
        body = srv.files.get(name)
        rng = self.headers.get("Range")
        status, start, headers = 200, 0, {}
        if body is None:
            status, body = 404, b""
        elif rng and srv.honor_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                status, headers = 416, {"Content-Range": f"bytes */{len(body)}"}
            else:
                status, headers = 206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
        payload = body[start:] if status in (200, 206) else b""
        sent = payload[: srv.cut_after[name]] if name in srv.cut_after else payload
        # Logged before replying so a test never races the handler thread.
        srv.log.append({"name": name, "range": rng, "status": status, "sent": len(sent)})
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if name in srv.html else "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(sent)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = dict(FILES)
        self.honor_range = True
        self.cut_after: dict[str, int] = {}  # name -> bytes sent before hanging up
        self.html: set[str] = set()  # names answered as a web page
        self.log: list[dict] = []
        self.base = f"http://127.0.0.1:{self.server_address[1]}"

    def names(self) -> list[str]:
        return [r["name"] for r in self.log]


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would send 127.0.0.1 requests elsewhere.
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(dl, "TIMEOUT_S", 5.0)


@pytest.fixture()
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _manifest(srv: _Server, **md5_overrides: str) -> list[RemoteFile]:
    entries = [RemoteFile(name, f"{srv.base}/{name}", md5=md5_overrides.get(name, _md5(srv.files[name])),
                          optional=name == "list_bbox_celeba.txt")
               for name in TEXTS]
    entries.append(RemoteFile(ZIP, f"{srv.base}/{ZIP}", md5=_md5(srv.files[ZIP]), unzip=True, members=3))
    return entries


def _assert_layout(root: Path) -> None:
    assert sorted(p.name for p in (root / "img_align_celeba").iterdir()) == IMAGES
    for name, data in JPEGS.items():
        path = root / "img_align_celeba" / name
        assert path.read_bytes() == data
        with Image.open(path) as img:
            assert img.size == (24, 30)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"):
        assert (root / name).read_text() == TEXTS[name]
    leftovers = [p.name for p in root.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]
    assert leftovers == []


# ---------------------------------------------------------------- download


def test_full_download_gives_the_original_layout(server, tmp_path):
    root = tmp_path / "celeba"
    assert download_celeba(root, manifest=_manifest(server), progress=False) == root
    _assert_layout(root)
    assert not (root / "list_bbox_celeba.txt").exists()  # optional: only when asked for
    assert sorted(server.names()) == sorted(["list_attr_celeba.txt", "list_eval_partition.txt",
                                             "identity_CelebA.txt", ZIP])


def test_optional_file_is_fetched_when_named(server, tmp_path):
    download_celeba(tmp_path, manifest=_manifest(server), files=["list_bbox_celeba.txt"], progress=False)
    assert (tmp_path / "list_bbox_celeba.txt").read_text() == TEXTS["list_bbox_celeba.txt"]
    assert server.names() == ["list_bbox_celeba.txt"]


def test_resume_asks_only_for_the_missing_bytes(server, tmp_path):
    half = len(FILES[ZIP]) // 2
    (tmp_path / f"{ZIP}.part").write_bytes(FILES[ZIP][:half])
    download_celeba(tmp_path, manifest=_manifest(server), files=[ZIP], progress=True)
    assert server.log == [{"name": ZIP, "range": f"bytes={half}-", "status": 206,
                           "sent": len(FILES[ZIP]) - half}]
    assert (tmp_path / ZIP).read_bytes() == FILES[ZIP]
    assert sorted(p.name for p in (tmp_path / "img_align_celeba").iterdir()) == IMAGES


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    server.honor_range = False
    # Garbage in the .part proves it was overwritten, not appended to.
    (tmp_path / f"{ZIP}.part").write_bytes(b"x" * 100)
    download_celeba(tmp_path, manifest=_manifest(server), files=[ZIP], progress=False)
    assert server.log[0]["range"] == "bytes=100-" and server.log[0]["status"] == 200
    assert (tmp_path / ZIP).read_bytes() == FILES[ZIP]
    assert not (tmp_path / f"{ZIP}.part").exists()


def test_whole_part_left_by_a_kill_is_verified_not_refetched(server, tmp_path):
    (tmp_path / "list_attr_celeba.txt.part").write_bytes(FILES["list_attr_celeba.txt"])
    download_celeba(tmp_path, manifest=_manifest(server), files=["list_attr_celeba.txt"], progress=False)
    assert [(r["status"], r["sent"]) for r in server.log] == [(416, 0)]
    assert (tmp_path / "list_attr_celeba.txt").read_text() == TEXTS["list_attr_celeba.txt"]


def test_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    manifest = _manifest(server, **{"list_attr_celeba.txt": "0" * 32})
    with pytest.raises(FacevaeError, match="corrupt") as err:
        download_celeba(tmp_path, manifest=manifest, files=["list_attr_celeba.txt"], progress=False)
    assert "\n" not in str(err.value) and "rerun" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_rerun_skips_verified_files_and_refetches_a_corrupt_one(server, tmp_path):
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    jpg = tmp_path / "img_align_celeba" / IMAGES[0]
    inode = jpg.stat().st_ino
    server.log.clear()
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    assert server.log == []
    assert jpg.stat().st_ino == inode  # the unpacked folder was left alone too
    (tmp_path / "identity_CelebA.txt").write_text("edited\n")
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    assert server.names() == ["identity_CelebA.txt"]
    _assert_layout(tmp_path)


def test_dropped_connection_keeps_the_part_and_a_rerun_resumes(server, tmp_path):
    server.cut_after[ZIP] = 700
    with pytest.raises(FacevaeError, match="rerun to resume") as err:
        download_celeba(tmp_path, manifest=_manifest(server), files=[ZIP], progress=False)
    assert "\n" not in str(err.value)
    assert (tmp_path / f"{ZIP}.part").read_bytes() == FILES[ZIP][:700]
    assert not (tmp_path / ZIP).exists() and not (tmp_path / "img_align_celeba").exists()
    server.cut_after.clear()
    download_celeba(tmp_path, manifest=_manifest(server), files=[ZIP], progress=False)
    assert server.log[-1]["range"] == "bytes=700-" and server.log[-1]["status"] == 206
    assert (tmp_path / ZIP).read_bytes() == FILES[ZIP]


def test_unreachable_server_is_a_facevae_error(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = RemoteFile("list_attr_celeba.txt", f"http://127.0.0.1:{port}/x", md5="0" * 32)
    with pytest.raises(FacevaeError, match="failed .*rerun"):
        download_celeba(tmp_path, manifest=[entry], progress=False)
    assert not (tmp_path / "list_attr_celeba.txt").exists()


def test_http_error_is_a_facevae_error(server, tmp_path):
    entry = RemoteFile("list_attr_celeba.txt", f"{server.base}/missing.txt", md5="0" * 32)
    with pytest.raises(FacevaeError, match="HTTP 404"):
        download_celeba(tmp_path, manifest=[entry], progress=False)


def test_web_page_instead_of_the_file_is_reported(server, tmp_path):
    server.html.add("list_attr_celeba.txt")
    with pytest.raises(FacevaeError, match="web page.*--base-url"):
        download_celeba(tmp_path, manifest=_manifest(server), files=["list_attr_celeba.txt"], progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- unpack


@pytest.mark.parametrize("evil", ["../evil.jpg", "img_align_celeba/../../evil.jpg", "/tmp/evil.jpg",
                                  "..\\evil.jpg", "C:/evil.jpg"])
def test_zip_path_traversal_is_rejected(server, tmp_path, evil):
    server.files[ZIP] = _zip({"img_align_celeba/000001.jpg": JPEGS["000001.jpg"], evil: b"pwned"})
    root = tmp_path / "a" / "b"
    with pytest.raises(FacevaeError, match="unsafe path"):
        download_celeba(root, manifest=_manifest(server), files=[ZIP], progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"pwned"] == []
    assert sorted(p.name for p in root.iterdir()) == [ZIP]  # nothing unpacked, no staging left


def test_incomplete_folder_and_killed_unpack_are_redone(server, tmp_path):
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    (tmp_path / "img_align_celeba" / IMAGES[1]).unlink()
    (tmp_path / "img_align_celeba" / IMAGES[2]).write_bytes(b"half")
    (tmp_path / ".img_align_celeba.unpacking").mkdir()  # what a kill mid-unpack leaves
    (tmp_path / ".img_align_celeba.unpacking" / "junk.jpg").write_bytes(b"j")
    server.log.clear()
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    assert server.log == []  # the archive was verified locally, not fetched again
    _assert_layout(tmp_path)


def test_deleted_archive_is_not_refetched_while_the_folder_is_whole(server, tmp_path):
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    (tmp_path / ZIP).unlink()
    server.log.clear()
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    assert server.log == []
    (tmp_path / "img_align_celeba" / IMAGES[0]).unlink()  # now fewer than `members`
    download_celeba(tmp_path, manifest=_manifest(server), progress=False)
    assert server.names() == [ZIP]
    _assert_layout(tmp_path)


def test_archive_without_top_folder_unpacks_into_it(tmp_path):
    archive = tmp_path / ZIP
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in JPEGS.items():
            zf.writestr(name, data)
    assert dl.unpack_zip(archive, tmp_path, progress=False) == tmp_path / "img_align_celeba"
    assert sorted(p.name for p in (tmp_path / "img_align_celeba").iterdir()) == IMAGES


def test_corrupt_archive_is_a_facevae_error(tmp_path):
    (tmp_path / ZIP).write_bytes(b"not a zip")
    with pytest.raises(FacevaeError, match="not a valid zip"):
        dl.unpack_zip(tmp_path / ZIP, tmp_path, progress=False)


# ---------------------------------------------------------------- manifest


def test_default_manifest_has_torchvisions_checksums():
    md5s = {e.name: e.md5 for e in dl.default_manifest()}
    assert md5s == {
        ZIP: "00d2c5bc6d35e252742224ab0c1e8fcb",
        "list_attr_celeba.txt": "75e246fa4810816ffd6ee81facbd244c",
        "identity_CelebA.txt": "32bd1bd63d3c78cd57e08160ec5ed1e2",
        "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
        "list_bbox_celeba.txt": "00566efa6fedff7a56946cd1c10f1c16",
        "list_landmarks_align_celeba.txt": "cc24ecafdb5b50baae59b03474781f8c",
    }
    assert all(e.url.startswith("https://") for e in dl.default_manifest())
    mirrored = dl.default_manifest("https://mirror.example/celeba/")
    assert {e.url for e in mirrored} == {f"https://mirror.example/celeba/{n}" for n in md5s}
    assert [e.name for e in mirrored if e.unzip] == [ZIP]


def test_yaml_manifest_with_base_url(server, tmp_path):
    lines = [f"base_url: {server.base}", "files:"]
    lines += [f"  - {{name: {n}, md5: {_md5(FILES[n])}}}" for n in ("list_attr_celeba.txt", ZIP)]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    download_celeba(tmp_path / "root", manifest=tmp_path / "m.yaml", progress=False)
    assert (tmp_path / "root" / "list_attr_celeba.txt").read_text() == TEXTS["list_attr_celeba.txt"]
    assert sorted(p.name for p in (tmp_path / "root" / "img_align_celeba").iterdir()) == IMAGES


def test_base_url_overrides_the_manifests_urls(server, tmp_path):
    entries = [{"name": n, "url": f"http://127.0.0.1:9/nowhere/{n}",
                "sha256": hashlib.sha256(FILES[n]).hexdigest()}
               for n in ("identity_CelebA.txt", "list_eval_partition.txt")]
    (tmp_path / "m.json").write_text(json.dumps(entries))
    download_celeba(tmp_path / "root", manifest=tmp_path / "m.json", base_url=server.base + "/",
                    progress=False)
    assert sorted(server.names()) == ["identity_CelebA.txt", "list_eval_partition.txt"]
    assert (tmp_path / "root" / "identity_CelebA.txt").read_text() == TEXTS["identity_CelebA.txt"]


@pytest.mark.parametrize("text, message", [
    ('[{"name": "a.txt", "url": "http://127.0.0.1/a", "md5": "0", "colour": 1}]', "unknown key"),
    ('[{"name": "a.txt", "url": "http://127.0.0.1/a"}]', "md5 or sha256"),
    ('[{"name": "../a.txt", "url": "http://127.0.0.1/a", "md5": "0"}]', "plain file name"),
    ('[{"name": "a.txt", "md5": "0"}]', "no URL"),
    ('{"files": []}', "non-empty"),
    ('{"mirror": "x"}', "mapping with keys"),
    ("[{", "not valid JSON"),
])
def test_bad_manifest_is_a_one_line_facevae_error(tmp_path, text, message):
    (tmp_path / "m.json").write_text(text)
    with pytest.raises(FacevaeError, match=message) as err:
        download_celeba(tmp_path / "root", manifest=tmp_path / "m.json", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "root").exists()


def test_missing_manifest_and_unknown_file_are_facevae_errors(tmp_path):
    with pytest.raises(FacevaeError, match="cannot read manifest"):
        download_celeba(tmp_path, manifest=tmp_path / "absent.yaml", progress=False)
    with pytest.raises(FacevaeError, match="unknown file"):
        download_celeba(tmp_path, files=["list_attr.txt"], progress=False)


# ---------------------------------------------------------------- CLI


def test_cli_download(server, tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"name": n, "md5": _md5(FILES[n]), **({"members": 3} if n == ZIP else {})}
                                    for n in ("list_attr_celeba.txt", "list_eval_partition.txt",
                                              "identity_CelebA.txt", ZIP)]))
    root = tmp_path / "celeba"
    result = CliRunner().invoke(data_app, ["download", "--root", str(root), "--manifest", str(manifest),
                                           "--base-url", server.base, "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"ready in {root}" in result.output
    _assert_layout(root)


def test_cli_all_fetches_optional_files(server, tmp_path):
    manifest = _write_manifest(server, tmp_path)
    result = CliRunner().invoke(data_app, ["download", "--root", str(tmp_path), "--base-url", server.base,
                                           "--all", "-q", "--manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "list_bbox_celeba.txt").read_text() == TEXTS["list_bbox_celeba.txt"]


def _write_manifest(srv: _Server, folder: Path) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(json.dumps({"files": [{"name": e.name, "md5": e.md5, "optional": e.optional}
                                          for e in _manifest(srv)]}))
    return path


def test_cli_raises_facevae_error_for_the_central_handler(server, tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"name": "list_attr_celeba.txt", "md5": "0" * 32}]))
    result = CliRunner().invoke(data_app, ["download", "--root", str(tmp_path / "r"), "--manifest",
                                           str(manifest), "--base-url", server.base, "-q"])
    assert isinstance(result.exception, FacevaeError)
    assert "corrupt" in str(result.exception)


def test_cli_is_attached_to_the_main_app():
    from facevae.cli.app import app

    result = CliRunner().invoke(app, ["data", "download", "--help"])
    assert result.exit_code == 0
    assert "--base-url" in result.output and "--manifest" in result.output

"""Every bad value is one `error:` line, exit 2, no traceback, before any work (real processes)."""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import pytest

from tests.conftest import make_celeba, tiny_config, write_jpeg
from tests.cli.test_cli import assert_user_error, facevae

UNWRITABLE = Path("/sys/facevae-test")  # even root cannot create files under /sys


def bomb_png(path: Path, side: int = 14000) -> Path:
    """A valid 1-bit PNG of side x side pixels: 25 kB on disk, 196 megapixels decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("errors") / "celeba", n=24)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data) -> Path:
    from facevae.training.run import train

    run = tmp_path_factory.mktemp("runs") / "tiny"
    train(data, run, tiny_config("train.max_steps=2", "train.batch_size=4"), device="cpu", progress=False)
    return run


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faces")
    a, b = folder / "a.jpg", folder / "b.jpg"
    write_jpeg(a, 1)
    write_jpeg(b, 2)
    return {"a": a, "b": b, "bomb": bomb_png(folder / "bomb.png")}


CONFIG_VALUES = [
    ("train.ckpt_every=0", "'train.ckpt_every' must be >= 1, got 0"),
    ("train.log_every=0", "'train.log_every' must be >= 1, got 0"),
    ("train.batch_size=0", "'train.batch_size' must be >= 1, got 0"),
    ("train.batch_size=-4", "'train.batch_size' must be >= 1, got -4"),
    ("model.widths=[]", "'model.widths' is empty"),
    ("data.workers=-1", "'data.workers' must be >= 0, got -1"),
    ("train.lr=-1", "'train.lr' must be > 0, got -1.0"),
    ("train.lr=.nan", "'train.lr' must be a finite number, got nan"),
    ("model.dropout=2", "'model.dropout' must be >= 0, < 1, got 2.0"),
    ("model.latent_dim=0", "'model.latent_dim' must be >= 1, got 0"),
    ("model.norm=layer", "unknown model.norm 'layer'; choose one of: batch, group, none"),
]


@pytest.mark.parametrize("item,message", CONFIG_VALUES)
def test_bad_config_values_fail_before_the_run_folder_exists(tmp_path, data, item, message):
    out = tmp_path / "r"
    assert_user_error(facevae("train", "--data", data, "--out", out, "--set", item), message)
    assert not out.exists()


def test_unwritable_out_folder(tmp_path, data):
    assert_user_error(facevae("train", "--data", data, "--out", UNWRITABLE / "run"),
                      f"cannot write --out {UNWRITABLE / 'run'}", "choose a writable place")


def test_out_under_an_existing_file(tmp_path, data):
    (tmp_path / "notes.txt").write_text("keep me")
    assert_user_error(facevae("train", "--data", data, "--out", tmp_path / "notes.txt" / "run"),
                      "which is a file")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("command", ["sample", "reconstruct"])
def test_unwritable_output_file(tmp_path, faces, command):
    extra = ["--images", faces["a"]] if command == "reconstruct" else []
    assert_user_error(facevae(command, *extra, "--out", UNWRITABLE / "grid.png"), "cannot write --out")


def test_interpolate_checks_the_gif_before_writing_the_png(tmp_path):
    png = tmp_path / "walk.png"
    assert_user_error(facevae("interpolate", "--seed", "1", "--steps", "3", "--out", png,
                              "--gif", UNWRITABLE / "walk.gif"), "cannot write --gif")
    assert not png.exists()


@pytest.mark.parametrize("command", ["reconstruct", "interpolate"])
def test_decompression_bomb_is_refused(tmp_path, faces, command):
    images = ["--images", faces["bomb"]] + ([faces["a"]] if command == "interpolate" else [])
    out = tmp_path / "x.png"
    assert_user_error(facevae(command, *images, "--out", out), "bomb.png is too large to decode",
                      "(196 megapixels; at most 40 megapixels)")
    assert not out.exists()


def test_bomb_message_gives_the_size_not_pils_limit(tmp_path):
    from facevae.data.cache import load_image
    from facevae.errors import FacevaeError

    for side, size in ((14000, "196 megapixels"), (7000, "49 megapixels")):  # PIL refuses the first itself
        with pytest.raises(FacevaeError, match="too large to decode") as err:
            load_image(bomb_png(tmp_path / f"b{side}.png", side), 64, 148)
        assert f"({size}; at most 40 megapixels)" in str(err.value)
        assert "178956970" not in str(err.value)


def test_interpolate_with_one_image_says_two_are_needed(tmp_path, faces):
    assert_user_error(facevae("interpolate", "--images", faces["a"], "--out", tmp_path / "x.png"),
                      "--images takes exactly two files (the two ends), got 1")


def test_interpolate_with_two_images_still_works(tmp_path, faces):
    r = facevae("interpolate", "--images", faces["a"], faces["b"], "--steps", "3", "--out", tmp_path / "x.png",
                "--no-align")  # synthetic pictures: no face to align
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.png").is_file()


def test_sample_n_over_one_grid_is_refused(tmp_path):
    assert_user_error(facevae("sample", "--n", "100000", "--out", tmp_path / "x.png"),
                      "--n 100000 faces of 64x64 are too many for one grid (at most 4096)")


def test_resume_with_a_changed_crop_is_refused(tiny_run, data):
    assert_user_error(facevae("train", "--data", data, "--out", tiny_run, "--resume", "--set", "data.crop=120"),
                      "cannot resume: settings differ from the run's (data.crop)")


def test_resume_and_overwrite_together_are_refused(tiny_run, data):
    assert_user_error(facevae("train", "--data", data, "--out", tiny_run, "--resume", "--overwrite"),
                      "pass one of them")


def test_full_disk_during_a_checkpoint(tiny_run, data, tmp_path):
    """The checkpoint write fails with ENOSPC (patched in the child): one line, and the old checkpoint stays."""
    import shutil
    import subprocess

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "checkpoint.safetensors").read_bytes()
    child = ("import errno, os, sys\n"
             "import facevae.modelfiles.checkpoint as c\n"
             "def full(*a, **k): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
             "c.save_file = full\n"
             "from facevae.cli import main\n"
             f"sys.argv = ['facevae', 'train', '--data', {str(data)!r}, '--out', {str(run)!r}, '--resume',\n"
             "            '--max-steps', '3', '--no-progress']\n"
             "main()\n")
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=600)
    assert_user_error(r, "No space left on device", "untouched")
    assert (run / "checkpoint.safetensors").read_bytes() == before


PARSER_ERRORS = [  # what Click itself refuses, before any facevae code runs
    (("sample", "--n", "0"), "error: Invalid value for '--n': ", "; see facevae sample --help"),
    (("sample", "--temperature", "-1"), "error: Invalid value for '--temperature': ", "; see facevae sample --help"),
    (("sample", "--n", "many"), "error: Invalid value for '--n': ", "; see facevae sample --help"),
    (("smaple",), "error: No such command 'smaple'. Did you mean 'sample'?; see facevae --help", ""),
    (("sample", "--bogus"), "error: No such option: --bogus", "; see facevae sample --help"),
    (("train",), "error: Missing option '--data'; see facevae train --help", ""),
]


@pytest.mark.parametrize("args,start,end", PARSER_ERRORS)
def test_parser_errors_are_one_error_line_and_exit_2(args, start, end):
    """The README's promise holds for Click's errors too: no usage box, no 'Error:' block, one line."""
    r = facevae(*args)
    assert_user_error(r)
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    line = r.stderr.rstrip("\n")
    assert line.startswith(start) and line.endswith(end), line


def test_help_still_prints_to_stdout_and_exits_0():
    r = facevae("sample", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: facevae sample [OPTIONS]") and r.stderr == ""

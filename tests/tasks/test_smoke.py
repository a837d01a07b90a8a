"""Every task once through its command, on a tiny model: the fast suite (`make test-fast`) reaches each of them.

The thorough tests of edit, interpolate, latents and evaluate run on the mini CelebA and are marked slow;
these only check that each command runs end to end and writes pictures of the model's size.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import facevae.cli  # noqa: F401  (registers the commands on the app)
from facevae.cli.app import app
from tests.conftest import train_tiny

SIZE, PAD = 32, 2  # tiny_config's faces and make_grid's padding
CELL = SIZE + PAD


def grid(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a grid of `rows` x `cols` faces."""
    return PAD + cols * CELL, PAD + rows * CELL


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(data, run): fake CelebA folders with three attributes and a 32 px VAE trained for two steps."""
    run, data = train_tiny(tmp_path_factory, 24)
    return data, run


# command -> (arguments after --ckpt RUN, the file it writes under OUT, the picture's faces (rows, cols) or None)
COMMANDS = {
    "sample": (["--n", "6", "--seed", "0", "--out", "{out}/s.png"], "s.png", (2, 3)),
    "reconstruct": (["--data", "{data}", "--n", "3", "--out", "{out}/r.png"], "r.png", (2, 3)),
    "edit": (["--data", "{data}", "--n", "2", "--attribute", "Smiling", "--strengths", "-1,0,1",
              "--no-originals", "--out", "{out}/e.png"], "e.png", (2, 3)),
    "interpolate": (["--seed", "1", "--steps", "4", "--out", "{out}/i.png"], "i.png", (1, 4)),
    "latents": (["--data", "{data}", "--attribute", "Smiling", "--no-progress", "--out", "{out}"],
                "latents_kl.png", None),
    "evaluate": (["--data", "{data}", "--fid-samples", "0", "--iw-samples", "2", "--samplers", "prior",
                  "--device", "cpu", "--no-progress", "--out", "{out}"], "samples_prior.png", (8, 8)),
    "export": (["--out", "{out}"], "model.safetensors", None),
}
LABELLED = {"edit", "interpolate"}  # a band of strength or mode labels above the faces adds height


def run_command(*argv: str) -> None:
    result = CliRunner().invoke(app, list(argv))
    assert result.exit_code == 0, result.output + repr(result.exception)


def assert_faces(path: Path, faces: tuple[int, int], labelled: bool = False) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG", im.format
        width, height = grid(*faces)
        assert im.size[0] == width and (im.size[1] > height if labelled else im.size[1] == height), im.size


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_runs_once_on_the_tiny_model(tiny, tmp_path, command):
    data, run = tiny
    args, written, faces = COMMANDS[command]
    out = tmp_path / "out"
    run_command(command, "--ckpt", str(run), *(a.format(data=data, out=out) for a in args))
    assert (out / written).is_file(), sorted(p.name for p in out.iterdir())
    if faces is not None:
        assert_faces(out / written, faces, command in LABELLED)
    if command == "latents":
        assert Image.open(out / written).format == "PNG"
    if command == "export":  # a Hub folder that sample reads: faces of the model's size
        assert {"config.json", "README.md"} <= {p.name for p in out.iterdir()}
        run_command("sample", "--ckpt", str(out), "--n", "1", "--out", str(tmp_path / "one.png"))
        assert_faces(tmp_path / "one.png", (1, 1))

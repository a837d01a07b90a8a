"""latents, edit, interpolate, progress and compare end to end on a slice of the mini CelebA.

One tiny model, trained once for the module on 128 real training faces, serves every command.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from typer.testing import CliRunner

import facevae.cli  # noqa: F401  (registers the commands on the app)
from facevae.cli.app import app
from facevae.errors import FacevaeError
from facevae.modelfiles.attributes import attribute_vectors
from facevae.modelfiles.checkpoint import load_model
from facevae.training.run import train

from tests.conftest import mini_slice, tiny_config

pytestmark = pytest.mark.slow

N_TRAIN, N_VALID, SIZE, PAD = 128, 32, 32, 2
CELL = SIZE + PAD  # a face plus its grid padding


@pytest.fixture(scope="module")
def setup(celeba_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("latent_cli")
    data = mini_slice(celeba_root, root / "celeba", N_TRAIN, N_VALID)
    cfg = tiny_config("train.batch_size=32", "train.epochs=2")  # 4 steps an epoch: two recon grids
    train(data, root / "run", cfg, device="cpu", progress=False)
    return data, root / "run", root


def _invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _gif(path: Path) -> tuple[int, tuple[int, int]]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        frames = [f.copy() for f in ImageSequence.Iterator(im)]
        return len(frames), im.size


def _face(data: Path, i: int) -> Path:
    return sorted((data / "img_align_celeba").iterdir())[i]


def test_latents_writes_figures_and_summary(setup, tmp_path):
    data, run, _ = setup
    _invoke("latents", "--ckpt", run, "--data", data, "--attribute", "Male", "--out", tmp_path, "--no-progress",
            "--device", "cpu")
    report = json.loads((tmp_path / "latents.json").read_text())
    assert report["n_images"] == N_VALID and report["latent_dim"] == 8 and report["attribute"] == "Male"
    assert 0 <= report["active_units"] <= 8 and len(report["active_dims"]) == report["active_units"]
    assert len(report["kl_per_dim"]) == 8
    assert report["total_kl"] == pytest.approx(sum(report["kl_per_dim"]), abs=1e-3)
    for name in ("latents_histograms.png", "latents_kl.png", "latents_pca.png"):
        assert _image(tmp_path / name).shape[0] > 200


def test_edit_grid_and_cached_attribute_vectors(setup, tmp_path):
    data, run, _ = setup
    out = tmp_path / "edit.png"
    _invoke("edit", "--ckpt", run, "--data", data, "--n", 3, "--attribute", "Smiling", "--strengths", "-2,0,2",
            "--out", out, "--device", "cpu")
    grid = _image(out)
    assert grid.shape[1] == 4 * CELL + PAD  # input + 3 strengths
    assert grid.shape[0] > 3 * CELL + PAD  # three faces under a label band
    cache = run / "attribute_vectors.safetensors"
    assert cache.is_file()

    # the cache now serves edits of loose files without any data, and several attributes combine
    out2 = tmp_path / "edit2.png"
    _invoke("edit", "--ckpt", run, "--images", _face(data, 0), "--images", _face(data, 1),
            "--attribute", "Smiling=1.5", "--attribute", "eyeglasses=2", "--strengths", "-1,1", "--no-originals",
            "--out", out2, "--device", "cpu")
    assert _image(out2).shape[1] == 2 * CELL + PAD

    loaded = load_model(run)

    model, cfg = loaded.model, loaded.config
    names, vectors = attribute_vectors(loaded)
    assert len(names) == 40 and vectors.shape == (40, 8) and "Smiling" in names
    assert torch.isfinite(vectors).all() and vectors[names.index("Smiling")].norm() > 0


def test_edit_errors(setup, tmp_path):
    data, run, _ = setup
    with pytest.raises(FacevaeError, match="valid names: 5_o_Clock_Shadow.*Smiling"):
        _invoke("edit", "--ckpt", run, "--data", data, "--attribute", "Smiles", "--out", tmp_path / "e.png")
    # a checkpoint with nothing cached and no data to compute from
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run / "model.safetensors", lone / "weights.safetensors")
    with pytest.raises(FacevaeError, match="--attr-data"):
        _invoke("edit", "--ckpt", lone / "weights.safetensors", "--images", _face(data, 0),
                "--attribute", "Smiling", "--out", tmp_path / "e.png")


def test_interpolate_images_grid_and_gif(setup, tmp_path):
    data, run, _ = setup
    png, gif = tmp_path / "i.png", tmp_path / "i.gif"
    _invoke("interpolate", "--ckpt", run, "--images", _face(data, 0), _face(data, 1), "--steps", 5,
            "--out", png, "--gif", gif, "--device", "cpu")
    assert _image(png).shape[1] == (5 + 2) * CELL + PAD  # A, five steps, B
    frames, size = _gif(gif)
    assert frames == 2 * 5 - 2 and size == (2 * (CELL + PAD), 2 * (CELL + PAD))


def test_interpolate_random_pairs(setup, tmp_path):
    from facevae.sampling import build_sampler

    _, run, _ = setup
    png = tmp_path / "i.png"
    _invoke("interpolate", "--ckpt", run, "--seed", 3, "--pairs", 2, "--mode", "linear", "--steps", 4,
            "--out", png, "--device", "cpu")
    grid = _image(png)
    assert grid.shape[1] == 4 * CELL + PAD and grid.shape[0] > 2 * CELL + PAD
    # row r walks in equal steps from prior draw r to draw 2 + r of seed 3: the faces, not only the picture's size
    model = load_model(run).model
    z = build_sampler("prior", 8).sample(4, generator=torch.Generator().manual_seed(3)).view(2, 2, 8)
    t = torch.linspace(0, 1, 4).view(4, 1, 1)
    with torch.no_grad():
        faces = model.decode(((1 - t) * z[0] + t * z[1]).reshape(-1, 8)).view(4, 2, 3, SIZE, SIZE)
    body = grid[-(2 * CELL + PAD):]  # the faces below the label band
    for row in range(2):
        for col in range(4):
            y, x = PAD + row * CELL, PAD + col * CELL
            cell = body[y:y + SIZE, x:x + SIZE].astype(int)
            expected = faces[col, row].clamp(0, 1).mul(255).round().permute(1, 2, 0).numpy()
            assert np.abs(cell - expected).max() <= 1, (row, col)


def test_progress_gif_has_one_frame_per_epoch(setup, tmp_path):
    _, run, _ = setup
    out = tmp_path / "p.gif"
    said = _invoke("progress", "--run", run, "--out", out)
    frames, size = _gif(out)
    assert frames == 2
    logged = [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()
              if json.loads(ln).get("kind") == "epoch"]
    assert f"({logged[0]} to {logged[-1]}," in said.output  # the epochs' numbers are train's
    assert size[0] == _image(run / "recon" / "epoch_0000.png").shape[1]
    said = _invoke("progress", "--run", run, "--out", out, "--frames", 1)
    assert _gif(out)[0] == 1 and f"wrote 1 epoch ({logged[-1]} to {logged[-1]}," in said.output


def test_compare_trains_both_models_and_draws_them(setup, tmp_path):
    data, _, _ = setup
    out = tmp_path / "cmp"
    _invoke("compare", "--data", data, "--out", out, "--max-steps", 1, "--components", 2, "--n", 8,
            "--set", "model.image_size=32", "--set", "model.widths=[8,16,32]", "--set", "model.latent_dim=8",
            "--set", "train.batch_size=32", "--set", "train.val_batches=1", "--set", "data.workers=1",
            "--device", "cpu", "--no-progress")
    report = json.loads((out / "compare.json").read_text())
    assert set(report["metrics"]) == {"VAE", "AE"}
    assert all(np.isfinite(m["recon MSE"]) for m in report["metrics"].values())
    assert (out / "vae" / "model.safetensors").is_file() and (out / "ae" / "model.safetensors").is_file()
    assert load_model(out / "ae").config.model.kind == "ae"
    assert _image(out / "compare.png").shape[1] > 400
    # a second call without --reuse refuses to overwrite; with it, only the figure is redrawn
    with pytest.raises(FacevaeError, match="--reuse"):
        _invoke("compare", "--data", data, "--out", out, "--max-steps", 2, "--device", "cpu", "--no-progress")
    weights = (out / "vae" / "model.safetensors").read_bytes()
    (out / "compare.png").unlink()
    _invoke("compare", "--data", data, "--out", out, "--reuse", "--components", 2, "--n", 8, "--device", "cpu",
            "--no-progress")
    assert (out / "compare.png").is_file() and (out / "vae" / "model.safetensors").read_bytes() == weights

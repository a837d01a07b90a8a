"""Labelled grids and GIFs: sizes, frame order, timings, and the progress GIF's errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from facevae.errors import FacevaeError
from facevae.viz.gif import caption, epoch_grids, evenly_spaced, pingpong, progress_gif, save_gif
from facevae.viz.grid import save_image
from facevae.viz.latent_plots import labelled_grid, strength_label


def _frame(value: int, h=20, w=30) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_labelled_grid_adds_a_label_band_above_the_faces():
    cells = torch.rand(3, 4, 3, 16, 16)
    plain = labelled_grid(cells)
    assert plain.shape == (3 * 18 + 2, 4 * 18 + 2, 3)
    labelled = labelled_grid(cells, ["a", "b", "c", "d"], title="t")
    assert labelled.shape[1] == plain.shape[1] and labelled.shape[0] > plain.shape[0]
    assert np.array_equal(labelled[-plain.shape[0]:], plain)  # the faces themselves are untouched
    assert labelled_grid(cells, ["a"] * 4, scale=2).shape[1] == 2 * plain.shape[1]


def test_strength_labels():
    assert [strength_label(s) for s in (-3, -1.5, 0, 1.5)] == ["-3", "-1.5", "0", "+1.5"]


def test_pingpong_returns_without_repeating_the_ends():
    frames = [_frame(v) for v in range(4)]
    assert [int(f[0, 0, 0]) for f in pingpong(frames)] == [0, 1, 2, 3, 2, 1]


def test_save_gif_frames_timings_and_loop(tmp_path):
    frames = [_frame(v * 60) for v in range(4)]
    path = save_gif(frames, tmp_path / "a.gif", fps=10, hold={0: 3, -1: 2})
    with Image.open(path) as im:
        assert im.n_frames == 4 and im.size == (30, 20) and im.info["loop"] == 0
        durations = [f.info["duration"] for f in ImageSequence.Iterator(im)]
        colours = [int(np.asarray(f.convert("RGB"))[5, 5, 0]) for f in ImageSequence.Iterator(im)]
    assert durations == [300, 100, 100, 200]
    assert colours == [0, 60, 120, 180]


def test_save_gif_rejects_nothing_and_mixed_sizes(tmp_path):
    with pytest.raises(FacevaeError, match="no frames"):
        save_gif([], tmp_path / "a.gif")
    with pytest.raises(FacevaeError, match="differ in size"):
        save_gif([_frame(0), _frame(0, h=21)], tmp_path / "a.gif")


def test_caption_stacks_a_band_with_dark_text():
    out = caption(_frame(255, h=60, w=120), "epoch 3")
    assert out.shape[0] > 60 and out.shape[1] == 120
    assert out[: out.shape[0] - 60].min() < 100  # some text was drawn


def test_progress_gif_orders_epochs_numerically(tmp_path):
    run = tmp_path / "run"
    for epoch, value in ((10, 200), (2, 100), (0, 0)):
        save_image(_frame(value, h=40, w=80), run / "recon" / f"epoch_{epoch:04d}.png")
    assert [e for e, _ in epoch_grids(run / "recon")] == [0, 2, 10]
    path = tmp_path / "p.gif"
    assert progress_gif(run / "recon", path, fps=4) == [0, 2, 10]
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.size[0] == 80 and im.size[1] > 40
        bottoms = [int(np.asarray(f.convert("RGB"))[-1, 0, 0]) for f in ImageSequence.Iterator(im)]
    assert bottoms == [0, 100, 200]


def test_evenly_spaced_keeps_both_ends_and_at_most_the_count():
    items = list(range(118))
    picked = evenly_spaced(items, 20)
    assert len(picked) == 20 and picked[0] == 0 and picked[-1] == 117
    assert picked == sorted(set(picked)) and max(b - a for a, b in zip(picked, picked[1:])) <= 7
    assert evenly_spaced(items[:5], 20) == items[:5] and evenly_spaced(items, None) == items
    assert evenly_spaced(items, 1) == [117] and evenly_spaced(items, 2) == [0, 117]


def test_progress_gif_frames_picks_spread_epochs(tmp_path):
    run = tmp_path / "run"
    for epoch in range(7):
        save_image(_frame(epoch * 30, h=40, w=80), run / "recon" / f"epoch_{epoch:04d}.png")
    path = tmp_path / "p.gif"
    assert progress_gif(run / "recon", path, fps=4, frames=3) == [0, 3, 6]
    with Image.open(path) as im:
        bottoms = [int(np.asarray(f.convert("RGB"))[-1, 0, 0]) for f in ImageSequence.Iterator(im)]
    assert bottoms == [0, 90, 180]  # epochs 0, 3 and 6


def test_progress_gif_without_grids_is_a_clear_error(tmp_path):
    (tmp_path / "run" / "recon").mkdir(parents=True)
    with pytest.raises(FacevaeError, match="recon/epoch_"):
        progress_gif(tmp_path / "run" / "recon", tmp_path / "p.gif")
    with pytest.raises(FacevaeError, match="nope/recon/epoch_"):  # no folder: the same message
        progress_gif(tmp_path / "nope" / "recon", tmp_path / "p.gif")

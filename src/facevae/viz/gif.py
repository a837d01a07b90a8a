"""Animated GIFs: frames with captions, ping-pong loops, and a run's training progress."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facevae.errors import FacevaeError
from facevae.io import atomic_write

EPOCH_GRID = re.compile(r"epoch_(\d+)\.png$")


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at `size` px (no system fonts needed)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def caption(frame: np.ndarray, text: str, height: int | None = None) -> np.ndarray:
    """A white band with `text` centred on it, stacked above the (H, W, 3) uint8 frame."""
    h, w = frame.shape[:2]
    band_h = height or max(14, min(28, h // 6))
    band = Image.new("RGB", (w, band_h), "white")
    draw = ImageDraw.Draw(band)
    f = font(int(band_h * 0.7))
    box = draw.textbbox((0, 0), text, font=f)
    draw.text(((w - (box[2] - box[0])) / 2 - box[0], (band_h - (box[3] - box[1])) / 2 - box[1]), text,
              fill="black", font=f)
    return np.concatenate([np.asarray(band), frame], axis=0)


def resize(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if w == width:
        return frame
    img = Image.fromarray(frame).resize((width, max(1, round(h * width / w))), Image.LANCZOS)
    return np.asarray(img)


def pingpong(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """a b c d -> a b c d c b: loops back without repeating the ends."""
    frames = list(frames)
    return frames + frames[-2:0:-1]


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 8.0,
             hold: Mapping[int, int] | None = None) -> Path:
    """(H, W, 3) uint8 frames as a looping GIF; frame i is shown hold[i] times as long (negative i from the end)."""
    if not frames:
        raise FacevaeError("no frames to write: nothing to animate")
    if fps <= 0:
        raise FacevaeError(f"--fps must be positive, got {fps}")
    size = frames[0].shape[:2]
    if any(f.shape[:2] != size for f in frames):
        raise FacevaeError("GIF frames differ in size: resize them to one size first")
    ms = max(20, round(1000 / fps))
    durations = [ms] * len(frames)
    for i, times in (hold or {}).items():
        durations[i] *= times
    # one adaptive palette per frame keeps skin tones smooth; GIF allows 256 colours per frame
    images = [Image.fromarray(f).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
              for f in frames]
    path = Path(path)
    atomic_write(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                                                  duration=durations, loop=0, optimize=False, disposal=1))
    return path


def epoch_grids(grid_dir: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the per-epoch reconstruction grids (epoch_NNNN.png) in `grid_dir`, in epoch order."""
    grid_dir = Path(grid_dir)
    found = sorted((int(m.group(1)), p) for p in grid_dir.glob("epoch_*.png")
                   if (m := EPOCH_GRID.search(p.name))) if grid_dir.is_dir() else []
    if not found:
        # the pattern under its folder, so the message says where the grids were looked for
        raise FacevaeError(f"no per-epoch reconstruction grids ({grid_dir / 'epoch_*.png'}): training writes "
                           "them as it finishes each epoch")
    return found


def evenly_spaced(items: list, most: int | None) -> list:
    """At most `most` of `items`, evenly spread, the first and the last always kept."""
    if most is None or len(items) <= most:
        return items
    if most == 1:
        return items[-1:]
    picks = sorted({round(i * (len(items) - 1) / (most - 1)) for i in range(most)})
    return [items[i] for i in picks]


def progress_gif(grid_dir: str | Path, out: str | Path, fps: float = 2.0, width: int | None = None,
                 frames: int | None = None) -> list[int]:
    """A GIF of the reconstruction grids in `grid_dir`, one frame per epoch (or `frames`
    evenly spaced epochs: a 100-epoch run makes a GIF of megabytes), captioned with the epoch number.
    Returns the epochs drawn, in order."""
    grids = evenly_spaced(epoch_grids(grid_dir), frames)
    images = []
    for epoch, path in grids:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except OSError:
            raise FacevaeError(f"cannot read {path}: it is damaged; delete it and run again") from None
        images.append(arr)
    width = width or images[0].shape[1]
    images = [resize(f, width) for f in images]
    height = min(f.shape[0] for f in images)
    # numbered as train numbers them (in metrics.jsonl and the grids' names), so a frame can be looked up
    images = [caption(f[:height], f"epoch {epoch}") for (epoch, _), f in zip(grids, images)]
    save_gif(images, out, fps=fps, hold={-1: 3})
    return [epoch for epoch, _ in grids]

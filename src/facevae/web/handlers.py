"""What each interaction on the page does, as plain functions of plain values.

A session's state is a dict of latent codes (`grid`, `base`, `a`, `b`); handlers
return a new dict instead of changing the old one. Images go out as uint8
(H, W, 3) arrays at the model's resolution. No Gradio here: `page.py` wires these
to components, and the benchmark and tests call them directly.
"""
from __future__ import annotations

import collections
import tempfile
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facevae.errors import FacevaeError
from facevae.io import atomic_write
from facevae.data.photos import prepared_photo_notes, resolve_align
from facevae.web.explorer import Explorer
from facevae.web.upload import read_upload

N_FACES = 12
FILES_KEEP = 64  # named PNGs and GIFs kept on disk for download; older ones are deleted
GIF_WIDTH = 128  # small models' GIFs are scaled up to at least this width
MAX_SEED = 2**32 - 1  # the page's seed box stops here; larger seeds are capped, not wrapped

State = dict


class Handlers:
    """One method per interaction of the page, sharing one Explorer; downloads go to `gif_dir` (a temp folder)."""

    def __init__(self, explorer: Explorer, n_faces: int = N_FACES, gif_dir: str | Path | None = None,
                 examples: list[bytes] = (), align: bool | None = None):
        self.ex = explorer
        self.align = align  # uploads: None aligns when the align extra is installed
        self.n_faces = n_faces
        self.examples = list(examples)  # photos (file bytes) offered on the page, e.g. from --data
        self._tmp = None if gif_dir else tempfile.TemporaryDirectory(prefix="facevae-web-")
        self.gif_dir = Path(gif_dir or self._tmp.name)
        self._files: collections.deque[Path] = collections.deque()
        self._slider_names = [n.lower() for n in explorer.attr_names] + [f"z{int(d)}" for d in explorer.dims]

    @property
    def zeros(self) -> tuple[float, ...]:
        return (0.0,) * self.ex.n_sliders

    # ------------------------------------------------------------------ random faces

    def start(self, sampler: str, temperature: float, seed: int, steps: int, mode: str) -> tuple:
        """Page load: a grid of faces, the first one chosen, an interpolation from the first to the second.

        -> (faces, state, chosen, edited, *slider zeros, A, B, strip, gif)
        """
        faces, state = self.draw(sampler, temperature, seed, None)
        second = min(1, len(faces) - 1)
        grid = state["grid"]
        state = {**state, "base": grid[0], "a": grid[0], "b": grid[second]}
        strip_, gif = self.interpolate(state, steps, mode)
        # every picture but the strip is already decoded in the grid
        return (faces, state, faces[0], faces[0], *self.zeros, faces[0], faces[second], strip_, gif)

    def draw(self, sampler: str, temperature: float, seed: int, state: State | None) -> tuple[list, State]:
        """-> (faces, state): the grid for exactly this sampler, temperature and seed."""
        z = self.ex.sample(sampler, self.n_faces, _seed(seed), float(temperature))
        return list(self.ex.decode(z)), {**(state or _empty()), "grid": z}

    def new_faces(self, sampler: str, temperature: float, seed: int, state: State | None) -> tuple[int, list, State]:
        """The "new faces" button: the next seed, so every grid can be drawn again. -> (seed, faces, state)"""
        seed = (_seed(seed) + 1) % (MAX_SEED + 1)
        return (seed, *self.draw(sampler, temperature, seed, state))

    # ------------------------------------------------------------------ choosing and editing

    def choose(self, state: State | None, index: int) -> tuple:
        """Pick a face of the grid to edit. -> (state, chosen, edited, *slider zeros)"""
        state = _ready(state, "grid")
        if not 0 <= int(index) < len(state["grid"]):
            raise FacevaeError(f"there is no face number {index} in the grid")
        return self._set_base(state, state["grid"][int(index)])

    def edit(self, state: State | None, *values: float) -> np.ndarray:
        """Any slider moved: the chosen face with every slider applied (one decode)."""
        state = _ready(state, "base")
        return self.ex.decode(self.ex.edit(state["base"], values)[None])[0]

    def reset(self, state: State | None) -> tuple:
        """-> (edited, *slider zeros): the chosen face as it was."""
        state = _ready(state, "base")
        return (self.ex.decode(state["base"][None])[0], *self.zeros)

    def upload(self, data: bytes | None, state: State | None) -> tuple:
        """A face photo: aligned to the CelebA template (with the align extra) or cropped like CelebA,
        encoded, and chosen for editing.

        -> (warnings, what the model sees, reconstruction, state, chosen, edited, *slider zeros), where
        warnings is "" or a note on a photo taken but badly suited (a face smaller than the model's
        faces; when centre-cropped, landscape or very tall); FacevaeError with a message for the page
        when the bytes are not a usable image or, when aligning, hold no face.
        """
        img = read_upload(data)
        size, crop = self.ex.image_size, self.ex.cfg.data.crop
        align = resolve_align(self.align)
        x, said = prepared_photo_notes(img, size, crop, align)
        mu = self.ex.encode(x)
        state, chosen, edited, *zeros = self._set_base(state or _empty(), mu)
        notes = " ".join(n[0].upper() + n[1:] for n in said)
        return (notes, np.ascontiguousarray(x.transpose(1, 2, 0)), chosen, state, chosen, edited, *zeros)

    def example(self, state: State | None, index: int) -> tuple:
        """An example photo clicked: taken exactly as if it had been uploaded. -> as `upload`"""
        if not 0 <= int(index) < len(self.examples):
            raise FacevaeError(f"there is no example photo number {index}")
        return self.upload(self.examples[int(index)], state)

    def _set_base(self, state: State, base: torch.Tensor) -> tuple:
        face = self.ex.decode(base[None])[0]
        return ({**state, "base": base}, face, face, *self.zeros)

    # ------------------------------------------------------------------ interpolation

    def set_end(self, which: str, state: State | None, *values: float) -> tuple[State, np.ndarray]:
        """The edited face (sliders applied) becomes end `which` ("a" or "b") of the strip. -> (state, face)"""
        if which not in ("a", "b"):
            raise FacevaeError(f"an interpolation end is 'a' or 'b', not {which!r}")
        state = _ready(state, "base")
        z = self.ex.edit(state["base"], values)
        return {**state, which: z}, self.ex.decode(z[None])[0]

    def interpolate(self, state: State | None, steps: int, mode: str) -> tuple[np.ndarray, str]:
        """-> (strip of `steps` faces from A to B, path of a looping GIF of it)."""
        state = _ready(state, "a", "b")
        steps = int(steps)
        if not 2 <= steps <= 32:
            raise FacevaeError(f"the strip takes 2 to 32 steps, got {steps}")
        frames = self.ex.decode(self.ex.interpolate(state["a"], state["b"], steps, mode))
        return strip(frames), str(write_gif(frames, self._new_file(f"facevae-interpolation-{mode}-{steps}.gif")))

    # ------------------------------------------------------------------ downloads

    def named_png(self, image: np.ndarray, name: str) -> str:
        """`image` as a PNG file called `name`, the name a download from the page gets."""
        path = self._new_file(name)
        atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
        return str(path)

    def edit_name(self, values) -> str:
        """'facevae-edit-smiling+2-z17-1.5.png': what the sliders did, for the edited face's download."""
        moved = [f"{name}{float(v):+g}" for name, v in zip(self._slider_names, values) if v]
        return "facevae-" + ("edit-" + "-".join(moved[:4]) + ("-etc" if len(moved) > 4 else "") if moved
                             else "face") + ".png"

    def _new_file(self, name: str) -> Path:
        """A path called `name` in a folder of its own (names repeat); the oldest beyond FILES_KEEP are deleted."""
        folder = self.gif_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        self._files.append(folder / name)
        while len(self._files) > FILES_KEEP:
            old = self._files.popleft()
            old.unlink(missing_ok=True)
            old.parent.rmdir()
        return folder / name


def write_gif(frames: np.ndarray, path: Path, fps: float = 8.0) -> Path:
    """A there-and-back looping GIF of (N, H, W, 3) uint8 frames, at least GIF_WIDTH wide.

    Fast octree palettes take ~0.3 ms a frame where median cut takes ~20 ms, which
    keeps the whole interpolation answer well inside the page's latency budget.
    """
    scale = max(1, -(-GIF_WIDTH // frames.shape[2]))
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.BICUBIC)
              .quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for f in frames]
    loop = images + images[-2:0:-1]  # there and back, the ends shown once
    ms = max(20, round(1000 / fps))
    atomic_write(path, lambda tmp: loop[0].save(tmp, format="GIF", save_all=True, append_images=loop[1:],
                                                duration=ms, loop=0, disposal=1))
    return path


def strip(frames: np.ndarray, padding: int = 2) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one row (H + 2p, N (W + p) + p, 3) on white."""
    n, h, w, _ = frames.shape
    out = np.full((h + 2 * padding, n * (w + padding) + padding, 3), 255, np.uint8)
    for i, f in enumerate(frames):
        x = padding + i * (w + padding)
        out[padding:padding + h, x:x + w] = f
    return out


def _empty() -> State:
    return {"grid": None, "base": None, "a": None, "b": None}


def _ready(state: State | None, *keys: str) -> State:
    if state is None or any(state.get(k) is None for k in keys):
        raise FacevaeError("the page has not finished loading: wait a moment, or reload it")
    return state


def _seed(seed) -> int:
    try:
        seed = int(seed or 0)
    except (TypeError, ValueError, OverflowError):
        raise FacevaeError(f"the seed must be a whole number, got {seed!r}") from None
    return min(max(seed, 0), MAX_SEED)


def example_photos(data: str | Path, n: int = 8) -> list[bytes]:
    """The first `n` validation photos of a CelebA folder, as file bytes (the page's examples)."""
    from facevae.data import open_dataset

    ds = open_dataset(data)
    try:
        idx = ds.split_indices("valid")[:n]
    except FacevaeError:
        idx = ds.split_indices("train")[:n]
    return [p.read_bytes() for p in ds.paths(idx)]

"""Decode, crop and resize every image once into a memory-mapped uint8 array.

The cache is keyed by the source folder, its file list and the preprocessing
parameters, so a changed folder or setting gets a new cache. The build runs in
worker processes, writes chunk by chunk and records finished chunks, so a killed
build resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from facevae.config import RunConfig
from facevae.data.celeba import FaceDataset
from facevae.errors import FacevaeError
from facevae.io import atomic_write_text, user_cache

CACHE_VERSION = 1
CELEBA_WIDTH = 178  # crop is given in pixels of the aligned 178x218 CelebA image
CHUNK = 512
DRAFT_VERSION = 2  # draft-mode pixels changed (crop alignment): new keys for draft caches only


def crop_side(width: float, height: float, crop: int) -> float:
    """The side, in the image's pixels, of the centre square `preprocess_image` takes."""
    return min(crop * width / CELEBA_WIDTH, width, height)


def preprocess_image(img: Image.Image, size: int, crop: int, draft: bool = False) -> np.ndarray:
    """Center crop (in CelebA-width units, scaled to this image) then antialiased resize.

    Returns uint8 (3, size, size).
    """
    w, h = img.size
    c = crop_side(w, h, crop)
    if draft and img.format == "JPEG":
        # let libjpeg decode at 1/2, 1/4 or 1/8 scale while the crop still covers `size`
        scale = size / c
        drafted = img.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
        if drafted:
            # the scale is the box libjpeg reports (w / 2**k), not the rounded-up new size: using
            # the size shifted the crop by up to half a source pixel (mean error 5/255 at 32px)
            r = drafted[1][2] / w
            w, h, c = w * r, h * r, c * r
    img = img.convert("RGB")
    left, top = (w - c) / 2, (h - c) / 2
    out = img.resize((size, size), Image.BICUBIC, box=(left, top, left + c, top + c))
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))  # writable, CHW


MAX_IMAGE_PIXELS = 40_000_000  # no face photo needs more; a small file can decode to gigabytes


def too_large(name: str, pixels: int | None) -> FacevaeError:
    """The one error for an image over MAX_IMAGE_PIXELS; `name` says which ("image PATH", "the photo")."""
    size = f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels"
    return FacevaeError(f"{name} is too large to decode ({size}; at most "
                        f"{MAX_IMAGE_PIXELS // 10**6} megapixels): shrink it or pick another")


def load_image(path: Path, size: int, crop: int, draft: bool = False) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:  # known from the header, before decoding
                raise too_large(f"image {path}", img.width * img.height)
            return preprocess_image(img, size, crop, draft)
    except FileNotFoundError:
        raise FacevaeError(f"image {path} does not exist: check the path") from None
    except Image.DecompressionBombError as e:
        # PIL refuses the largest ones itself, in Image.open, naming its own limit: keep only the size
        found = re.search(r"\((\d+) pixels\)", str(e))
        raise too_large(f"image {path}", int(found[1]) if found else None) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FacevaeError(
            f"cannot read image {path} ({e.__class__.__name__}): it is corrupt or not an image; "
            "replace or delete it and run again"
        ) from None


def _decode_chunk(paths: list[str], size: int, crop: int, draft: bool) -> np.ndarray:
    return np.stack([load_image(Path(p), size, crop, draft) for p in paths])


def cache_key(dataset: FaceDataset, size: int, crop: int, draft: bool) -> str:
    names = hashlib.sha1("\n".join(dataset.filenames).encode()).hexdigest()
    ident = json.dumps(
        {"root": str(dataset.image_dir.resolve()), "files": names, "n": len(dataset),
         "size": size, "crop": crop, "draft": DRAFT_VERSION if draft else False, "v": CACHE_VERSION},
        sort_keys=True,
    )
    return f"{dataset.image_dir.parent.name or 'data'}-{size}px-{hashlib.sha1(ident.encode()).hexdigest()[:16]}"


def load_images(dataset: FaceDataset, cfg: RunConfig, progress: bool = True) -> np.ndarray:
    """All images of `dataset` preprocessed as `cfg` says (size, crop, draft), through the cache."""
    return cached_images(dataset, cfg.model.image_size, cfg.data.crop, cfg.data.draft, workers=cfg.data.workers,
                         progress=progress)


def cached_images(
    dataset: FaceDataset,
    size: int,
    crop: int,
    draft: bool = False,
    cache_dir: Path | None = None,
    workers: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """All images of `dataset` as a read-only memmap of uint8 (N, 3, size, size)."""
    cache_dir = Path(cache_dir or user_cache())
    key = cache_key(dataset, size, crop, draft)
    final = cache_dir / f"{key}.npy"
    if not final.exists():
        with _build_lock(cache_dir, key):  # DDP ranks (or two commands) share one build
            if not final.exists():
                _build(dataset, size, crop, draft, cache_dir, key, workers, progress)
    try:
        return np.load(final, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise FacevaeError(f"image cache {final} is damaged ({e}): delete it and run again") from None


@contextlib.contextmanager
def _build_lock(cache_dir: Path, key: str):
    """An exclusive lock on the build of `key`; whoever waits finds the cache built when it gets the lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, concurrent builds are the caller's business
        yield
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    lock = cache_dir / f"{key}.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
            # removed only once the cache exists, so no later process can start a second build
            lock.unlink(missing_ok=True)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(dataset, size, crop, draft, cache_dir: Path, key: str, workers: int, progress: bool) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial, done_file = cache_dir / f"{key}.npy.partial", cache_dir / f"{key}.done.json"
    shape = (len(dataset), 3, size, size)
    arr, done = _resume(partial, done_file, shape)
    n_chunks = math.ceil(len(dataset) / CHUNK)
    todo = [c for c in range(n_chunks) if c not in done]
    paths = [str(p) for p in dataset.paths()]
    workers = min(workers or os.cpu_count() or 1, max(1, len(todo)))
    bar = tqdm(total=len(dataset), initial=len(dataset) - sum(_chunk_len(c, len(dataset)) for c in todo),
               desc=f"caching {size}px images", unit="img", disable=not progress)
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_decode_chunk, paths[c * CHUNK:(c + 1) * CHUNK], size, crop, draft): c for c in todo}
            try:
                for fut in as_completed(futures):
                    c = futures[fut]
                    arr[c * CHUNK:(c + 1) * CHUNK] = fut.result()
                    done.add(c)
                    if len(done) % 8 == 0:
                        _record(arr, done, done_file)
                    bar.update(_chunk_len(c, len(dataset)))
            except BaseException:
                for f in futures:  # else leaving the pool would decode every queued chunk first
                    f.cancel()
                raise
            finally:
                _record(arr, done, done_file)  # finished chunks survive a failure or a kill
    finally:
        bar.close()
    del arr
    os.replace(partial, cache_dir / f"{key}.npy")
    done_file.unlink(missing_ok=True)


def _resume(partial: Path, done_file: Path, shape: tuple[int, ...]) -> tuple[np.memmap, set[int]]:
    """The partial array and its recorded chunks, or a fresh array when there is nothing usable."""
    if partial.exists() and done_file.exists():
        try:
            record = json.loads(done_file.read_text())
            arr = np.load(partial, mmap_mode="r+")
        except (ValueError, OSError):
            record, arr = None, None
        # chunk numbers only mean something with the chunk size they were recorded with
        if isinstance(record, dict) and record.get("chunk") == CHUNK and arr is not None and arr.shape == shape:
            return arr, set(record["done"])
    return np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape), set()


def _chunk_len(c: int, n: int) -> int:
    return min(CHUNK, n - c * CHUNK)


def _record(arr: np.memmap, done: set[int], done_file: Path) -> None:
    arr.flush()  # pixels on disk before the record claims them
    atomic_write_text(done_file, json.dumps({"chunk": CHUNK, "done": sorted(done)}))

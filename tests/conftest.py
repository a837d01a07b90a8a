"""Shared fixtures: the mini CelebA, a per-session image cache, tiny configs, fake CelebA folders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevae.config import RunConfig

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEVAE_DATA", REPO.parent / "shared" / "celeba_mini")).resolve()
ATTR_NAMES = ["Smiling", "Eyeglasses", "Male"]


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """One image cache per test session, never the user's ~/.cache."""
    if "FACEVAE_TEST_CACHE" in os.environ:  # lets a developer reuse a built cache between runs
        os.environ["FACEVAE_CACHE"] = os.environ["FACEVAE_TEST_CACHE"]
    else:
        os.environ["FACEVAE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def celeba_root() -> Path:
    if not (DATA / "img_align_celeba").is_dir():
        pytest.skip(f"mini CelebA not found at {DATA} (set FACEVAE_DATA)")
    return DATA


@pytest.fixture(scope="module")
def inception():
    """NVIDIA's FID Inception on the CPU (tests/metrics and tests/tasks); skips where it is not installed."""
    from facevae.metrics import fid

    path = fid.default_inception_path()
    if path is None or not path.is_file():
        pytest.skip(f"FID Inception not installed: {fid.INSTALL_HINT}")
    return fid.InceptionFeatures(path, device="cpu")


def tiny_config(*extra: str) -> RunConfig:
    """A model small enough to train in seconds on 2 cores."""
    return RunConfig().override([
        "model.image_size=32", "model.widths=[8,16,32]", "model.latent_dim=8",
        "train.batch_size=16", "train.log_every=1", "train.ckpt_every=1000", "train.val_batches=1",
        "train.grid_images=4", "data.workers=1", *extra,
    ])


def train_tiny(factory, n: int = 40, *extra: str) -> tuple[Path, Path]:
    """(run, data): a fake CelebA folder of `n` images and a tiny model trained on it for two steps."""
    from facevae.training.run import train

    data = make_celeba(factory.mktemp("data") / "celeba", n=n)
    run = factory.mktemp("runs") / "tiny"
    train(data, run, tiny_config("train.max_steps=2", *extra), device="cpu", progress=False)
    return run, data


def write_jpeg(path: Path, seed: int, size=(178, 218)) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(base).resize(size, Image.BILINEAR).save(path, quality=90)


def make_celeba(root: Path, n: int = 24, *, crlf: bool = True, missing: int = 0, attrs=ATTR_NAMES,
                valid_every: int = 4) -> Path:
    """A small folder in CelebA's original layout; the last `missing` listed images are not written."""
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for i, name in enumerate(names[: n - missing]):
        write_jpeg(img_dir / name, i)
    nl = "\r\n" if crlf else "\n"
    rng = np.random.default_rng(0)
    rows = [f"{name} " + " ".join(str(v) for v in rng.choice([-1, 1], size=len(attrs))) for name in names]
    (root / "list_attr_celeba.txt").write_text(nl.join([str(n), " ".join(attrs), *rows]) + nl, newline="")
    parts = [f"{name} {1 if i % valid_every == 0 else 0}" for i, name in enumerate(names)]
    (root / "list_eval_partition.txt").write_text(nl.join(parts) + nl, newline="")
    (root / "identity_CelebA.txt").write_text(nl.join(f"{name} {i % 5}" for i, name in enumerate(names)) + nl, newline="")
    return root


def mini_slice(src: Path, dst: Path, n_train: int, n_valid: int) -> Path:
    """A CelebA folder with the first training and validation images of `src` (symlinked).

    The annotation files are cut down to those images: its cache builds, and its annotations parse, in a second.
    """
    images = dst / "img_align_celeba"
    images.mkdir(parents=True)
    partition = (src / "list_eval_partition.txt").read_text().splitlines()
    rows = [line.split() for line in partition if line.strip()]
    keep = [f for f, p in rows if p == "0"][:n_train] + [f for f, p in rows if p == "1"][:n_valid]
    for name in keep:
        os.symlink(src / "img_align_celeba" / name, images / name)
    wanted = set(keep)

    def kept(lines: list[str]) -> list[str]:
        return [ln for ln in lines if ln.split(" ", 1)[0] in wanted]

    (dst / "list_eval_partition.txt").write_text("\n".join(kept(partition)) + "\n")
    attrs = (src / "list_attr_celeba.txt").read_text().splitlines()
    (dst / "list_attr_celeba.txt").write_text("\n".join([str(len(keep)), attrs[1], *kept(attrs[2:])]) + "\n")
    return dst


@pytest.fixture
def fake_celeba(tmp_path) -> Path:
    return make_celeba(tmp_path / "celeba")

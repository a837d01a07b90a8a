"""The memorisation check: each sample's nearest training image in Inception feature space.

    python benchmarks/memorisation.py --ckpt runs/bundle128 --data ../shared/celeba_mini \\
        --sampler gmm --samples 10000 --fid-work runs/fid10k/c128 --train-features runs/fid_ref128 \\
        --picture docs/images/nearest_c128.png --results docs/results_memorisation.jsonl --label celeba128

Features come from the folders the FID jobs already filled, so after a FID-10k run this
costs one matrix product: `--fid-work` is benchmarks/protocol_fid.py's --work (its
<sampler>/ and valid/ chunks), `--train-features` is tools/fid_reference.py's --work (all
train images, in split order). Missing chunks are computed and kept, as those scripts do.
Writes a picture of the first 64 samples above their nearest train images, a histogram of
the nearest-train distances of the samples and of the valid images, and one JSON row: a
model that copies puts its samples much nearer the training set than unseen faces are.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from facevae.data import load_images, open_dataset
from facevae.metrics import fid
from facevae.metrics.neighbours import distance_summary, nearest
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.samplers import get_sampler
from facevae.tasks import evaluate as ev
from facevae.viz.grid import pairs_grid, save_image
from facevae.viz.plots import save_figure, subplots

from protocol_fid import CHUNK, drawing_model, emit, samples_of  # noqa: E402  (benchmarks/ is the script's folder)

TRAIN_CHUNK = 1000  # tools/fid_reference.py's chunk
PICTURE = 64
CHECK = 8  # images featurised afresh to check that stored features belong to this run


def check_stored(work: Path, first_images: Callable[[], torch.Tensor], extractor, where: str) -> None:
    """Featurise the first few images afresh and compare them with the features already stored in `work`.

    The chunk folders carry no key, so this is what catches features another model, seed or image
    size left there; it runs before any chunk is computed, so a wrong folder fails in seconds, not an hour.
    """
    first = work / "features-000000.npy"
    if not first.is_file():
        return  # nothing stored: whatever is computed now belongs to this run
    stored = np.load(first, mmap_mode="r")[:CHECK]
    fresh = extractor(first_images()).double().cpu().numpy()
    if stored.shape != fresh.shape or not np.allclose(stored, fresh, rtol=1e-3, atol=1e-4):
        raise SystemExit(f"the features in {work} were made from other images than this run's ({where}): "
                         "give an empty folder (or the one this very model, seed and size filled)")


def histogram(samples: np.ndarray, valid: np.ndarray, label: str, out: Path) -> Path:
    fig, ax = subplots(figsize=(6, 3.4))
    bins = np.linspace(0, max(samples.max(), valid.max()), 60)
    ax.hist(valid, bins=bins, density=True, alpha=0.55, label=f"{len(valid):,} valid images")
    ax.hist(samples, bins=bins, density=True, alpha=0.55, label=f"{len(samples):,} samples ({label})")
    ax.set_xlabel("distance to the nearest train image (Inception pool features)")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    return save_figure(fig, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="run folder, weights file or bundled name; default: celeba64")
    ap.add_argument("--data", required=True)
    ap.add_argument("--sampler", default="gmm")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fid-work", required=True, help="protocol_fid.py's --work folder")
    ap.add_argument("--train-features", required=True, help="tools/fid_reference.py's --work folder")
    ap.add_argument("--picture", required=True, help="PNG: 64 samples above their nearest train images")
    ap.add_argument("--results", default=None, help="JSONL file the row is appended to")
    ap.add_argument("--label", default="model")
    ap.add_argument("--decoder", default="likelihood", choices=("likelihood", "sharp"),
                    help="the decoder that drew the samples: as given to protocol_fid.py")
    a = ap.parse_args()
    dev = torch.device("cpu")
    loaded = load_model(a.ckpt, dev)
    extractor = fid.InceptionFeatures(device=dev)
    ds = open_dataset(a.data, loaded.config.data.val_fraction)
    images = load_images(ds, loaded.config, progress=False)
    train_idx, valid_idx = ds.split_indices("train"), ds.split_indices("valid")
    sampler = get_sampler(loaded, name=a.sampler, data=a.data, device=dev, progress=False)
    decoded = samples_of(drawing_model(loaded, a.decoder), sampler, a.samples, a.seed, dev)
    work, train_work = Path(a.fid_work), Path(a.train_features)
    check_stored(work / a.sampler, lambda: decoded(0, CHECK), extractor, "--seed, --samples, --ckpt, --decoder")
    check_stored(train_work, lambda: ev.read_subset(images, train_idx[:CHECK]), extractor, "image size and crop")
    check_stored(work / "valid", lambda: ev.read_subset(images, valid_idx[:CHECK]), extractor, "image size and crop")
    train = ev.resumable_features(train_work, len(train_idx),
                                  lambda s, e: ev.read_subset(images, train_idx[s:e]), extractor, TRAIN_CHUNK)[0]
    valid = ev.resumable_features(work / "valid", len(valid_idx),
                                  lambda s, e: ev.read_subset(images, valid_idx[s:e]), extractor, CHUNK)[0]
    samples = ev.resumable_features(work / a.sampler, a.samples, decoded, extractor, CHUNK)[0]
    s_idx, s_dist = nearest(samples, train)
    _, v_dist = nearest(valid, train)

    shown = decoded(0, PICTURE)
    neighbours = ev.read_subset(images, train_idx[s_idx[:PICTURE]])
    save_image(pairs_grid(shown.float() / 255, neighbours.float() / 255), a.picture)
    hist = histogram(s_dist, v_dist, a.sampler, Path(a.picture).with_name(Path(a.picture).stem + "_hist.png"))
    row = {"model": a.label, "weights_sha1": loaded.weights_id, "decoder": a.decoder, "sampler": a.sampler, "seed": a.seed,
           "image_size": loaded.config.model.image_size, "train_images": len(train),
           "samples": distance_summary(s_dist), "valid": distance_summary(v_dist),
           # the share of samples nearer a train image than 99% of unseen faces are: about 0.01 without copying
           "samples_below_valid_p1": round(float((s_dist < np.percentile(v_dist, 1)).mean()), 4),
           "picture": str(a.picture), "histogram": str(hist), "first_neighbours": s_idx[:8].tolist(),
           "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}
    emit(row, a.results)


if __name__ == "__main__":
    main()

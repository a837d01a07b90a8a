"""FID-N of a model's samplers on the mini-CelebA CPU protocol, resumable.

    python benchmarks/protocol_fid.py --data ../shared/celeba_mini --work runs/fid10k/bundled \\
        --samplers prior,gmm,two_stage,gaussian --samples 10000 --results docs/results_fid10k.jsonl

The protocol (docs/results.md): N samples per sampler (one seeded CPU generator), decoded
and rounded to 8 bits as a PNG would be, against the committed Inception statistics of all
24,012 mini-CelebA train images (crop 148, 64x64; pretrained/fid), and against the 780
valid images as a memorisation check. The name `reconstructions` in --samplers scores the
model's reconstructions (posterior means decoded) of N seeded train images instead: no latent
sampler decoded by the same network can be expected to beat it by much. --decoder sharp draws
every image with the model's fine-tuned sharp decoder instead of its own. Features are saved
per chunk of 500 images under --work, so a killed run continues where it stopped when given
the same command; the wall time reported is the sum over the chunks actually computed.
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from facevae.data import load_images, open_dataset
from facevae.metrics.reference import mismatches
from facevae.metrics import fid
from facevae.metrics.recon import reconstruct_uint8
from facevae.tasks import evaluate as ev
from facevae.modelfiles.samplers import get_sampler
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.decoders import load_sharp_decoder

CHUNK = 500
RECONSTRUCTIONS = "reconstructions"


def add_seconds(work: Path, seconds: float) -> float:
    """Wall time over every run of this command, kept beside the features."""
    f = work / "seconds.json"
    total = (json.loads(f.read_text())["seconds"] if f.exists() else 0.0) + seconds
    f.write_text(json.dumps({"seconds": total}))
    return total


def samples_of(model, sampler, n: int, seed: int, dev: torch.device):
    """images(start, stop) of the sampler's n seeded samples, decoded."""
    with torch.no_grad():
        z = torch.cat(list(ev.sample_latents(sampler, n, seed, CHUNK)))
    return lambda start, stop: next(ev.decoded_batches(model, iter([z[start:stop]]), dev))


def reconstructions_of(model, images, indices, dev: torch.device):
    """images(start, stop) of the reconstructions of images[indices]."""
    return lambda start, stop: reconstruct_uint8(model, ev.read_subset(images, indices[start:stop]), dev)


def emit(row: dict, results: str | None) -> None:
    """Print one result row and append it to the JSONL file, when one is given."""
    print(json.dumps(row), flush=True)
    if results:
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")


def drawing_model(loaded, decoder: str):
    """The model drawing with its own decoder ("likelihood") or with its fine-tuned one ("sharp")."""
    if decoder == "likelihood":
        return loaded.model
    return loaded.model.with_decoder(load_sharp_decoder(loaded, required=True)[0])


def train_reference(ds, cfg, extractor, explicit: str | None) -> Path:
    """The committed statistics of all train images at the model's size and crop (a mismatch names its field)."""
    wanted = ev.wanted_protocol(ds, "train", 0, cfg, extractor.identity)
    if explicit is not None:
        bad = mismatches(fid.reference_protocol_of(explicit) or {}, wanted)
        if bad:
            raise SystemExit(f"--reference {explicit} does not fit this model and data (stored vs wanted: "
                             f"{'; '.join(bad)}): drop --reference to use the committed file that does")
        return Path(explicit)
    found = ev.committed_reference(wanted)
    if found is None:
        raise SystemExit(f"no committed reference statistics for {cfg.model.image_size}x{cfg.model.image_size}, "
                         f"crop {cfg.data.crop}: make them with tools/fid_reference.py --size {cfg.model.image_size}")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="run folder, weights file or bundled name (celeba64, celeba128); default: celeba64")
    ap.add_argument("--data", required=True)
    ap.add_argument("--samplers", default="prior,gmm,two_stage,gaussian")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", default=None,
                    help="reference statistics; default: the committed file that matches the model's protocol")
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", default=None, help="JSONL file each sampler's row is appended to")
    ap.add_argument("--label", default="bundled")
    # likelihood by default, so a committed row's command reproduces it after a sharp decoder ships
    ap.add_argument("--decoder", default="likelihood", choices=("likelihood", "sharp"),
                    help="the decoder that draws the images: the model's own, or its fine-tuned sharp one")
    a = ap.parse_args()
    dev = torch.device("cpu")
    loaded = load_model(a.ckpt, dev)
    model, cfg = drawing_model(loaded, a.decoder), loaded.config
    extractor = fid.InceptionFeatures(device=dev)
    ds = open_dataset(a.data, cfg.data.val_fraction)
    reference = train_reference(ds, cfg, extractor, a.reference)
    mu_ref, sigma_ref, protocol = fid.load_reference(reference)
    images = load_images(ds, cfg, progress=False)
    work = Path(a.work)
    valid_idx = ds.split_indices("valid")
    valid, _ = ev.resumable_features(work / "valid", len(valid_idx),
                                lambda s, e: ev.read_subset(images, valid_idx[s:e]), extractor, CHUNK)
    mu_valid, sigma_valid = fid.stats_of(valid)
    for name in filter(None, a.samplers.split(",")):
        if name == RECONSTRUCTIONS:
            decoded = reconstructions_of(model, images, ev.subset(ds.split_indices("train"), a.samples, a.seed), dev)
        else:
            decoded = samples_of(model, get_sampler(loaded, name=name, data=a.data, device=dev, progress=False),
                                 a.samples, a.seed, dev)
        feats, spent = ev.resumable_features(work / name, a.samples, decoded, extractor, CHUNK)
        row = {"model": a.label, "weights_sha1": loaded.weights_id, "decoder": a.decoder, "sampler": name,
               "samples": a.samples, "seed": a.seed,
               "fid_train_all": round(ev.fid_to_reference(feats, mu_ref, sigma_ref), 2),
               "reference": {"file": reference.name, "count": protocol["count"], "split": protocol["split"]},
               "fid_valid_780": round(ev.fid_to_reference(feats, mu_valid, sigma_valid), 2),
               "seconds": round(add_seconds(work / name, spent), 1),
               "machine": f"CPU, {torch.get_num_threads()} threads", "torch": torch.__version__,
               "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}
        emit(row, a.results)


if __name__ == "__main__":
    main()

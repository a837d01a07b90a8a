"""Package a trained run as a bundled model (src/facevae/pretrained/).

    python tools/make_bundle.py --run runs/bundle --data ../shared/celeba_mini              # celeba64
    python tools/make_bundle.py --run runs/bundle128 --data ../shared/celeba_mini --name celeba128

Writes NAME.safetensors (fp16 weights + config), the fitted gaussian, GMM-10,
two-stage and diffusion samplers (fp16 weight matrices for the two neural ones) and
the 40 attribute vectors beside it, so `facevae sample`, `edit` and `serve` work
with no data after install.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from facevae.modelfiles import BUNDLED, BUNDLED_NAMES
from facevae.modelfiles.checkpoint import bundled_weights, load_model, save_weights


SAMPLERS = ("gaussian", "gmm", "two_stage", "diffusion")
# narrower stored matrices keep the bundle under 10 MB; the bundle is scored as shipped:
# fp16 network weights, float32 GMM factors (fitted in float64, sampled in float64 from them)
STORED = {"two_stage": torch.float16, "diffusion": torch.float16, "gmm": torch.float32}


def remove_bundle(target: Path) -> None:
    """This name's weights, samplers and attribute vectors; the other bundled models stay."""
    if not target.is_file():
        return
    old_id = load_model(target).weights_id
    for old in [target, *target.parent.glob(f"*-{old_id}.safetensors"),
                *target.parent.glob(f"{target.stem}.*.safetensors")]:
        old.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--components", type=int, default=10)
    ap.add_argument("--name", default=BUNDLED, choices=BUNDLED_NAMES, help="the bundled name it replaces or adds")
    args = ap.parse_args()

    run = load_model(args.run)
    step = "" if run.step is None else str(run.step)
    target = bundled_weights(args.name)
    remove_bundle(target)
    save_weights(target, run.config, run.model.state_dict(), {"step": step, "source": str(args.run.name)}, dtype=torch.float16)
    print(f"weights: {target} ({target.stat().st_size / 1e6:.1f} MB, step {step})")

    # fit with the bundled (fp16-rounded) weights, exactly what users will load
    bundle = load_model(args.name)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FACEVAE_CACHE"] = cache  # user-cache writes land here, then get copied into the package
        from facevae.modelfiles.attributes import attribute_bank, cache_paths
        from facevae.modelfiles.sampler_files import save_sampler
        from facevae.modelfiles.samplers import fit_on_latents, sampler_file, train_latents

        means = train_latents(bundle.model, bundle.config, args.data, "cpu")  # one encoding pass for all fits
        for name in SAMPLERS:
            sampler = fit_on_latents(name, args.components, means, "cpu")
            shipped = target.parent / sampler_file(name, args.components, bundle)
            save_sampler(sampler, shipped, dtype=STORED.get(name))
            print(f"sampler: {shipped} ({shipped.stat().st_size / 1e6:.1f} MB)")
        attribute_bank(bundle, data=args.data)
        reads, write = cache_paths(bundle)
        shutil.copy2(write, reads[0])
        print(f"attributes: {reads[0]}")
    print(json.dumps({"bundle": [p.name for p in sorted(target.parent.glob('*.safetensors'))]}))
    print(f"the package's pretrained/ now holds {sum(p.stat().st_size for p in target.parent.rglob('*') if p.is_file()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

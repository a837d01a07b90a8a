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
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch

from facevae.modelfiles import BUNDLED, BUNDLED_NAMES
from facevae.modelfiles.attributes import attribute_bank
from facevae.modelfiles.checkpoint import bundled_weights, load_model, save_weights
from facevae.modelfiles.sampler_files import save_sampler
from facevae.modelfiles.samplers import fit_on_latents, sampler_file, train_latents


SAMPLERS = ("gaussian", "gmm", "two_stage", "diffusion")
# narrower stored matrices keep the bundle under 10 MB; the bundle is scored as shipped:
# fp16 network weights, float32 GMM factors (fitted in float64, sampled in float64 from them)
STORED = {"two_stage": torch.float16, "diffusion": torch.float16, "gmm": torch.float32}


def weights_id(path: Path) -> str:
    """The id in a bundled model's sampler file names, read from the bytes (a damaged file still has one)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def old_files(target: Path) -> list[Path]:
    """This name's weights, samplers, attribute vectors and measured metrics; none another bundled model uses."""
    if not target.is_file():
        return []
    old_id = weights_id(target)
    others = {weights_id(p) for p in target.parent.glob("*.safetensors")
              if p.stem in BUNDLED_NAMES and p != target}
    samplers = [] if old_id in others else list(target.parent.glob(f"*-{old_id}.safetensors"))
    return sorted({*samplers, *target.parent.glob(f"{target.stem}.*")})  # the glob holds the target itself


def stage(run_dir: Path, data: Path, components: int, staging: Path, name: str) -> list[Path]:
    """Every file of the new bundle, made in `staging`: the package is touched only once all exist."""
    run = load_model(run_dir)
    step = "" if run.step is None else str(run.step)
    weights = staging / f"{name}.safetensors"
    save_weights(weights, run.config, run.model.state_dict(), {"step": step, "source": str(run_dir.name)},
                 dtype=torch.float16)
    print(f"weights: {weights.name} ({weights.stat().st_size / 1e6:.1f} MB, step {step})")
    bundle = load_model(weights)  # fit with the fp16-rounded weights, exactly what users will load
    means = train_latents(bundle.model, bundle.config, data, "cpu")  # one encoding pass for all fits
    for sampler_name in SAMPLERS:
        sampler = fit_on_latents(sampler_name, components, means, "cpu")
        path = staging / sampler_file(sampler_name, components, bundle)
        save_sampler(sampler, path, dtype=STORED.get(sampler_name))
        print(f"sampler: {path.name} ({path.stat().st_size / 1e6:.1f} MB)")
    attribute_bank(bundle, data=data)  # a weights file that is not model.safetensors keeps <name>.attribute_vectors beside it
    return sorted(staging.glob("*.safetensors"))


def install(made: list[Path], target: Path) -> None:
    """Move the staged bundle in, then remove the old one's files the new one did not replace:
    nothing is deleted until every new file is in place."""
    old, replaced = old_files(target), {p.name for p in made}
    for path in made:
        shutil.move(str(path), target.parent / path.name)  # staging may sit on another filesystem
    for path in old:
        if path.name not in replaced:
            path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--components", type=int, default=10)
    ap.add_argument("--name", default=BUNDLED, choices=BUNDLED_NAMES,
                    help="the bundled name it replaces or adds (a new name goes into BUNDLED_NAMES, "
                         "facevae/modelfiles/__init__.py, first)")
    args = ap.parse_args()

    target = bundled_weights(args.name)
    with tempfile.TemporaryDirectory() as staging:
        made = stage(args.run, args.data, args.components, Path(staging), args.name)
        install(made, target)
    print(json.dumps({"bundle": [p.name for p in made]}))
    total = sum(p.stat().st_size for p in target.parent.rglob("*") if p.is_file())
    print(f"the package's pretrained/ now holds {total / 1e6:.2f} MB; write {args.name}.metrics.json "
          "from its measured FIDs (it was removed with the old weights)")


if __name__ == "__main__":
    main()

"""Ship a fine-tuned sharp decoder with a bundled model (src/facevae/pretrained/).

    python tools/ship_sharp_decoder.py --run runs/sharp/adv

The run must have been fine-tuned from a bundled model's weights (`finetune-decoder
--model NAME`, or no --ckpt for celeba64): its sharp decoder records their digest, which
picks the bundled model it ships with. It is stored in fp16 (read back as float32) beside
that model's weights as <name>.sharp_decoder.safetensors, and from then on
`facevae.load()`, the CLI and the page draw with it by default; `--decoder likelihood`
keeps the model's own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from facevae.errors import FacevaeError
from facevae.modelfiles import BUNDLED_NAMES
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.decoders import resave_sharp_decoder, sharp_decoder_path


def bundle_of(run):
    """The bundled model `run` was fine-tuned from, known by the digest its sharp decoder records."""
    bundled = next((b for b in map(load_model, BUNDLED_NAMES) if b.digest == run.digest), None)
    if bundled is None:
        raise FacevaeError(f"{run.source} was not fine-tuned from a bundled model's weights "
                           f"({', '.join(BUNDLED_NAMES)}): nothing to ship")
    return bundled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    a = ap.parse_args()
    run = load_model(a.run)
    bundled = bundle_of(run)
    target = sharp_decoder_path(bundled)
    resave_sharp_decoder(run, target, bundled.digest, dtype=torch.float16, required=True)
    total = sum(p.stat().st_size for p in target.parent.glob("*.safetensors"))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB); bundle weights, samplers and decoders "
          f"{total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

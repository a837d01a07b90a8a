"""`facevae finetune-decoder`: a sharp decoder for a trained model's frozen encoder."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facevae.cli.app import app
from facevae.cli.train_generate import CkptOpt, DeviceOpt, ModelOpt, model_source

FINETUNE_HELP = (
    "Fine-tune a sharp decoder for a trained model (or the bundled one), its encoder frozen.\n\n"
    "Posterior means stay bit-identical, so the fitted samplers and attribute vectors are copied into --out "
    "and reused. The loss terms are config switches (--set sharp.KEY=VALUE): sharp.pixel (l1, gaussian; always "
    "on), sharp.msssim_weight, sharp.freq_weight (focal frequency loss), sharp.adv_weight (a patch "
    "discriminator trained from scratch; sharp.adv_loss hinge or ns, sharp.adaptive, sharp.disc_norm spectral, "
    "sharp.r1_weight, sharp.disc_start) and sharp.decoder_widths (a wider decoder from scratch). No loss uses "
    "a pretrained network. Later commands draw with the sharp decoder: --ckpt OUT (--decoder likelihood for "
    "the model's own)."
)


@app.command("finetune-decoder", help=FINETUNE_HELP)
def finetune_decoder(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    data: Path = typer.Option(..., "--data", help="CelebA root: the training split the decoder learns from."),
    out: Path = typer.Option(..., "--out", help="New folder: the model, its sharp decoder, samplers, logs."),
    minutes: float = typer.Option(..., "--minutes", min=0.1, help="Wall-clock training budget (encoding excluded)."),
    max_steps: int = typer.Option(0, "--max-steps", min=0, help="Also stop after this many steps (0: no limit)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help="e.g. --set sharp.adv_weight=0.1 (sharp.* and train.batch_size, train.seed)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the fine-tuning in --out up to --minutes in all."),
    device: str = DeviceOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Say what runs and for how long."),
) -> None:
    from facevae.modelfiles.checkpoint import read_config
    from facevae.modelfiles.pretrained import resolve_source
    from facevae.io import check_writable
    from facevae.modelfiles.checkpoint import load_state
    from facevae.runfolder import RunFolder
    from facevae.training.finetune import finetune_decoder as run

    ckpt = model_source(ckpt, model)
    check_writable(out, folder=True)
    base = load_state(RunFolder(out).sharp_checkpoint)[0] if resume and RunFolder(out).sharp_checkpoint.is_file() \
        else read_config(resolve_source(ckpt))  # the header only: the run loads the weights once
    cfg = base.override(list(set_)) if set_ else base
    result = run(ckpt if not resume else out, data, out, cfg, minutes=minutes, max_steps=max_steps, resume=resume,
                 device=device, progress=progress)
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.last.items())
    typer.echo(f"fine-tuned the decoder for {result.step} steps ({result.seconds / 60:.1f} min of training); "
               f"last losses {losses}; sharp decoder in {RunFolder(result.out).sharp_decoder}")

"""`facevae export`: a run as a Hugging Face Hub model folder with a model card."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facevae.cli.app import app
from facevae.cli.train_generate import CkptOpt, ModelOpt, model_source


@app.command()
def export(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    out: Path = typer.Option(..., "--out", help="Folder for config.json, model.safetensors and README.md."),
) -> None:
    """Write a model as a Hub folder (config.json, model.safetensors, model card); --ckpt and from_pretrained read it."""
    from facevae.modelfiles.pretrained import export as run_export

    folder = run_export(model_source(ckpt, model), out)
    typer.echo(f"wrote config.json, model.safetensors and README.md to {folder}")

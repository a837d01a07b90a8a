"""serve: a local web page to explore a model."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Optional

import typer

from facevae.cli.app import app
from facevae.cli.train_generate import CkptOpt, DecoderOpt, DeviceOpt, ModelOpt, model_source
from facevae.errors import FacevaeError


@app.command()
def serve(
    ckpt: Optional[Path] = CkptOpt,
    model: Optional[str] = ModelOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default lets only this machine in."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to listen on."),
    data: Optional[Path] = typer.Option(None, "--data", envvar="FACEVAE_DATA",
                                        help="CelebA folder to compute attribute vectors and fit samplers from "
                                             "(once; cached beside the checkpoint)."),
    components: int = typer.Option(10, "--components", min=1, help="GMM components of the gmm sampler."),
    faces: int = typer.Option(12, "--faces", min=1, max=64, help="Faces per random grid."),
    threads: int = typer.Option(1, "--threads", min=0,
                                help="CPU threads per request after start-up (0 = PyTorch's default); "
                                     "one is fastest for single 64 px decodes on a shared machine."),
    device: str = DeviceOpt,
    decoder: str = DecoderOpt,
    align: Optional[bool] = typer.Option(None, "--align/--no-align", help="Align uploaded photos to the CelebA "
                                         "template (default: when the align extra is installed)."),
) -> None:
    """Serve a local web page: random faces, attribute sliders, interpolation, your own photos."""
    import torch

    from facevae.web.page import build_app, import_gradio, launch
    from facevae.web.explorer import Explorer
    from facevae.web.handlers import Handlers, example_photos

    source = model_source(ckpt, model)
    import_gradio()  # fail early, before loading the model, when the web extra is missing
    if not _is_loopback(host):
        typer.echo(f"warning: listening on {host}: anyone who can reach this machine can use the page", err=True)
    explorer = Explorer.load(source, data=data, device=device, components=components,
                             decoder=decoder, log=lambda m: typer.echo(m, err=True))
    if threads:
        torch.set_num_threads(threads)
    handlers = Handlers(explorer, n_faces=faces, examples=example_photos(data) if data is not None else (),
                        align=align)
    if explorer.attr_note:
        typer.echo(explorer.attr_note, err=True)
    demo = build_app(handlers)
    try:
        launch(demo, host, port, extra_paths=[handlers.gif_dir], say=lambda m: typer.echo(m))
    except OSError as e:
        reason = str(e).split(". ")[0]  # Gradio's advice about its own settings would mislead here
        raise FacevaeError(f"cannot listen on {host}:{port} ({reason}): pass another --port") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

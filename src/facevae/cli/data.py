"""`facevae data ...`: get the CelebA data set onto disk."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from facevae.cli.app import app

data_app = typer.Typer(
    help="Get the CelebA data set: download, verify and unpack it into the original layout.",
    no_args_is_help=True,
)


# A callback keeps `download` a sub-command even while it is the only one
# (Typer would otherwise make the group itself the command).
@data_app.callback()
def _data() -> None:
    """Get the CelebA data set: download, verify and unpack it into the original layout."""


@data_app.command("download")
def download(
    root: Annotated[Path, typer.Option(
        "--root", metavar="DIR", help="Folder to fill: DIR/img_align_celeba/, DIR/list_*.txt.")],
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", metavar="URL",
        help="Fetch every file as URL/NAME (a mirror) instead of the official links.")] = None,
    manifest: Annotated[Optional[Path], typer.Option(
        "--manifest", metavar="FILE",
        help="JSON/YAML list of files (name, url, md5 or sha256, unzip) replacing the default.")] = None,
    files: Annotated[Optional[list[str]], typer.Option(
        "--file", metavar="NAME",
        help="Fetch only this manifest entry (repeatable), e.g. list_bbox_celeba.txt.")] = None,
    all_files: Annotated[bool, typer.Option(
        "--all", help="Also fetch the optional files (bounding boxes, landmarks).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Download CelebA into DIR, resuming partial downloads and skipping verified files."""
    # Imported here so that `facevae --help` stays fast.
    from facevae.data.download import download_celeba, resolve_manifest

    if all_files and not files:
        files = [e.name for e in resolve_manifest(manifest, base_url)]
    path = download_celeba(root, base_url=base_url, manifest=manifest, files=files, progress=not quiet)
    typer.echo(f"CelebA is ready in {path}")


app.add_typer(data_app, name="data")

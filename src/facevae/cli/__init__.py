"""`facevae` command line. Each module below adds its commands to the shared Typer app."""
from __future__ import annotations

import sys

from facevae.cli.app import app
from facevae.cli import train_generate  # noqa: F401  (train, sample, reconstruct)
from facevae.cli import data  # noqa: F401  (data download)
from facevae.cli import latent  # noqa: F401  (latents, edit, interpolate, progress, compare)
from facevae.cli import serve  # noqa: F401  (serve)
from facevae.cli import evaluate  # noqa: F401  (evaluate)
from facevae.cli import export  # noqa: F401  (export)
from facevae.errors import FacevaeError, Interrupted


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except FacevaeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:  # the first Ctrl-C during training: the step finished and was saved
        print(e, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is intact; --resume continues", file=sys.stderr)
        sys.exit(130)

"""`facevae` command line. Each module below adds its commands to the shared Typer app."""
from __future__ import annotations

import sys

import typer

from facevae.cli.app import app
from facevae.cli import train_generate  # noqa: F401  (train, sample, reconstruct)
from facevae.cli import data  # noqa: F401  (data download)
from facevae.cli import latent  # noqa: F401  (latents, edit, interpolate, progress, compare)
from facevae.cli import serve  # noqa: F401  (serve)
from facevae.cli import finetune  # noqa: F401  (finetune-decoder)
from facevae.cli import evaluate  # noqa: F401  (evaluate)
from facevae.cli import export  # noqa: F401  (export)
from facevae.errors import FacevaeError, Interrupted

try:  # Typer 0.2x carries its own copy of Click; the parser raises that copy's exceptions
    from typer._click import exceptions as click_errors
except ImportError:  # older Typer parses with Click itself
    from click import exceptions as click_errors

PROG = "facevae"  # not "python -m facevae": the name the README and the error hints use


def usage_error_line(e: click_errors.UsageError) -> str:
    """Click's usage box and 'Error:' lines as the one line every other user error gets."""
    message = " ".join(e.format_message().split()).rstrip(".")  # Click ends some messages with '.'
    command = e.ctx.command_path if e.ctx is not None else PROG
    return f"error: {message}; see {command} --help"


def main() -> None:
    """Console entry point: user errors, Click's included, become one line on stderr and exit code 2."""
    try:
        # standalone_mode=False: Click raises its usage errors here instead of printing its own box
        code = app(prog_name=PROG, standalone_mode=False)
    except getattr(click_errors, "NoArgsIsHelpError", ()) as e:  # a bare `facevae`: the help is the answer
        e.show()
        sys.exit(e.exit_code)
    except click_errors.UsageError as e:
        print(usage_error_line(e), file=sys.stderr)
        sys.exit(2)
    except click_errors.ClickException as e:  # Click's other errors keep their own text and code
        e.show()
        sys.exit(e.exit_code)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    except FacevaeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:  # the first Ctrl-C during training: the step finished and was saved
        print(e, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is intact; --resume continues", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)  # an int is typer.Exit's code (--help: 0)

"""The Typer application; command modules attach to it on import."""
import typer

app = typer.Typer(
    name="facevae",
    help="Variational autoencoders for faces: train, sample, reconstruct, edit, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

"""The Typer application; command modules attach to it on import."""
import typer

app = typer.Typer(
    name="facevae",
    help="Variational autoencoders for faces: train, sample, reconstruct, edit, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # plain Click help: flags read --flag/--no-flag, options show their value (TEXT, PATH),
    # not Rich's <bool> and <list[str]> type tags
    rich_markup_mode=None,
)

"""The `matcher` command: sub-commands are registered here; each lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from matcher import __version__
from matcher.cli import batch_cmd, catalog_cmd, engine_cmd, eval_cmd, learn_cmd, serve_cmd

app = typer.Typer(
    name="matcher",
    help="기술애로 매칭: route a technical difficulty to the research institutes that can solve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(catalog_cmd.app, name="catalog")
app.add_typer(engine_cmd.model_app, name="model")
app.add_typer(engine_cmd.index_app, name="index")
app.command("match")(engine_cmd.match)
app.command("batch")(batch_cmd.batch)
app.command("evaluate")(eval_cmd.evaluate)
app.command("compare")(eval_cmd.compare)
app.command("tune")(eval_cmd.tune)
app.add_typer(learn_cmd.train_app, name="train")
app.add_typer(learn_cmd.feedback_app, name="feedback")
app.command("serve")(serve_cmd.serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"matcher {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """기술애로 매칭 엔진 (matcher)."""


def main() -> None:
    app()

"""The ``medfuse`` command line: a thin click group whose subcommands load lazily.

Each subcommand lives in its own module ``medfuse/cli/<name>.py`` exposing a click command named
``command``; heavy imports (torch, MONAI) happen inside the command, so ``medfuse --help`` is fast.
User errors (:class:`medfuse.errors.MedfuseError`) print one line and exit with the error's code.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from medfuse import __version__
from medfuse.errors import MedfuseError

__all__ = ["cli", "main"]

#: subcommand name -> module under medfuse.cli holding a click command called ``command``.
COMMANDS: dict[str, str] = {
    "info": "info",
    "fuse": "fuse",
    "evaluate": "evaluate",
    "train": "train",
    "batch": "batch",
    "send": "send",
    "pull": "pull",
    "export-bundle": "export_bundle",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(
            name for name, mod in COMMANDS.items()
            if importlib.util.find_spec(f"medfuse.cli.{mod}") is not None
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod = COMMANDS.get(cmd_name)
        if mod is None or importlib.util.find_spec(f"medfuse.cli.{mod}") is None:
            return None
        return importlib.import_module(f"medfuse.cli.{mod}").command

    def invoke(self, ctx: click.Context):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except MedfuseError as exc:
            click.echo(f"medfuse: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medfuse")
def cli() -> None:
    """medfuse: fuse CT, PET or SPECT with MRI (DICOM/NIfTI in, DICOM SC/NIfTI/PNG out)."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``medfuse``): run the CLI group."""
    cli.main(args=argv, prog_name="medfuse")

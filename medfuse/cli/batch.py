"""``medfuse batch MANIFEST``: fuse every study of a CSV/JSON manifest, in parallel, resumably."""

from __future__ import annotations

import os

import click

__all__ = ["command"]


@click.command("batch")
@click.argument("manifest", type=click.Path(path_type=str))
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: a pool of worker processes; ray: Ray tasks (local instance, or --address).",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="Ray cluster to use (what `ray start --head` prints); default: start Ray locally.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Studies in parallel (default: half the CPU cores, at most one per study).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads (Ray: CPUs) per study (default: cores // workers; Ray cluster: 1).",
)
@click.option("--force", is_flag=True, help="Redo every study, also those already complete.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=str),
    default=None,
    help="JSON report path (default: MANIFEST's folder/<name>.report.json).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary table.")
def command(manifest, backend, address, workers, threads, force, report_path, quiet, **fuse_flags):
    """Fuse every study (row) of MANIFEST: inputs A and B, output folder, fuse options.

    MANIFEST is CSV (columns a, b, out, optional id, any `medfuse fuse` option) or JSON (a list of
    rows, or {"defaults": {...}, "studies": [...]}); relative paths are relative to its folder.
    The fuse options below set defaults for every row; a row's own values win. A study whose
    output is complete (run.json and output hashes match) is skipped; partial ones are redone.

    \b
    Examples:
      medfuse batch studies.csv --method average --workers 4
      medfuse batch studies.json --backend ray                      # Ray on this machine
      medfuse batch studies.json --backend ray --address HEAD:6379  # a Ray cluster
    Exit codes: 0 all ok/skipped, 3 bad manifest (nothing ran), 7 Ray unreachable,
    8 some studies failed (the others ran), 130/143 stopped by SIGINT/SIGTERM.
    """
    from click.core import ParameterSource

    from medfuse.batch.options import absolute_paths
    from medfuse.batch.runner import run_batch
    from medfuse.errors import BatchError

    ctx = click.get_current_context()
    if address and backend != "ray":
        raise click.UsageError("--address is for --backend ray")
    given = {
        k: v for k, v in fuse_flags.items()
        if ctx.get_parameter_source(k) is ParameterSource.COMMANDLINE
    }
    rep = run_batch(
        manifest,
        defaults=absolute_paths(given, os.getcwd()),
        backend=backend,
        workers=workers,
        threads=threads,
        address=address,
        force=force,
        report_path=report_path,
        progress=not quiet,
    )
    c = rep["counts"]
    if rep["interrupted"]:
        import signal

        click.echo(
            f"medfuse: error: batch stopped by {rep['interrupted']}: {c['ok'] + c['skipped']} "
            f"studies complete, {c['interrupted']} not finished (rerun to resume; report: "
            f"{rep['report_path']})",
            err=True,
        )
        ctx.exit(128 + getattr(signal, rep["interrupted"]))
    if c["failed"]:
        raise BatchError(
            f"{c['failed']} of {len(rep['studies'])} studies failed (report: {rep['report_path']})"
        )


def _add_fuse_options(cmd: click.Command) -> None:
    """Give ``batch`` the ``medfuse fuse`` options (the same click objects: one definition)."""
    from medfuse.batch.options import fuse_options

    cmd.params.extend(fuse_options())


_add_fuse_options(command)

"""``medfuse train``: train a fusion network from a MONAI-bundle-style config (docs/training.md)."""

from __future__ import annotations

import click

__all__ = ["command"]


def _split_args(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Config files (anything without ``=``) and ``key=value`` overrides, in order."""
    files = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    return files, overrides


def _init_distributed() -> None:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import ignite.distributed as idist
    import torch

    idist.initialize("nccl" if torch.cuda.is_available() else "gloo")


@click.command("train", context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, required=True, metavar="CONFIG... [KEY=VALUE]...")
@click.option(
    "-o",
    "--output",
    "output",
    default=None,
    type=click.Path(file_okay=False, path_type=str),
    help="Run folder (default: the config's output_dir, runs/<name>).",
)
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[CHECKPOINT]",
    help="Continue a run: from the newest last_checkpoint_*.pt of the run folder, "
    "or from CHECKPOINT.",
)
@click.option("--overwrite", is_flag=True, help="Replace a previous run in the run folder.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option(
    "--print-config", is_flag=True, help="Print the merged config (files + overrides) and exit."
)
@click.option("-q", "--quiet", is_flag=True, help="No per-epoch log lines.")
def command(args, output, device, resume, overwrite, progress, print_config, quiet):
    """Train a fusion network; export the best model as safetensors.

    CONFIG is a JSON/YAML config in pipelines/ (several are merged in order, e.g. a recipe and the
    pipelines/cpu_quick.json overlay). KEY=VALUE overrides a config entry: MONAI ids with '#'
    (trainer#max_epochs=2) or dots (trainer.max_epochs=2); values are JSON when they parse.

    \b
    Examples:
      medfuse train pipelines/ecfusion_ct-mri.json
      medfuse train pipelines/s3imfusion_spect-mri.json pipelines/cpu_quick.json \
trainer#max_epochs=1
      medfuse train pipelines/ecfusion_ct-mri.json -o runs/ec1 --resume
      torchrun --nproc_per_node=4 -m medfuse train pipelines/ecfusion_pet-mri.json
    """
    import json
    import logging

    from medfuse.engines.recipes import load_config

    files, overrides = _split_args(args)
    if not files:
        raise click.UsageError("give at least one CONFIG file")
    try:
        parser = load_config(files, overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if print_config:
        click.echo(json.dumps(parser.get(), indent=1, default=str))
        return
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("medfuse.train").setLevel(logging.WARNING if quiet else logging.INFO)
    _init_distributed()
    from medfuse.engines.workflow import run_training

    summary = run_training(
        parser,
        output_dir=output,
        device=device,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )
    if summary:
        best = summary["validation"]["best"]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in best.items())
        took = f"{summary['train_time_s']:.1f} s"
        if summary.get("resumed_from_epoch") and summary.get("epoch_time_total_s") is not None:
            took = f"{summary['epoch_time_total_s']:.1f} s (this session {took})"
        click.echo(
            f"trained {summary['network']} on {summary['task']}: {summary['epochs']} epochs in "
            f"{took}; best epoch {summary['validation']['best_epoch']}"
            f"{': ' + shown if shown else ''}"
        )
        click.echo(f"wrote {summary['files']['weights']} to {summary['run_dir']}",
                   err=True)

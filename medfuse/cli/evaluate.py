"""``medfuse evaluate``: score fused images against their sources with the fusion metrics."""

from __future__ import annotations

import click

__all__ = ["command"]


def _parse_fused(values: tuple[str, ...], hint: str = "--fused") -> dict[str, str]:
    from pathlib import Path

    fused: dict[str, str] = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep:  # a bare path: the method name is the folder's (a file's folder's) name
            folder = v
            p = Path(v.rstrip("/"))
            name = p.parent.name if p.name.endswith((".nii", ".nii.gz")) else p.name
        name = name.strip()
        if not name or not folder:
            raise click.BadParameter(f"{v!r}: expected NAME=PATH", param_hint=hint)
        if name in fused:
            raise click.BadParameter(f"method name {name!r} given twice", param_hint=hint)
        fused[name] = folder
    return fused


@click.command("evaluate")
@click.option(
    "--a",
    "a_dir",
    default=None,
    type=click.Path(path_type=str),
    help="Folder of source A images (CT, or PET/SPECT: RGB is scored on its BT.601 "
    "luma); with --volume: source A volume (default: the one in run.json).",
)
@click.option(
    "--b",
    "b_dir",
    default=None,
    type=click.Path(path_type=str),
    help="Folder of source B images (MRI); with --volume: source B volume.",
)
@click.option(
    "--fused",
    "fused",
    multiple=True,
    metavar="NAME=DIR",
    help="A fused method's folder; repeat for each method (one table column each).",
)
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    metavar="NAME=OUT",
    help="A medfuse fuse output folder (or its fused.nii.gz): scored slice by slice "
    "against its sources as run.json records them, plus the inter-slice excess; repeat "
    "for each method.",
)
@click.option(
    "--profile",
    type=click.Choice(["vifb", "cddfuse", "paper"]),
    default="vifb",
    show_default=True,
    help="Metric definitions: VIFB toolbox, CDDFuse Evaluator, or the papers' tables.",
)
@click.option(
    "--metrics",
    "metrics",
    default=None,
    metavar="LIST",
    help="Comma-separated metric names (default: all of the profile), "
    "e.g. MI,Qabf,SSIM,VIF,Qcb,Qcv.",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Output folder for per_image.csv, summary.csv, summary.md, evaluate.json, "
    "boxplot_*.png (and interslice.png for volumes).",
)
@click.option("--overwrite", is_flag=True, help="Replace results already in the output folder.")
@click.option("--no-plots", is_flag=True, help="Skip the box plots.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def command(a_dir, b_dir, fused, volumes, profile, metrics, out_dir, overwrite, no_plots, progress):
    """Score fused images against sources A and B; images are matched by file name.

    Accepts PNG/TIFF/BMP images and volumes (NIfTI, MetaImage, NRRD, DICOM; scored slice by slice).
    With --volume, scores medfuse fuse outputs: the sources are re-read and brought onto the
    fused grid as fuse did (run.json, transform.tfm), every slice is scored and the volume gets
    the inter-slice excess (ISE, lower is better: flicker along the slice axis).
    Prints a table (one column per method, mean ± std, best in bold; ↑ higher / ↓ lower is
    better) and writes CSV, Markdown and one box plot per metric.

    \b
    Examples:
      medfuse evaluate --a CT --b MRI --fused avg=F_avg --fused ecfusion=out -o eval
      medfuse evaluate --volume lap=out_lap --volume dwt=out_dwt -o eval
    """
    from medfuse.cli._signals import install_stop_signals
    from medfuse.metrics.evaluate import evaluate_folders, summary_text

    # SIGTERM and Ctrl-C unwind the run (exit 143 / 130): the results folder gets all the new
    # files or none, and no temporary folder stays behind
    install_stop_signals()
    if bool(fused) == bool(volumes):
        raise click.UsageError("give --fused folders (with --a and --b) or --volume outputs")
    try:
        if volumes:
            from medfuse.fusion.scoring import evaluate_volumes

            result = evaluate_volumes(
                _parse_fused(volumes, "--volume"),
                out_dir,
                a_dir,
                b_dir,
                profile=profile,
                metrics=metrics,
                overwrite=overwrite,
                plots=not no_plots,
                progress=progress,
            )
        else:
            if not (a_dir and b_dir):
                raise click.UsageError("--fused needs the source folders --a and --b")
            result = evaluate_folders(
                a_dir,
                b_dir,
                _parse_fused(fused),
                out_dir,
                profile=profile,
                metrics=metrics,
                overwrite=overwrite,
                plots=not no_plots,
                progress=progress,
            )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(summary_text(result, style=lambda s: click.style(s, bold=True)), nl=False)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {len(result.files)} files to {out_dir}", err=True)

"""``medfuse export-bundle``: write a MONAI bundle for a fusion network (see docs/monai.md)."""

from __future__ import annotations

import click

__all__ = ["command"]


@click.command("export-bundle")
@click.option(
    "--net",
    "network",
    default=None,
    help="network: ecfusion or s3imfusion (default: from --weights)",
)
@click.option(
    "--task", default=None, help="ct-mri, pet-mri or spect-mri (picks the shipped weights)"
)
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="a medfuse weights file instead of the shipped weights")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="bundle folder to write (atomically)")
@click.option("--overwrite", is_flag=True, help="replace an existing non-empty bundle folder")
def command(
    network: str | None, task: str | None, weights: str | None, out_dir: str, overwrite: bool
) -> None:
    """Write a MONAI bundle (configs, models/model.pt, docs) for NET on TASK.

    Run it with `python -m monai.bundle run --config_file DIR/configs/inference.json
    --meta_file DIR/configs/metadata.json --bundle_root DIR --image_a A.nii.gz --image_b B.nii.gz
    --output_dir OUT`.
    """
    from medfuse.bundle import export_bundle

    out = export_bundle(out_dir, network=network, task=task, weights=weights, overwrite=overwrite)
    click.echo(f"wrote MONAI bundle {out}")

"""``medfuse info PATH...``: modality, shape, spacing, orientation, origin, frame of reference."""

from __future__ import annotations

import json

import click

__all__ = ["command"]


@click.command("info")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str, readable=False))
@click.option(
    "--series",
    "series_uid",
    default=None,
    metavar="UID",
    help="SeriesInstanceUID to pick in a folder holding several series.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list) instead.")
def command(paths: tuple[str, ...], series_uid: str | None, as_json: bool) -> None:
    """Describe medical images: DICOM series folders or files, NIfTI, MetaImage, NRRD.

    For each PATH (every series of a folder holding several) prints the modality, shape
    (C, I, J, K), voxel spacing, orientation code, origin (RAS mm), FrameOfReferenceUID, series
    description and how many series were found. Patient identity is never printed. Exits with the
    code of the first failing input (3 input, 4 geometry) after reporting all of them.
    """
    from medfuse.errors import MedfuseError
    from medfuse.io.summary import format_summary, inspect_path

    records: list[dict] = []
    first_code = 0
    for path in paths:
        try:
            entries = inspect_path(path, series_uid=series_uid)
        except MedfuseError as exc:
            entries = [{"path": path, "error": str(exc), "exit_code": exc.exit_code}]
        for entry in entries:
            records.append(entry)
            if "error" in entry:
                first_code = first_code or int(entry["exit_code"])
                if not as_json:
                    click.echo(f"medfuse: error: {entry['error']}", err=True)
            elif not as_json:
                click.echo(format_summary(entry))
    if as_json:
        click.echo(json.dumps(records, indent=2))
    if first_code:
        raise SystemExit(first_code)

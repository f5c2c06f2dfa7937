"""``medfuse fuse A B -o OUT``: fuse two volumes (or two folders of 2D images) into one."""

from __future__ import annotations

import click

from medfuse.fusion.flags import add_study_options

__all__ = ["command"]


@click.command("fuse")
# readable=False: an unreadable input is medfuse's one-line input error (exit 3), not click's usage
@click.argument("a", required=False, type=click.Path(path_type=str, readable=False))
@click.argument("b", required=False, type=click.Path(path_type=str, readable=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=str),
    help="Output folder (written atomically; must not exist or be empty).",
)
@click.option(
    "--demo", is_flag=True, help="Fuse the CT/MR demo pair shipped inside the package (no A and B)."
)
@add_study_options
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="CPU threads for torch (0: the cores other processes leave free).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty output folder.")
@click.option(
    "--no-review",
    is_flag=True,
    help="Skip review.png (A | B | fused | alignment, a row per slice).",
)
@click.option(
    "--send",
    "send_pacs",
    default=None,
    metavar="HOST:PORT",
    help="After writing, C-STORE the DICOM series to this PACS (needs --called-aet).",
)
@click.option(
    "--send-dicomweb",
    default=None,
    metavar="URL",
    help="After writing, STOW-RS the DICOM series to this DICOMweb service root.",
)
@click.option("--called-aet", default=None, metavar="AET", help="AE title of the --send PACS.")
@click.option("--calling-aet", default=None, metavar="AET", help="Our AE title [default: MEDFUSE].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or messages (errors only).")
def command(
    a,
    b,
    out_dir,
    demo,
    method,
    task,
    weights,
    reference,
    register,
    transform,
    axis,
    device,
    batch_size,
    tile,
    tile_overlap,
    net_backend,
    gpu_precision,
    window_a,
    window_b,
    functional,
    palette,
    formats,
    series_a,
    series_b,
    skip_unreadable,
    allow_different_patients,
    threads,
    overwrite,
    no_review,
    send_pacs,
    send_dicomweb,
    called_aet,
    calling_aet,
    quiet,
):
    """Fuse A (CT, PET or SPECT) with B (MR) and write DICOM SC, NIfTI, PNG and run.json.

    A and B are DICOM series folders or files, NIfTI, MetaImage or NRRD volumes; or two folders
    of matching 2D images (PNG/TIFF/BMP, paper-style test sets), fused pair by pair into
    OUT/fused/ (and OUT/rgb/ for colour tasks).

    \b
    Examples:
      medfuse fuse --demo -o out/
      medfuse fuse ct/ mr/ -o out/ --method dwt
      medfuse fuse PET/ MRI/ -o fused/ --method laplacian      # 2D folders
      medfuse fuse ct/ mr/ -o out/ --send 127.0.0.1:4242 --called-aet ORTHANC
    Exit codes: 0 ok, 2 usage, 3 input, 4 geometry/registration, 5 output, 6 weights,
    7 written but --send/--send-dicomweb failed (OUT stays complete: rerun medfuse send OUT).
    """
    from medfuse.cli._signals import install_stop_signals
    from medfuse.fusion.folders import is_image_folder
    from medfuse.fusion.run import fuse_pair, options_from_flags

    # SIGTERM and Ctrl-C unwind the run, so its temporary output folder is removed
    install_stop_signals()

    if demo:
        if a or b:
            raise click.UsageError("--demo takes no inputs A and B")
        from medfuse.data import demo_pair

        a, b = (str(p) for p in demo_pair())
    elif not (a and b):
        raise click.UsageError("give two inputs A and B (or --demo)")
    fmt = tuple(f.strip().lower() for f in formats.split(",") if f.strip()) if formats else None
    peer = None
    if send_pacs or send_dicomweb:
        from medfuse.cli._peer import make_peer

        peer = make_peer(
            send_pacs,
            send_dicomweb,
            called_aet,
            calling_aet,
            30.0,
            pacs_flag="--send",
            dicomweb_flag="--send-dicomweb",
        )
        if is_image_folder(a) and is_image_folder(b):
            raise click.UsageError("--send needs a DICOM output; 2D image folders give PNGs only")
        if fmt is not None and "dicom" not in fmt:
            raise click.UsageError("--send needs the dicom format in --format")
        fmt = fmt or ("dicom", "nifti", "png")  # a DICOM series even from NIfTI inputs
    elif called_aet or calling_aet:
        raise click.UsageError("--called-aet and --calling-aet go with --send HOST:PORT")
    opts = options_from_flags(
        method=method,
        task=task,
        weights=weights,
        reference=reference,
        register=register,
        transform=transform,
        axis=axis,
        device=device,
        batch_size=batch_size,
        tile=tile,
        tile_overlap=tile_overlap,
        net_backend=net_backend,
        gpu_precision=gpu_precision,
        window_a=window_a,
        window_b=window_b,
        functional=functional,
        palette=palette,
        formats=fmt,
        overwrite=overwrite,
        quiet=quiet,
        series_a=series_a,
        series_b=series_b,
        skip_unreadable=skip_unreadable,
        allow_different_patients=allow_different_patients,
        review=not no_review,
    )
    log = None if quiet else (lambda s: click.echo(f"medfuse: {s}", err=True))
    from medfuse.runtime import set_threads

    set_threads(threads)
    fuse_pair(a, b, out_dir, opts, log=log)
    if peer is not None:
        _send(out_dir, peer, quiet, log)


def _send(out_dir: str, peer, quiet: bool, log) -> None:
    """Send OUT/dicom after a successful fusion; a failure leaves OUT as written (exit 7)."""
    from pathlib import Path

    from medfuse.cli._peer import print_report
    from medfuse.errors import RemoteError
    from medfuse.pacs.send import send_folder

    report = send_folder(Path(out_dir) / "dicom", peer, log=log)
    print_report(report, None, quiet)
    if not report.ok:
        raise RemoteError(
            f"{out_dir} written, but sending failed: {report.failure_line()} "
            f"(retry with: medfuse send {out_dir} ...)"
        )

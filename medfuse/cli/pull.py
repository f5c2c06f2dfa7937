"""``medfuse pull --pacs HOST:PORT --called-aet AET --study UID -o DIR``: fetch a study's series."""

from __future__ import annotations

import click

from medfuse.cli._peer import peer_options

__all__ = ["command"]


@click.command("pull")
@click.option(
    "--study", "study_uid", required=True, metavar="UID", help="StudyInstanceUID to fetch."
)
@click.option(
    "--series", "series_uid", default=None, metavar="UID", help="Only this SeriesInstanceUID."
)
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=str),
              help="Folder receiving one subfolder per series (<Modality>_<SeriesInstanceUID>).")
@click.option("--overwrite", is_flag=True, help="Fetch again series whose folder exists.")
@click.option("--move-port", type=click.IntRange(1, 65535), default=None, metavar="PORT",
              help="C-MOVE instead of C-GET: receive on this port as --calling-aet (the PACS "
              "must know that AE, host and port).")
@peer_options
def command(
    study_uid,
    series_uid,
    out_dir,
    overwrite,
    move_port,
    pacs,
    called_aet,
    calling_aet,
    dicomweb_url,
    retries,
    backoff,
    timeout,
    report_path,
    quiet,
):
    """Fetch the series of a study from a PACS, each into its own folder under DIR.

    C-FIND lists the series and their instances, C-GET fetches them on our own association
    (--pacs: the PACS needs no entry for our AE, only to allow C-GET; --move-port uses C-MOVE
    instead), or QIDO-RS + WADO-RS (--dicomweb). Each series lands in a temporary folder renamed
    into place when complete; a rerun skips series already there. The folders feed medfuse fuse
    directly.

    \b
    Examples:
      medfuse pull --pacs 127.0.0.1:4242 --called-aet ORTHANC --study 1.2.3 -o in/
      medfuse fuse in/CT_* in/MR_* -o out/
    Exit codes: 0 all fetched, 2 usage, 3 study/series not on the PACS, 5 DIR not writable,
    7 PACS unreachable or a series failed.
    """
    from medfuse.cli._peer import check_report_path, make_peer, print_report
    from medfuse.cli._signals import install_stop_signals
    from medfuse.errors import RemoteError
    from medfuse.pacs.pull import pull_study

    # SIGTERM and Ctrl-C unwind the pull, so the unfinished series folder is removed
    install_stop_signals()

    peer = make_peer(pacs, dicomweb_url, called_aet, calling_aet, timeout)
    check_report_path(report_path)
    if move_port is not None and dicomweb_url:
        raise click.UsageError("--move-port goes with --pacs (C-MOVE), not --dicomweb")
    log = None if quiet else (lambda s: click.echo(f"medfuse: {s}", err=True))
    report = pull_study(peer, study_uid, out_dir, series_uid=series_uid, overwrite=overwrite,
                        retries=retries, backoff=backoff, log=log, move_port=move_port)
    print_report(report, report_path, quiet)
    if not report.ok:
        raise RemoteError(report.failure_line())

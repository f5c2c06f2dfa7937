"""``medfuse send OUT_DIR --pacs HOST:PORT --called-aet AET``: send a series to a PACS."""

from __future__ import annotations

import click

from medfuse.cli._peer import peer_options

__all__ = ["command"]


@click.command("send")
@click.argument("out_dir", type=click.Path(path_type=str))
@peer_options
def command(out_dir, pacs, called_aet, calling_aet, dicomweb_url, retries, backoff, timeout,
            report_path, quiet):
    """Send every DICOM instance under OUT_DIR (e.g. a medfuse fuse output) to a PACS.

    C-ECHO first, then C-STORE of each instance over one association (--pacs), or STOW-RS
    (--dicomweb). Prints one row per instance; exit 0 only when every instance was stored.

    \b
    Examples:
      medfuse send out/ --pacs 127.0.0.1:4242 --called-aet ORTHANC
      medfuse send out/ --dicomweb http://127.0.0.1:8042/dicom-web --report sent.json
    Exit codes: 0 all stored, 2 usage, 3 no/unreadable DICOM files, 5 report not writable,
    7 PACS unreachable or an instance failed.
    """
    from medfuse.cli._peer import check_report_path, make_peer, print_report
    from medfuse.errors import RemoteError
    from medfuse.pacs.send import send_folder

    peer = make_peer(pacs, dicomweb_url, called_aet, calling_aet, timeout)
    check_report_path(report_path)
    log = None if quiet else (lambda s: click.echo(f"medfuse: {s}", err=True))
    report = send_folder(out_dir, peer, retries=retries, backoff=backoff, log=log)
    print_report(report, report_path, quiet)
    if not report.ok:
        raise RemoteError(report.failure_line())

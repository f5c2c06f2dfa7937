"""Shared by ``medfuse send``, ``pull`` and ``fuse --send``: turn peer options into a peer."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["peer_options", "make_peer", "check_report_path", "print_report"]


def peer_options(func):
    """The options naming a peer and how hard to try (shared by send and pull)."""
    opts = [
        click.option(
            "--pacs",
            metavar="HOST:PORT",
            default=None,
            help="DIMSE peer (C-ECHO/C-STORE, C-FIND/C-GET).",
        ),
        click.option(
            "--called-aet", metavar="AET", default=None, help="The PACS's AE title (with --pacs)."
        ),
        click.option(
            "--calling-aet", metavar="AET", default=None, help="Our AE title [default: MEDFUSE]."
        ),
        click.option(
            "--dicomweb",
            "dicomweb_url",
            metavar="URL",
            default=None,
            help="DICOMweb service root instead of --pacs (STOW-RS / QIDO-RS + WADO-RS).",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=2,
            show_default=True,
            help="Extra attempts for an unreachable peer, lost associations and failed items.",
        ),
        click.option(
            "--backoff",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            help="Seconds before the first retry, doubled for each later one.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Seconds for connecting and for each reply.",
        ),
        click.option(
            "--report",
            "report_path",
            metavar="FILE",
            default=None,
            help="Also write the status report as JSON.",
        ),
        click.option(
            "-q", "--quiet", is_flag=True, help="No table or progress lines (errors only)."
        ),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func



def make_peer(
    pacs: str | None,
    dicomweb_url: str | None,
    called_aet: str | None,
    calling_aet: str | None,
    timeout: float,
    pacs_flag: str = "--pacs",
    dicomweb_flag: str = "--dicomweb",
) -> Any:
    """A DimsePeer (``HOST:PORT`` + called AE title) or a DicomwebServer (URL), validated.

    Raises:
        click.UsageError: neither or both given, a bad HOST:PORT, AE title or URL.
    """
    from medfuse.pacs.dicomweb import DicomwebServer
    from medfuse.pacs.dimse import DEFAULT_CALLING_AET, DimsePeer, check_aet, parse_address

    if bool(pacs) == bool(dicomweb_url):
        raise click.UsageError(f"give exactly one of {pacs_flag} HOST:PORT or {dicomweb_flag} URL")
    if dicomweb_url:
        if not dicomweb_url.startswith(("http://", "https://")):
            raise click.UsageError(f"{dicomweb_flag}: {dicomweb_url!r} is not an http(s) URL")
        return DicomwebServer(dicomweb_url, timeout=timeout)
    assert pacs is not None  # exactly one of the two was given
    try:
        host, port = parse_address(pacs)
    except ValueError as exc:
        raise click.UsageError(f"{pacs_flag}: {exc}") from None
    if not called_aet:
        raise click.UsageError(f"{pacs_flag} needs --called-aet (the PACS's AE title)")
    try:
        called = check_aet(called_aet)
        calling = check_aet(calling_aet or DEFAULT_CALLING_AET)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return DimsePeer(host, port, called, calling, timeout=timeout)


def check_report_path(report_path: str | None) -> None:
    """Fail before any transfer when the --report file could not be written.

    Raises:
        OutputError: the path is a folder or its nearest existing parent is not writable.
    """
    import os
    from pathlib import Path

    from medfuse.errors import OutputError

    if not report_path:
        return
    path = Path(report_path)
    if path.is_dir():
        raise OutputError(f"{path}: --report names a folder, not a file")
    probe = path.absolute().parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write the report ({probe} is not a writable folder)")


def print_report(report: Any, report_path: str | None, quiet: bool) -> None:
    """Print the report table on stdout (unless quiet) and write the JSON report if asked."""
    from medfuse.pacs.report import format_table, write_json

    if report_path:
        write_json(report, report_path)
    if not quiet and report.rows and not report.error:
        click.echo(format_table(report))

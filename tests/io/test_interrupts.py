"""SIGTERM at the worst moments of writing an output folder: nothing half-made is left.

The signal is real (``os.kill`` of this process, with the handler ``medfuse fuse`` installs); it is
sent from inside the step under test, so it lands there however loaded the machine is.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from medfuse.cli import _signals
from medfuse.io import atomic, interrupts
from medfuse.io.atomic import AtomicOutputDir
from medfuse.io.guard import MARKER


@pytest.fixture
def sigterm_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fuse command's SIGTERM and SIGINT handlers, for one test."""
    monkeypatch.setattr(_signals, "_received", [])
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    _signals.install_stop_signals()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        interrupts.clear()


def _term_self() -> None:
    """Send SIGTERM to this process and give Python the bytecodes to run its handler."""
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):
        pass


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_sigterm_while_the_temporary_folder_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_handler: None
):
    real = atomic.write_marker

    def marker_then_signal(folder: Path, command: str) -> None:
        real(folder, command)
        _term_self()  # lands after mkdtemp, before __enter__ returns the folder

    monkeypatch.setattr(atomic, "write_marker", marker_then_signal)
    body_ran = False
    with pytest.raises(SystemExit) as stop:
        with AtomicOutputDir(tmp_path / "out"):
            body_ran = True
    assert stop.value.code == 128 + signal.SIGTERM
    assert not body_ran
    assert _leftovers(tmp_path) == []
    assert _signals.terminated() == 128 + signal.SIGTERM


def test_sigterm_while_moving_into_place_keeps_the_complete_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_handler: None
):
    real = AtomicOutputDir._commit

    def signal_then_commit(self: AtomicOutputDir) -> None:
        _term_self()  # lands before the rename: the move must still complete
        real(self)

    monkeypatch.setattr(AtomicOutputDir, "_commit", signal_then_commit)
    with AtomicOutputDir(tmp_path / "out") as tmp:
        (tmp / "run.json").write_text("{}")
    assert _leftovers(tmp_path) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["run.json", MARKER])
    assert interrupts.pending() == 128 + signal.SIGTERM  # the caller stops at its next checkpoint
    with pytest.raises(SystemExit) as stop:
        interrupts.checkpoint()
    assert stop.value.code == 128 + signal.SIGTERM and interrupts.pending() is None


def test_sigterm_while_replacing_an_old_output_leaves_one_complete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_handler: None
):
    with AtomicOutputDir(tmp_path / "out") as tmp:
        (tmp / "old.txt").write_text("old")
    real = AtomicOutputDir._commit

    def signal_then_commit(self: AtomicOutputDir) -> None:
        _term_self()
        real(self)

    monkeypatch.setattr(AtomicOutputDir, "_commit", signal_then_commit)
    with AtomicOutputDir(tmp_path / "out", overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _leftovers(tmp_path) == ["out"]  # no .old-* and no .tmp-* folder
    assert (tmp_path / "out" / "new.txt").exists() and not (tmp_path / "out" / "old.txt").exists()


def test_sigterm_while_writing_removes_the_temporary_folder(
    tmp_path: Path, sigterm_handler: None
):
    with pytest.raises(SystemExit) as stop:
        with AtomicOutputDir(tmp_path / "out") as tmp:
            (tmp / "half.dcm").write_bytes(b"x" * 100)
            _term_self()
            (tmp / "never.dcm").write_bytes(b"x")
    assert stop.value.code == 128 + signal.SIGTERM
    assert not (tmp_path / "out" / "never.dcm").exists()
    assert _leftovers(tmp_path) == []


def test_sigterm_while_a_pull_report_is_written_leaves_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sigterm_handler: None
):
    from medfuse.pacs import report as report_mod

    real = report_mod.json.dump

    def dump_then_signal(obj: object, fh: object, **kw: object) -> None:
        _term_self()  # lands mid-file: the file is finished and moved in place first
        real(obj, fh, **kw)

    monkeypatch.setattr(report_mod.json, "dump", dump_then_signal)
    rep = report_mod.TransferReport("pull", "dimse", "host:104 (AE PACS)", 1.0, [])
    out = report_mod.write_json(rep, tmp_path / "r.json")
    assert json.loads(out.read_text())["rows"] == [] and _leftovers(tmp_path) == ["r.json"]
    assert interrupts.pending() == 128 + signal.SIGTERM


def test_an_exit_requested_outside_a_critical_section_is_immediate():
    with pytest.raises(SystemExit) as stop:
        interrupts.request_exit(143)
    assert stop.value.code == 143 and interrupts.pending() is None


def test_nested_sections_raise_once_at_the_outermost_end():
    cleaned: list[str] = []
    reached: list[str] = []
    with pytest.raises(SystemExit):
        with interrupts.critical(on_exit=lambda: cleaned.append("outer")):
            with interrupts.critical(on_exit=lambda: cleaned.append("inner")):
                interrupts.request_exit(143)
                reached.append("inner end")
            reached.append("outer end")
    assert reached == ["inner end", "outer end"] and cleaned == ["outer"]
    assert interrupts.pending() is None

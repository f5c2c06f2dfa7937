"""``medfuse batch`` never deletes the manifest's folder, an input or a stranger's (issue 14).

Rows point at copies of the bundled demo CT/MR folders; every refusal is one line before any
study runs, and the folder tree is byte-identical afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from medfuse.batch.resume import decide
from medfuse.cli import cli
from medfuse.data import demo_pair
from medfuse.io.guard import write_marker
from tests.helpers import demo_study, tree_hashes

ARGS = ("--method", "average", "--register", "none", "--force")


@pytest.fixture
def x(tmp_path: Path) -> Path:
    return demo_study(tmp_path / "x")


def _batch(manifest: Path) -> tuple[int, list[str]]:
    res = CliRunner().invoke(cli, ["batch", str(manifest), *ARGS])
    return res.exit_code, [ln for ln in res.output.splitlines() if ln.strip()]


ROWS = {
    "dot": ("a,b,out\nct,mr,.\n", 5, "contains an input"),  # the manifest's own folder (defect 2)
    "inside-input": ("a,b,out\nct,mr,ct/fused\n", 5, "is inside an input"),
    "holds-input": ("a,b,out\nct/../ct,mr,..\n", 5, "contains an input"),
    "other-rows-input": ("a,b,out\nct,mr,o1\no1/dicom,mr,o2\n", 5, "overlaps row 2's input"),
    "symlinked-duplicate": ("a,b,out\nct,mr,o3/x\nct,mr,o3link/x\n", 3, "is also row 1's"),
}


@pytest.mark.parametrize("key", list(ROWS))
def test_bad_output_rows_are_refused_before_anything_runs(x: Path, key: str):
    text, code, words = ROWS[key]
    (x / "o3").mkdir()
    (x / "o3link").symlink_to(x / "o3")
    m = x / "m.csv"
    m.write_text(text)
    before = tree_hashes(x.parent)
    exit_code, lines = _batch(m)
    assert exit_code == code and len(lines) == 1, lines
    assert lines[0].startswith("medfuse: error: ") and str(m) in lines[0], lines
    assert words in lines[0], lines[0]
    assert tree_hashes(x.parent) == before  # nothing deleted, no output, no report


def test_output_name_is_never_a_glob_pattern(tmp_path: Path):
    g = tmp_path / "g"
    g.mkdir()
    for name in (".keep.tmp-mine", ".a.tmp-1"):  # marked as medfuse's, but of other outputs
        (g / name).mkdir()
        write_marker(g / name, "fuse")
    ct, mr = demo_pair()
    for out in ("*", "a**b", "[a]"):
        d = decide({"out": str(g / out), "a": str(ct), "b": str(mr), "flags": {}})
        assert (d.action, d.cleared) == ("new", 0)
    assert sorted(p.name for p in g.iterdir()) == [".a.tmp-1", ".keep.tmp-mine"]

"""``medfuse batch`` manifests: parsing, precedence, path resolution, and the up-front checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfuse.batch.manifest import load_manifest
from medfuse.cli import cli
from tests.helpers import cli_env


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_rows_resolve_paths_and_merge_options(tmp_path: Path):
    (tmp_path / "w").mkdir()
    m = _write(
        tmp_path / "m.csv",
        "id,a,b,out,method,window-a,format,transform\n"
        "s1,ct,mr,out/s1,, 40:400 ,\"nifti,png\",w/t.tfm\n"
        ",x/a.nii.gz,x/b.nii.gz,out/s2,dwt,,,\n",
    )
    s1, s2 = load_manifest(m, defaults={"method": "average", "register": "none"})
    assert (s1.row, s1.id, s2.id) == (1, "s1", "out/s2")  # id defaults to out as written
    assert s1.a == str(tmp_path / "ct") and s2.out == str(tmp_path / "out" / "s2")
    assert s1.flags == {
        "method": "average", "register": "none", "window_a": "40:400", "formats": "nifti,png",
        "transform": str(tmp_path / "w" / "t.tfm"),
    }
    assert s2.flags == {"method": "dwt", "register": "none"}  # the row wins over the defaults


def test_json_defaults_then_command_line_then_row(tmp_path: Path):
    m = _write(tmp_path / "m.json", json.dumps({
        "defaults": {"method": "laplacian", "register": "none", "batch-size": 4, "axis": 1},
        "studies": [{"a": "a1", "b": "b1", "out": "o1"},
                    {"a": "a2", "b": "b2", "out": "o2", "method": "max", "format": ["nifti"]}],
    }))
    s1, s2 = load_manifest(m, defaults={"method": "average"})
    assert s1.flags == {"method": "average", "register": "none", "batch_size": 4, "axis": "1"}
    assert s2.flags["method"] == "max" and s2.flags["formats"] == "nifti"
    # a plain list of rows is a manifest too
    m2 = _write(tmp_path / "l.json", json.dumps([{"a": "a", "b": "b", "out": "o", "id": "x"}]))
    assert [s.id for s in load_manifest(m2)] == ["x"]


BAD = [
    ("m.csv", "a,b\nct,mr\n", "m.csv: line 1 (header): missing column 'out'"),
    ("m.csv", "a,b,out\nct,mr,o1\nct,,o2\n", "m.csv: row 2 (line 3): missing 'b'"),
    ("m.csv", "a,b,out,methd\nct,mr,o1,average\n", "m.csv: row 1 (line 2): unknown option 'methd'"),
    ("m.csv", "a,b,out,register\nct,mr,o1,sideways\n",
     "m.csv: row 1 (line 2): option 'register': 'sideways' is not one of"),
    ("m.csv", "a,b,out\nct,mr,o1,extra\n", "m.csv: row 1 (line 2): 4 values for 3 columns"),
    ("m.csv", "a,b,out\nct,mr,o1\nct2,mr2,./o1\n", "m.csv: row 2 (line 3): output folder"),
    ("m.csv", "a,b,out\n", "m.csv: the manifest lists no study"),
    ("m.json", '{"studies": [{"a": "ct", "b": "mr", "out": "o"}, ["ct", "mr", "o2"]]}',
     "m.json: row 2: expected an object"),
    ("m.json", '{"defaults": {"pallete": "PET"}, "studies": [{"a": "ct", "b": "mr", "out": "o"}]}',
     "m.json: defaults: unknown option 'pallete'"),
    ("m.json", '[{"a": "ct", "b": "mr", "out": "o", "batch_size": 0}]',
     "m.json: row 1: option 'batch_size': 0 is not in the range x>=1"),
    ("m.json", '{"studies": [}', "m.json: line 1: not valid JSON"),
    ("m.json", '{"rows": []}', "m.json: a JSON manifest is a list of rows or an object"),
    ("m.txt", "a,b,out\n", "m.txt: a manifest is a .csv or .json file"),
]


@pytest.mark.parametrize("name,text,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_manifest_is_one_line_and_nothing_runs(
    tmp_path: Path, name: str, text: str, message: str
):
    m = _write(tmp_path / name, text)
    res = CliRunner().invoke(cli, ["batch", str(m), "--method", "average"])
    assert res.exit_code == 3, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("medfuse: error: "), res.output
    assert message in lines[0], lines[0]
    assert str(tmp_path) in lines[0]  # names the manifest file
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no output, no report


def test_missing_manifest_and_bad_backend_options(tmp_path: Path):
    res = CliRunner().invoke(cli, ["batch", str(tmp_path / "nope.csv")])
    assert res.exit_code == 3 and "nope.csv: no such manifest file" in res.output
    m = _write(tmp_path / "m.csv", "a,b,out\nct,mr,o\n")
    res = CliRunner().invoke(cli, ["batch", str(m), "--address", "127.0.0.1:6379"])
    assert res.exit_code == 2 and "--address is for --backend ray" in res.output
    res = CliRunner().invoke(cli, ["batch", str(m), "--register", "sideways"])
    assert res.exit_code == 2  # the fuse options of the command line are checked by click


def test_batch_help_imports_neither_torch_nor_ray():
    code = (
        "import sys\n"
        "from medfuse.cli import main\n"
        "try:\n    main(['batch', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'monai', 'rich') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--backend [local|ray]" in out.stdout and "--window-a SPEC" in out.stdout
    assert "HEAVY []" in out.stdout

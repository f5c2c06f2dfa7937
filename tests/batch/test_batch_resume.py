"""What a batch rerun decides for an existing output (real stroke output), and the network cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medfuse.batch.manifest import Study
from medfuse.batch.resume import decide
from medfuse.io.checksums import verify_outputs
from medfuse.io.guard import MARKER, write_marker
from tests.helpers import random_ecfusion


@pytest.fixture(scope="module")
def stroke_study(stroke_dir: Path, tmp_path_factory) -> dict:
    """A stroke FLAIR + T1 study fused once (average, no registration) as batch would."""
    from medfuse.fusion.run import fuse_pair, options_from_flags

    out = tmp_path_factory.mktemp("resume") / "out" / "s1"
    s = Study(row=1, id="s1", a=str(stroke_dir / "FLAIR.nii.gz"), b=str(stroke_dir / "T1.nii.gz"),
              out=str(out), flags={"method": "average", "register": "none"}).to_dict()
    fuse_pair(s["a"], s["b"], out, options_from_flags(**s["flags"], quiet=True))
    return s


def test_complete_output_is_skipped_unless_forced_or_changed(stroke_study: dict):
    out = Path(stroke_study["out"])
    assert verify_outputs(out) is None
    assert decide(stroke_study).action == "skip"
    assert (decide(stroke_study, force=True).action, decide(stroke_study, force=True).reason) == (
        "redo", "--force")
    other = {**stroke_study, "flags": {**stroke_study["flags"], "method": "max"}}
    d = decide(other)
    assert d.action == "redo" and d.reason == "made with other options (method)"
    swapped = {**stroke_study, "a": stroke_study["b"], "b": stroke_study["a"]}
    assert decide(swapped).reason == "made from other inputs"


def test_damaged_outputs_are_redone_and_temp_folders_cleared(stroke_study: dict, tmp_path: Path):
    import shutil

    out = tmp_path / "s1"
    shutil.copytree(stroke_study["out"], out)
    s = {**stroke_study, "out": str(out)}
    (out.parent / ".s1.tmp-abc123").mkdir()  # what a killed run leaves (marked as medfuse's)
    write_marker(out.parent / ".s1.tmp-abc123", "fuse")
    (out.parent / ".s1.tmp-abc123" / "fused.nii.gz").write_bytes(b"partial")
    (out.parent / ".s1.tmp-mine").mkdir()  # same name pattern, not medfuse's: kept
    d = decide(s)
    assert (d.action, d.cleared) == ("skip", 1) and not (out.parent / ".s1.tmp-abc123").exists()
    assert (out.parent / ".s1.tmp-mine").is_dir()
    data = (out / "preview.png").read_bytes()
    (out / "preview.png").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    assert decide(s).reason == "preview.png changed (hash mismatch)"
    (out / "preview.png").unlink()
    assert decide(s).reason == "preview.png missing"
    (out / "run.json").write_text("{not json")
    assert decide(s).reason == "run.json unreadable"
    (out / "run.json").unlink()  # still marked as medfuse's: redone
    assert (decide(s).action, decide(s).reason) == ("redo", "no run.json")
    (out / MARKER).unlink()  # a non-empty folder that is not a medfuse output: left alone
    d = decide(s)
    assert d.action == "refuse" and "is not a medfuse output" in d.reason
    assert decide(s, force=True).action == "refuse"  # not even --force deletes it
    shutil.rmtree(out)
    out.mkdir()
    assert decide(s).action == "new"


def test_network_loaded_once_per_process_when_cached(tmp_path: Path):
    from medfuse.fusion.base import enable_method_cache, get_method

    w = random_ecfusion(tmp_path / "w.safetensors", "ct-mri", seed=0)
    assert get_method("network", weights=str(w)) is not get_method("network", weights=str(w))
    enable_method_cache()
    try:
        m1 = get_method("network", weights=str(w))
        assert get_method("network", weights=str(w)) is m1
        assert get_method("average") is not get_method("average")  # only networks are kept
        st = w.stat()
        os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a replaced weights file
        assert get_method("network", weights=str(w)) is not m1
    finally:
        enable_method_cache(False)

"""``medfuse evaluate`` on real images: the reference triplets (values checked against VIFB's own
output), Harvard PET-MRI pairs (RGB sources), a real NIfTI volume pair, and the error paths."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from medfuse.cli import cli

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"
PAIRS = {"CT-MRI": ("16003", "16004"), "PET-MRI": ("25016", "25017"),
         "SPECT-MRI": ("10007", "10008")}


@pytest.fixture(scope="module")
def triplet_dirs(tmp_path_factory) -> Path:
    """A/, B/, F_avg/, F_max/ folders holding the 6 reference triplets as <pair>.png."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference folder not found: {REFERENCE}")
    root = tmp_path_factory.mktemp("triplets")
    for task, pairs in PAIRS.items():
        for pair in pairs:
            for img in ("A", "B", "F_avg", "F_max"):
                (root / img).mkdir(exist_ok=True)
                shutil.copy(REFERENCE / "triplets" / task / pair / f"{img}.png",
                            root / img / f"{pair}.png")
    return root


def _run(*args: str):
    return CliRunner().invoke(cli, ["evaluate", *args], catch_exceptions=False)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_reproduces_vifb_reference_values(triplet_dirs, tmp_path):
    out = tmp_path / "out"
    r = _run("--a", str(triplet_dirs / "A"), "--b", str(triplet_dirs / "B"),
             "--fused", f"F_avg={triplet_dirs / 'F_avg'}",
             "--fused", f"F_max={triplet_dirs / 'F_max'}",
             "--profile", "vifb", "--no-progress", "-o", str(out))
    assert r.exit_code == 0, r.output
    rows = {(row["method"], row["image"]): row for row in _csv(out / "per_image.csv")}
    assert len(rows) == 12
    checked = 0
    for ref in _csv(REFERENCE / "vifb_reference.csv"):
        if ref["fused"] not in ("F_avg", "F_max"):
            continue
        got = float(rows[(ref["fused"], ref["pair"])][ref["metric"]])
        rtol = 1e-2 if ref["metric"] == "Qcb" and ref["task"] != "CT-MRI" else 1e-6
        assert got == pytest.approx(float(ref["value"]), rel=rtol), ref
        checked += 1
    assert checked == 12 * 13
    # the printed table: one column per method, every default vifb metric, a direction arrow
    assert ("F_avg" in r.output and "F_max" in r.output and "Qcv ↓" in r.output
            and "Qabf ↑" in r.output)
    # summary.csv means are the means of the per-image values
    summ = {(s["method"], s["metric"]): s for s in _csv(out / "summary.csv")}
    qabf = [float(rows[("F_max", p)]["Qabf"]) for ps in PAIRS.values() for p in ps]
    assert float(summ[("F_max", "Qabf")]["mean"]) == pytest.approx(np.mean(qabf), rel=1e-12)
    assert int(summ[("F_max", "Qabf")]["n"]) == 6
    # Markdown: best mean in bold, direction-aware (Qcv lower is better)
    md = (out / "summary.md").read_text()
    qcv_line = next(line for line in md.splitlines() if line.startswith("| Qcv"))
    qcv = {m: float(summ[(m, "Qcv")]["mean"]) for m in ("F_avg", "F_max")}
    best = min(qcv, key=qcv.get)
    cells = qcv_line.strip("|").split("|")[1:]
    assert ("**" in cells[0]) == (best == "F_avg") and ("**" in cells[1]) == (best == "F_max")
    # one readable box plot per metric
    plots = sorted(out.glob("boxplot_*.png"))
    assert len(plots) == len({s["metric"] for s in summ.values()}) == 17
    with Image.open(plots[0]) as im:
        assert im.format == "PNG" and im.size[0] > 200
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_evaluate_harvard_rgb_pet_pairs_with_cddfuse_profile(harvard_dir, tmp_path):
    """RGB PET sources are scored on their luma: same numbers as with the luma saved as grey."""
    from medfuse.metrics import FusionMetrics, to_luma

    names = sorted(p.name for p in (harvard_dir / "PET-MRI" / "PET").glob("*.png"))[:4]
    for d in ("A", "Y", "B", "avg"):
        (tmp_path / d).mkdir()
    expected = {}
    for n in names:
        rgb = np.asarray(Image.open(harvard_dir / "PET-MRI" / "PET" / n).convert("RGB"))
        y = np.rint(to_luma(rgb)).astype(np.uint8)
        mri = np.asarray(Image.open(harvard_dir / "PET-MRI" / "MRI" / n))
        avg = np.rint((y.astype(float) + mri) / 2).astype(np.uint8)
        shutil.copy(harvard_dir / "PET-MRI" / "PET" / n, tmp_path / "A" / n)
        Image.fromarray(y).save(tmp_path / "Y" / n)
        shutil.copy(harvard_dir / "PET-MRI" / "MRI" / n, tmp_path / "B" / n)
        Image.fromarray(avg).save(tmp_path / "avg" / n)
        expected[n[:-4]] = FusionMetrics("cddfuse", ["MI", "Qabf", "SSIM"])(avg, y, mri)
    res = {}
    for src in ("A", "Y"):
        out = tmp_path / f"out_{src}"
        r = _run("--a", str(tmp_path / src), "--b", str(tmp_path / "B"),
                 "--fused", f"avg={tmp_path / 'avg'}",
                 "--profile", "cddfuse", "--metrics", "MI,Qabf,SSIM", "--no-plots", "-o", str(out))
        assert r.exit_code == 0, r.output
        res[src] = _csv(out / "per_image.csv")
        assert not list(out.glob("*.png"))
    assert res["A"] == res["Y"]
    for row in res["A"]:
        for m in ("MI", "Qabf", "SSIM"):
            assert float(row[m]) == pytest.approx(expected[row["image"]][m], rel=1e-12)


def _stroke_volumes(
    stroke_dir: Path, tmp_path: Path, edit: Callable[[dict[str, np.ndarray]], None] | None = None
) -> dict[str, np.ndarray]:
    """Slices 60-63 of the real stroke T1 (A) and FLAIR (B), edited by ``edit``, and their rounded
    mean (``mean``), saved as ``tmp_path/LABEL/stroke.nii.gz`` with the block's affine."""
    nib = pytest.importorskip("nibabel")
    pytest.importorskip("medfuse.io")
    data = {}
    for label, src in (("A", "T1"), ("B", "FLAIR")):
        img = nib.load(stroke_dir / f"{src}.nii.gz")
        data[label] = np.asarray(img.dataobj)[:, :, 60:64].astype(np.float32)
        affine = img.affine.copy()
        affine[:3, 3] += affine[:3, 2] * 60  # the cropped block's first voxel
    if edit is not None:
        edit(data)
    data["mean"] = np.rint((data["A"] + data["B"]) / 2).astype(np.float32)
    for label, arr in data.items():
        (tmp_path / label).mkdir()
        nib.save(nib.Nifti1Image(arr, affine), tmp_path / label / "stroke.nii.gz")
    return data


def test_evaluate_volumes_slice_by_slice(stroke_dir, tmp_path):
    """Co-registered real NIfTI volumes (T1 as A, FLAIR as B, their mean as fused), 4 slices."""
    from medfuse.metrics import FusionMetrics

    data = _stroke_volumes(stroke_dir, tmp_path)
    out = tmp_path / "out"
    r = _run("--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
             "--fused", f"mean={tmp_path / 'mean'}",
             "--metrics", "MI,Qabf", "--no-plots", "-o", str(out))
    assert r.exit_code == 0, r.output
    rows = _csv(out / "per_image.csv")
    assert [row["image"] for row in rows] == [f"stroke:k{k:03d}" for k in range(4)]
    for k, row in enumerate(rows):
        want = FusionMetrics("vifb", ["MI", "Qabf"])(data["mean"][:, :, k], data["A"][:, :, k],
                                                     data["B"][:, :, k])
        assert float(row["MI"]) == pytest.approx(want["MI"], rel=1e-9)
        assert float(row["Qabf"]) == pytest.approx(want["Qabf"], rel=1e-9)


def test_evaluate_volumes_skip_constant_source_slices(stroke_dir, tmp_path):
    """A source slice that is constant but not black (a fill value, a saturated slice) has no
    edges or contrast to score (Qabf and Qcb would be 0/0): it is skipped and reported, like a
    blank one, and every other slice gets finite figures."""
    def constant_slice(data: dict[str, np.ndarray]) -> None:
        for label in ("A", "B"):  # within 0..255, so no volume is rescaled
            data[label] *= 255 / data[label].max()
        data["A"][:, :, 1] = 100.0  # constant, not blank

    _stroke_volumes(stroke_dir, tmp_path, constant_slice)
    out = tmp_path / "out"
    r = _run("--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
             "--fused", f"mean={tmp_path / 'mean'}",
             "--metrics", "Qabf,Qcb", "--no-plots", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "stroke: 1 of 4 slices skipped (a source slice is constant)" in r.output
    rows = _csv(out / "per_image.csv")
    assert [row["image"] for row in rows] == ["stroke:k000", "stroke:k002", "stroke:k003"]
    assert all(np.isfinite(float(row[m])) for row in rows for m in ("Qabf", "Qcb"))


def test_evaluate_errors(triplet_dirs, tmp_path):
    a, b, f = (str(triplet_dirs / n) for n in ("A", "B", "F_avg"))
    # a fused folder lacking one image: exit 3, one line naming the folder and the missing image
    partial = tmp_path / "partial"
    shutil.copytree(f, partial)
    (partial / "16004.png").unlink()
    r = CliRunner().invoke(cli, ["evaluate", "--a", a, "--b", b, "--fused", f"p={partial}",
                                 "-o", str(tmp_path / "o1")])
    assert r.exit_code == 3
    assert r.output.count("\n") == 1 and "16004" in r.output and "partial" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o1").exists()
    # a size mismatch
    small = tmp_path / "small"
    shutil.copytree(f, small)
    Image.open(small / "10007.png").resize((128, 128)).save(small / "10007.png")
    r = CliRunner().invoke(cli, ["evaluate", "--a", a, "--b", b, "--fused", f"s={small}",
                                 "-o", str(tmp_path / "o2")])
    assert r.exit_code == 3 and "10007" in r.output and "128x128" in r.output
    # unknown metric: usage error
    r = CliRunner().invoke(cli, ["evaluate", "--a", a, "--b", b, "--fused", f"x={f}",
                                 "--metrics", "MI,NIQE", "-o", str(tmp_path / "o3")])
    assert r.exit_code == 2 and "NIQE" in r.output
    # existing results are not overwritten without --overwrite
    out = tmp_path / "o4"
    args = ["evaluate", "--a", a, "--b", b, "--fused", f"x={f}", "--metrics", "EN", "--no-plots",
            "-o", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 5 and "--overwrite" in r.output
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0
    # missing folder
    r = CliRunner().invoke(cli, ["evaluate", "--a", str(tmp_path / "nope"), "--b", b,
                                 "--fused", f"x={f}", "-o", str(tmp_path / "o5")])
    assert r.exit_code == 3 and "nope" in r.output


def test_evaluate_subprocess(triplet_dirs, tmp_path):
    """The real entry point: ``python -m medfuse evaluate`` from the repository root."""
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "medfuse", "evaluate", "--a", str(triplet_dirs / "A"),
                        "--b", str(triplet_dirs / "B"), "--fused", str(triplet_dirs / "F_max"),
                        "--profile", "paper", "--metrics", "MI,Qabf,VIF,SSIM,Qcb,Qcv",
                        "-o", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "F_max" in p.stdout and "VIF" in p.stdout
    assert (out / "summary.md").is_file() and len(list(out.glob("boxplot_*.png"))) == 6


def test_evaluate_refuses_volumes_on_different_grids(phantom_dir, tmp_path):
    """Real DICOM series of the MRI-DIR phantom: CT and MR grids differ -> exit 4, nothing
    written."""
    for label, series in (("A", "CT_every4th"), ("B", "MR_T2"), ("F", "MR_T2")):
        (tmp_path / label).mkdir()
        (tmp_path / label / "phantom").symlink_to(phantom_dir / series, target_is_directory=True)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["evaluate", "--a", str(tmp_path / "A"), "--b", str(tmp_path / "B"),
                                 "--fused", f"f={tmp_path / 'F'}", "--metrics", "MI",
                                 "-o", str(out)])
    assert r.exit_code == 4, r.output
    assert "grid" in r.output and "Traceback" not in r.output
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------------------------
# --volume: medfuse fuse outputs, scored slice by slice against their sources, plus the ISE


@pytest.fixture(scope="module")
def stroke_fused(stroke_dir, tmp_path_factory) -> dict[str, Path]:
    """The stroke FLAIR (A) and T1 (B) fused with average and laplacian (NIfTI outputs)."""
    root = tmp_path_factory.mktemp("stroke_fused")
    outs = {}
    for method in ("average", "laplacian"):
        outs[method] = root / method
        r = CliRunner().invoke(cli, ["fuse", str(stroke_dir / "FLAIR.nii.gz"),
                                     str(stroke_dir / "T1.nii.gz"), "-o", str(outs[method]),
                                     "--method", method, "--format", "nifti", "-q"])
        assert r.exit_code == 0, r.output
    return outs


def test_evaluate_fused_stroke_volumes(stroke_fused, stroke_dir, tmp_path):
    """Slice-mean metrics and the inter-slice excess per method; per-slice values equal the 2D
    metrics of the written NIfTI's slices against the windowed sources; ISE as run.json says."""
    import json

    from medfuse.io import load_volume
    from medfuse.metrics import FusionMetrics
    from medfuse.metrics.consistency import interslice_excess
    from medfuse.transforms import ExtractSlices, Window

    out = tmp_path / "eval"
    r = _run("--volume", f"avg={stroke_fused['average']}",
             "--volume", str(stroke_fused["laplacian"]),
             "--profile", "paper", "--metrics", "MI,Qabf,SSIM", "--no-progress", "-o", str(out))
    assert r.exit_code == 0, r.output
    table = r.output
    assert "avg" in table and "laplacian" in table and "MI ↑" in table and "ISE ↓ (volume)" in table
    cut = ExtractSlices("axial")
    src = {n: cut(Window("mr")(load_volume(stroke_dir / f"{n}.nii.gz"))).as_tensor()
              .numpy()[:, 0] * 255
           for n in ("FLAIR", "T1")}
    summ = {(s["method"], s["metric"]): s for s in _csv(out / "summary.csv")}
    rows = _csv(out / "per_image.csv")
    fm = FusionMetrics("paper", ["MI", "Qabf", "SSIM"])
    for name, method in (("avg", "average"), ("laplacian", "laplacian")):
        fused = cut(load_volume(stroke_fused[method] / "fused.nii.gz")).as_tensor().numpy()[:, 0]
        mine = [row for row in rows if row["method"] == name]
        scored = [k for k in range(len(fused)) if np.ptp(src["FLAIR"][k]) and np.ptp(src["T1"][k])]
        assert [row["image"].split()[0] for row in mine] == [f"k{k:03d}" for k in scored]
        for row in mine[:: len(mine) // 4]:
            k = int(row["image"][1:4])
            want = fm(fused[k], src["FLAIR"][k], src["T1"][k])
            for m in ("MI", "Qabf", "SSIM"):
                assert float(row[m]) == pytest.approx(want[m], rel=1e-9)
        assert float(summ[(name, "MI")]["mean"]) == pytest.approx(
            np.mean([float(x["MI"]) for x in mine]))
        ise = float(summ[(name, "ISE")]["mean"])
        assert ise == pytest.approx(interslice_excess(fused, src["FLAIR"], src["T1"]), abs=1e-9)
        run = json.loads((stroke_fused[method] / "run.json").read_text())
        assert ise == pytest.approx(run["interslice_excess"], abs=1e-6)
    assert float(summ[("avg", "ISE")]["mean"]) == 0.0  # the mean never out-changes a source
    assert float(summ[("laplacian", "ISE")]["mean"]) > 0.01  # max-abs detail selection does
    md = (out / "summary.md").read_text()
    assert "| ISE ↓ (volume) | **0.0000** |" in md
    rec = json.loads((out / "evaluate.json").read_text())
    assert len(rec["interslice"]["avg"]["per_gap"]) == len(fused) - 1
    assert rec["sources"]["avg"]["a"].endswith("FLAIR.nii.gz")
    assert (out / "interslice.png").is_file() and len(list(out.glob("boxplot_*.png"))) == 3


def test_evaluate_volume_errors(stroke_fused, stroke_dir, tmp_path):
    # --fused and --volume together, or neither: usage
    r = CliRunner().invoke(cli, ["evaluate", "--volume", str(stroke_fused["average"]), "--fused",
                                 str(tmp_path), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--volume" in r.output
    # not a fuse output: one line, exit 3
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["evaluate", "--volume", str(tmp_path / "empty"),
                                 "-o", str(tmp_path / "o")])
    assert r.exit_code == 3 and "fused.nii.gz" in r.output and r.output.count("\n") == 1
    # a fused volume without run.json needs its sources
    (tmp_path / "bare").mkdir()
    shutil.copy(stroke_fused["average"] / "fused.nii.gz", tmp_path / "bare" / "fused.nii.gz")
    r = CliRunner().invoke(cli, ["evaluate", "--volume", str(tmp_path / "bare"),
                                 "-o", str(tmp_path / "o")])
    assert r.exit_code == 3 and "--a and --b" in r.output
    # ... given, it is scored as fuse's defaults would have fed them (no registration)
    r = CliRunner().invoke(cli, ["evaluate", "--volume", str(tmp_path / "bare" / "fused.nii.gz"),
                                 "--a", str(stroke_dir / "FLAIR.nii.gz"),
                                 "--b", str(stroke_dir / "T1.nii.gz"),
                                 "--metrics", "MI", "--no-plots", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "bare" in r.output and "no run.json" in r.output
    # sources on another grid than the fused volume: exit 4
    r = CliRunner().invoke(cli, ["evaluate", "--volume", str(tmp_path / "bare"), "--a",
                                 str(stroke_dir / "FLAIR.nii.gz"),
                                 "--b", str(REPO / "medfuse" / "data" / "demo" / "mr"),
                                 "--metrics", "MI", "-o", str(tmp_path / "o2")])
    assert r.exit_code == 4 and "grid" in r.output


def test_evaluate_colour_fusion_volume(stroke_dir, tmp_path):
    """FLAIR colourised (HOT_IRON) over T1: the RGB volume is scored on its luma against the luma
    the method fused; evaluate's ISE is the one fuse recorded."""
    import json

    from medfuse.fusion.scoring import evaluate_volumes

    out = tmp_path / "dwt"
    r = CliRunner().invoke(cli, ["fuse", str(stroke_dir / "FLAIR.nii.gz"),
                                 str(stroke_dir / "T1.nii.gz"),
                                 "-o", str(out), "--method", "dwt", "--functional", "a",
                                 "--palette", "HOT_IRON", "--format", "nifti", "-q"])
    assert r.exit_code == 0, r.output
    res = evaluate_volumes({"dwt": out}, metrics=["MI"], progress=False)
    run = json.loads((out / "run.json").read_text())
    assert res.volume["dwt"]["ISE"] == pytest.approx(run["interslice_excess"], abs=1e-6)
    assert 0.01 < res.volume["dwt"]["ISE"] < 1
    assert res.sources["dwt"]["functional"] == {"a": True, "b": False}
    assert res.summary["dwt"]["MI"]["n"] > 100 and res.summary["dwt"]["MI"]["mean"] > 1


@pytest.fixture
def stop_signals():
    """medfuse's SIGTERM/SIGINT handlers installed in this process, restored afterwards."""
    import signal

    from medfuse.cli import _signals
    from medfuse.io import interrupts

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    _signals.install_stop_signals()
    try:
        yield signal.SIGTERM
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        interrupts.clear()
        _signals._received.clear()  # later in-process runs must not look stopped


def _triplet_result(triplet_dirs: Path):
    from medfuse.metrics.evaluate import evaluate_folders

    return evaluate_folders(triplet_dirs / "A", triplet_dirs / "B",
                            {"F_max": str(triplet_dirs / "F_max")}, None,
                            metrics="MI,Qabf,SSIM", progress=False)


@pytest.mark.parametrize("where", ["after_mkdtemp", "first_rename"])
def test_sigterm_while_writing_results_leaves_all_or_nothing(
    triplet_dirs, tmp_path, monkeypatch, stop_signals, where
):
    """A real SIGTERM raised right after the temporary folder is made, or between the renames of
    the result files: the stop waits for the step, then exits 143 with no temporary folder and
    either no results (first case) or every new file (second case)."""
    import os
    import signal
    import tempfile

    from medfuse.metrics.evaluate import OUTPUT_FILES, write_results

    result = _triplet_result(triplet_dirs)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "summary.md").write_text("old results")
    real = tempfile.mkdtemp if where == "after_mkdtemp" else os.replace
    calls = []

    def with_signal(*args, **kwargs):
        value = real(*args, **kwargs)
        if not calls:
            signal.raise_signal(stop_signals)
        calls.append(args)
        return value

    monkeypatch.setattr(tempfile if where == "after_mkdtemp" else os, real.__name__, with_signal)
    with pytest.raises(SystemExit) as stop:
        write_results(out, result, plots=False)
    monkeypatch.undo()
    assert stop.value.code == 128 + signal.SIGTERM
    assert not [p for p in out.iterdir() if p.name.startswith(".evaluate-")]
    if where == "after_mkdtemp":
        assert sorted(p.name for p in out.iterdir()) == ["summary.md"]
        assert (out / "summary.md").read_text() == "old results"
    else:
        assert len(calls) == len(OUTPUT_FILES)
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
        assert "F_max" in (out / "summary.md").read_text()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_evaluate_stopped_by_signal_exits_128_plus_signum(triplet_dirs, tmp_path, signame):
    """SIGTERM or Ctrl-C once the progress bar shows: exit 143 / 130, no traceback, no "Aborted!",
    no results and no temporary folder."""
    import signal

    signum = getattr(signal, signame)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "medfuse", "evaluate", "--a", str(triplet_dirs / "A"),
         "--b", str(triplet_dirs / "B"), "--fused", str(triplet_dirs / "F_max"),
         "--fused", f"avg={triplet_dirs / 'F_avg'}", "--progress", "-o", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    seen = ""
    while "evaluate:" not in seen:  # a state: the bar starts after the handlers are installed
        char = proc.stderr.read(1)
        if not char:
            proc.kill()
            raise AssertionError(f"evaluate ended before its progress bar: {seen[-2000:]}")
        seen += char
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=300)
    err = seen + rest
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err and "Aborted" not in err
    assert not out.exists() or not any(out.iterdir())
    assert not list(tmp_path.glob("**/.evaluate-*"))

"""``review.png``: the demo run's review image holds the written slices, the 2D-folder review, and
the slice chooser and position labels on real geometry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from medfuse.cli import cli
from medfuse.fusion.review import read_layout


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    """``medfuse fuse --demo -o out/`` (the issue's command, as a user types it)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    res = CliRunner().invoke(cli, ["fuse", "--demo", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return out


def _panel(img: np.ndarray, box: list[int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1].astype(np.float64)


def _as_panel(slice_hw: np.ndarray, box: list[int]) -> np.ndarray:
    """An (H, W) [0, 255] slice scaled to a panel box (PIL bicubic: not the renderer's filter)."""
    x0, y0, x1, y1 = box
    im = Image.fromarray(np.clip(np.rint(slice_hw), 0, 255).astype(np.uint8))
    return np.asarray(im.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC), dtype=np.float64)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def test_demo_review_has_four_columns_of_the_written_slices(demo_out: Path):
    from medfuse.fusion.sources import load_fuse_output
    from medfuse.io import load_volume
    from medfuse.transforms import ExtractSlices

    run = json.loads((demo_out / "run.json").read_text())
    assert "review.png" in run["outputs"] and "review.png" in run["output_sha256"]
    assert (demo_out / "preview.png").is_file()  # kept: the 16-slice montage of the result
    img = np.asarray(Image.open(demo_out / "review.png").convert("RGB"))
    h, w = img.shape[:2]
    assert 1400 <= w <= 1800 and 600 <= h <= 1800  # a laptop screen's width
    layout = read_layout(demo_out / "review.png")
    rows = layout["rows"]
    assert layout["columns"] == ["A", "B", "fused", "check"]
    assert len(rows) == 4 and len({r["slice"] for r in rows}) == 4
    assert [r["slice"] for r in rows] == sorted(r["slice"] for r in rows)

    # the written fused volume and B (the MR: the reference grid) as the test reads them
    nii = nib.load(demo_out / "fused.nii.gz")
    fused = ExtractSlices("axial")(load_volume(demo_out / "fused.nii.gz")).as_tensor().numpy()
    mr = load_volume(run["inputs"][1]["path"])
    assert run["reference_grid"] == "b"
    lo, hi = run["windows"]["b"]["lower"], run["windows"]["b"]["upper"]
    mr_w = np.clip((ExtractSlices("axial")(mr).as_tensor().numpy() - lo) / (hi - lo), 0, 1) * 255
    # A: the registered CT on the MR grid, as evaluate re-creates it from run.json + transform.tfm
    ct_w = load_fuse_output(demo_out).sources.windowed[0].as_tensor().numpy() * 255
    n = fused.shape[0]
    for r in rows:
        k = r["slice"]
        # the label is the slice centre's position along the normal, from the NIfTI affine
        i, j = (nii.shape[0] - 1) / 2, (nii.shape[1] - 1) / 2
        z = float((nii.affine @ [i, j, k, 1])[2])
        assert r["position_mm"][0] == ("S" if z >= 0 else "I")
        assert r["position_mm"][1] == pytest.approx(abs(z), abs=0.01)
        pa, pb, pf, pc = (_panel(img, b) for b in r["boxes"])
        assert pa.shape == pb.shape == pf.shape == pc.shape
        # each panel is its column's slice k: better than any other slice of that volume
        for panel, vol in ((pa, ct_w), (pb, mr_w), (pf, fused)):
            scores = [_corr(panel[..., 0], _as_panel(vol[m, 0], r["boxes"][0])) for m in range(n)]
            assert scores[k] > 0.97 and int(np.argmax(scores)) == k, (
                k,
                scores[k],
                np.argmax(scores),
            )
        # and the three differ from each other
        for x, y in ((pa, pb), (pa, pf), (pb, pf)):
            assert np.abs(x - y).mean() > 8
        # the check column: B in grey under green edges of A
        green = (pc[..., 1] > 200) & (pc[..., 0] < 60)
        assert 0.005 < green.mean() < 0.3
        grey = ~green
        assert np.abs(pc[..., 0] - pc[..., 1])[grey].mean() < 1.0
        assert _corr(pc[..., 0][grey], pb[..., 0][grey]) > 0.95


def test_no_review_flag_and_nifti_only(tmp_path: Path, stroke_dir: Path):
    """--no-review skips it; --format nifti writes no PNG at all (the review is a PNG)."""
    args = [
        str(stroke_dir / "FLAIR.nii.gz"),
        str(stroke_dir / "T1.nii.gz"),
        "--method",
        "average",
        "-q",
    ]
    res = CliRunner().invoke(cli, ["fuse", *args, "-o", str(tmp_path / "a"), "--no-review"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        ".medfuse-output",
        "fused.nii.gz",
        "preview.png",
        "run.json",
        "transform.tfm",
    ]
    res = CliRunner().invoke(cli, ["fuse", *args, "-o", str(tmp_path / "b"), "--format", "nifti"])
    assert res.exit_code == 0, res.output
    assert not list((tmp_path / "b").glob("*.png"))


def test_functional_input_is_shown_in_colour(tmp_path: Path, stroke_dir: Path):
    """FLAIR colourised over T1: A's panel is the palette's colours, B's and the check stay grey."""
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "fuse",
            str(stroke_dir / "FLAIR.nii.gz"),
            str(stroke_dir / "T1.nii.gz"),
            "-o",
            str(out),
            "--functional",
            "a",
            "--palette",
            "HOT_IRON",
            "--method",
            "average",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out / "review.png").convert("RGB")).astype(int)
    for r in read_layout(out / "review.png")["rows"]:
        pa, pb = (_panel(img, b) for b in r["boxes"][:2])
        assert (pa[..., 0] - pa[..., 2]).mean() > 10  # hot iron: red over blue
        assert np.abs(pb[..., 0] - pb[..., 2]).max() == 0
        # the stroke affine is oblique: the label still comes from it (axial: S/I)
        assert r["position_mm"][0] in ("S", "I")


def test_pairs_review_for_2d_folders(tmp_path: Path, harvard_dir: Path):
    """Two folders of 2D images: rows for a sample of pairs, named after the files."""
    names = sorted(p.name for p in (harvard_dir / "PET-MRI" / "PET").glob("*.png"))[:6]
    for mod in ("PET", "MRI"):
        (tmp_path / mod).mkdir()
        for n in names:
            shutil.copy(harvard_dir / "PET-MRI" / mod / n, tmp_path / mod / n)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "fuse",
            str(tmp_path / "PET"),
            str(tmp_path / "MRI"),
            "-o",
            str(out),
            "--method",
            "max",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert "review.png" in run["outputs"] and "review.png" in run["output_sha256"]
    layout = read_layout(out / "review.png")
    img = np.asarray(Image.open(out / "review.png").convert("RGB"))
    assert [r["name"] for r in layout["rows"]] == [names[i][:-4] for i in (0, 2, 3, 5)]
    for r in layout["rows"]:
        written = np.asarray(Image.open(out / "rgb" / f"{r['name']}.png").convert("L"))
        pf = _panel(img, r["boxes"][2])
        lum = pf @ [0.299, 0.587, 0.114]
        assert _corr(lum, _as_panel(written.astype(float), r["boxes"][2])) > 0.98
        src = np.asarray(Image.open(tmp_path / "PET" / f"{r['name']}.png").convert("RGB"))
        pa = _panel(img, r["boxes"][0])
        assert np.abs(pa.mean((0, 1)) - src.reshape(-1, 3).mean(0)).max() < 3  # colour kept


def test_choose_slices_and_position_on_the_phantom_grid(phantom_mr):
    """Rows spread through the overlap (not the empty end slices); mm from the affine."""
    from medfuse.fusion.review import choose_slices, slice_position
    from medfuse.transforms import ExtractSlices, Window

    sl = ExtractSlices("axial")(Window("mr")(phantom_mr))
    b = sl.as_tensor().numpy()[:, 0]
    a = b.copy()
    a[:30] = 0  # A covers only slices 30.. : the overlap starts there
    picks, best = choose_slices(a, b, a + b, rows=4)
    assert len(picks) == 4 and min(picks) >= 30 and best in picks
    assert best == 30 + int(np.argmax((a + b)[30:].reshape(len(b) - 30, -1).sum(1)))
    aff = np.asarray(sl.meta["slice_affine"])
    h, w = b.shape[1:]
    letters_mm = [slice_position(aff, (h, w), k) for k in (0, len(b) - 1)]
    z = [float((aff @ [(h - 1) / 2, (w - 1) / 2, k, 1])[2]) for k in (0, len(b) - 1)]
    for (letter, mm), zk in zip(letters_mm, z):
        assert letter == ("S" if zk >= 0 else "I") and mm == pytest.approx(abs(zk))
    assert abs(z[1] - z[0]) == pytest.approx(2.5 * (len(b) - 1), rel=1e-3)  # the MR's 2.5 mm step

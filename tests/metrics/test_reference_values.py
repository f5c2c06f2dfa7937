"""Every value computed by the reference implementations (VIFB in Octave, CDDFuse's Evaluator) on
the 18 triplets of ../shared/reference is reproduced by the matching medfuse profile."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medfuse.metrics import FusionMetrics

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"

#: CDDFuse's column names -> medfuse's (CDDFuse calls Sheikh-Bovik pixel VIF "VIFF").
CDDFUSE_NAMES = {"VIFF": "VIF"}


def _rows(name: str) -> list[dict[str, str]]:
    path = REFERENCE / name
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@functools.cache
def _load(task: str, pair: str, image: str) -> np.ndarray:
    return np.asarray(Image.open(REFERENCE / "triplets" / task / pair / f"{image}.png"))


@functools.cache
def _scores(profile: str, task: str, pair: str, fused: str) -> dict[str, float]:
    fm = FusionMetrics(profile=profile, metrics=list(FusionMetricsNames[profile]))
    return fm(_load(task, pair, fused), _load(task, pair, "A"), _load(task, pair, "B"))


VIFB_ROWS = _rows("vifb_reference.csv")
CDDFUSE_ROWS = _rows("cddfuse_reference.csv")
FusionMetricsNames = {
    "vifb": sorted({r["metric"] for r in VIFB_ROWS}),
    "cddfuse": sorted({CDDFUSE_NAMES.get(r["metric"], r["metric"]) for r in CDDFUSE_ROWS}),
}


def _id(r: dict[str, str]) -> str:
    return f"{r['task']}-{r['pair']}-{r['fused']}-{r['metric']}"


def _rtol(profile: str, row: dict[str, str]) -> float:
    if profile == "vifb" and row["metric"] == "Qcb" and row["task"] != "CT-MRI":
        return 1e-2  # FFT round-off on the black backgrounds of the PET/SPECT lumas (see README)
    return 1e-6


def test_reference_files_present():
    if not REFERENCE.is_dir():
        pytest.skip(f"reference folder not found: {REFERENCE}")
    assert len(VIFB_ROWS) == 18 * 13
    assert len(CDDFUSE_ROWS) == 18 * 12


@pytest.mark.parametrize("row", VIFB_ROWS, ids=_id)
def test_vifb_profile_reproduces_vifb(row):
    got = _scores("vifb", row["task"], row["pair"], row["fused"])[row["metric"]]
    assert got == pytest.approx(float(row["value"]), rel=_rtol("vifb", row))


@pytest.mark.parametrize("row", CDDFUSE_ROWS, ids=_id)
def test_cddfuse_profile_reproduces_cddfuse(row):
    name = CDDFUSE_NAMES.get(row["metric"], row["metric"])
    got = _scores("cddfuse", row["task"], row["pair"], row["fused"])[name]
    assert got == pytest.approx(float(row["value"]), rel=1e-6)


def test_profiles_differ_where_the_references_do():
    """Same names, different metrics: VIFB's PSNR ~55-60 dB vs CDDFuse's ~15 dB; SF/AG factors."""
    a, b, f = (_load("CT-MRI", "16003", n) for n in ("A", "B", "F_avg"))
    v = FusionMetrics("vifb", ["PSNR", "SF", "AG", "SSIM"])(f, a, b)
    c = FusionMetrics("cddfuse", ["PSNR", "SF", "AG", "SSIM"])(f, a, b)
    assert 50 < v["PSNR"] < 65 and 10 < c["PSNR"] < 25
    assert c["SF"] == pytest.approx(v["SF"] * np.sqrt(256 / 255), rel=1e-12)
    assert c["AG"] == pytest.approx(v["AG"] * (255 / 256) ** 2, rel=1e-12)
    assert v["SSIM"] != pytest.approx(c["SSIM"], rel=1e-3)

"""The shipped weights' quality record and the rule of ``--method auto`` (medfuse.nets.quality)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medfuse.nets.pretrained as pretrained
from medfuse.nets import get_network, save_weights
from medfuse.nets.pretrained import TASKS
from medfuse.nets.quality import (
    AUTO_METRICS,
    PAPER_METRICS,
    auto_method,
    beats_baselines,
    compare,
    read_quality,
)


def test_compare_follows_each_metrics_direction() -> None:
    model = {"MI": 3.0, "Qabf": 0.6, "Qcv": 100.0}
    paper = {"MI": 3.5, "Qabf": 0.6, "Qcv": 150.0}
    base = {"max": {"MI": 2.0, "Qabf": 0.7, "Qcv": 90.0},
            "average": {"MI": 2.5, "Qabf": 0.4, "Qcv": 900.0}}
    c = compare(model, paper, base, ["MI", "Qabf", "Qcv"])
    assert c["reaches_paper"] == ["Qabf", "Qcv"]  # equal counts as reached; Qcv is lower-is-better
    assert list(c["short_of_paper"]) == ["MI"]
    assert c["short_of_paper"]["MI"][2] == pytest.approx(-0.5 / 3.5)
    assert c["beats_all_baselines"] == ["MI"]
    assert c["lost_to"] == {"Qabf": ["max"], "Qcv": ["max"]}


def test_the_shipped_record_holds_what_auto_weighs() -> None:
    record = read_quality()
    assert record == json.loads((pretrained.WEIGHTS_DIR / "quality.json").read_text())
    for task in TASKS:
        paper = record["tasks"][task]["profiles"]["paper"]
        baselines = [k for k in paper if k not in PAPER_METRICS]
        assert {"average", "max", "laplacian"} <= set(baselines)
        for method in ("ecfusion", "s3imfusion", *baselines):
            assert set(AUTO_METRICS) <= set(paper[method]), (task, method)


def test_read_quality_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_quality(tmp_path / "quality.json") == {}


def _six(better: int) -> tuple[dict[str, float], dict[str, float]]:
    """A model and a baseline scored on the six metrics; the model is better on the first
    ``better`` of them (in the metrics' own directions: Qcv is lower-is-better)."""
    model, base = {}, {}
    for i, m in enumerate(AUTO_METRICS):
        good, bad = (10.0, 50.0) if m == "Qcv" else (0.9, 0.5)
        model[m], base[m] = (good, bad) if i < better else (bad, good)
    return model, base


@pytest.mark.parametrize("better,picked", [(6, True), (4, True), (3, False), (0, False)])
def test_a_network_must_beat_every_baseline_on_four_of_the_six(better: int, picked: bool) -> None:
    model, base = _six(better)
    assert beats_baselines(model, {"max": base, "average": base}) is picked
    other = {**base, "MI": model["MI"] + 1.0}  # a second baseline that also wins MI
    assert AUTO_METRICS[0] == "MI"
    assert beats_baselines(model, {"max": base, "other": other}) is (better - 1 >= 4)
    assert not beats_baselines(model, {})  # no baseline to beat: never trusted


@pytest.fixture
def weights_dir(tmp_path: Path, monkeypatch) -> Path:
    """An empty weights folder in place of the shipped one."""
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    return tmp_path


def _ship(weights_dir: Path, net: str, task: str) -> None:
    kwargs = ({"features": 4, "num_blocks": 2, "taps": [1, 2], "token_channels": [8, 4]}
              if net == "ecfusion" else {})
    save_weights(get_network(net, **kwargs), weights_dir / f"{net}-{task}.safetensors", net,
                 kwargs, task=task)


def _record(weights_dir: Path, task: str, scores: dict) -> None:
    record = {"tasks": {task: {"profiles": {"paper": scores}}}}
    (weights_dir / "quality.json").write_text(json.dumps(record))


def test_auto_method_takes_a_network_only_above_the_baselines(weights_dir: Path) -> None:
    assert auto_method("ct-mri") == "laplacian"  # no quality record
    _ship(weights_dir, "ecfusion", "ct-mri")
    model, base = _six(4)  # the baseline wins two of the six: 4 of 6 is enough
    _record(weights_dir, "ct-mri", {"ecfusion": model, "max": base})
    assert auto_method("ct-mri") == "ecfusion"
    assert auto_method("pet-mri") == "laplacian"  # no record for the task
    assert auto_method(None) == "laplacian"
    model, base = _six(3)
    _record(weights_dir, "ct-mri", {"ecfusion": model, "max": base})
    assert auto_method("ct-mri") == "laplacian"


def test_auto_method_weighs_s3imfusion_on_the_six_and_needs_its_weights(weights_dir: Path) -> None:
    model, base = _six(4)
    # S3IMFusion's own table metrics (EN, AG, SF, PSNR, SCD) all lost: the six decide
    s3im = {**model, **{m: 0.0 for m in PAPER_METRICS["s3imfusion"] if m not in AUTO_METRICS}}
    base = {**base, **{m: 100.0 for m in PAPER_METRICS["s3imfusion"] if m not in AUTO_METRICS}}
    weak, _ = _six(2)
    scores = {"ecfusion": weak, "s3imfusion": s3im, "max": base}
    _record(weights_dir, "spect-mri", scores)
    assert auto_method("spect-mri") == "laplacian"  # no S3IMFusion weights file
    _ship(weights_dir, "s3imfusion", "spect-mri")
    assert auto_method("spect-mri") == "s3imfusion"
    # both qualify: ECFusion is tried first
    _ship(weights_dir, "ecfusion", "spect-mri")
    _record(weights_dir, "spect-mri", {**scores, "ecfusion": model})
    assert auto_method("spect-mri") == "ecfusion"
    # a record passed in is used instead of the file
    assert auto_method("spect-mri", quality={}) == "laplacian"

"""Shipping a training run: its recipe read back, the background level, the ship-or-not rule.

``scripts/ship_run.py`` scores a run against the shipped weights (``bench_quality.py
--against-shipped``) and ships it through ``scripts/ship_weights.py`` only when :func:`verdict`
says it is better; these tests check the parts on real data and the committed records.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medfuse.engines.recipes import load_config
from medfuse.nets.pretrained import WEIGHTS_DIR

REPO = Path(__file__).resolve().parents[2]
for folder in ("scripts", "benchmarks"):
    sys.path.insert(0, str(REPO / folder))

import bench_quality  # noqa: E402
import ship_run  # noqa: E402
import ship_weights  # noqa: E402


def _run_with(tmp_path: Path, *configs: str) -> Path:
    """A run folder whose ``config.json`` is ``configs`` merged as ``medfuse train`` merges them."""
    run = tmp_path / "run"
    run.mkdir()
    parser = load_config([REPO / c for c in configs])
    (run / "config.json").write_text(json.dumps(parser.get(), indent=1, default=str))
    return run


@pytest.mark.parametrize("configs,net,expected", [
    (("pipelines/s3imfusion_ct-mri.json",), "s3imfusion", []),
    (("pipelines/s3imfusion_pet-mri.json", "pipelines/cpu_reduced_s3imfusion.json"), "s3imfusion",
     ["pipelines/cpu_reduced_s3imfusion.json"]),
    (("pipelines/ecfusion_ct-mri.json", "pipelines/cpu_reduced_ecfusion.json"), "ecfusion",
     ["pipelines/cpu_reduced_ecfusion.json"]),
    (("pipelines/ecfusion_spect-mri.json", "pipelines/cpu_reduced_ecfusion.json",
      "pipelines/cpu_reduced_ecfusion_randpatch.json"), "ecfusion",
     ["pipelines/cpu_reduced_ecfusion.json", "pipelines/cpu_reduced_ecfusion_randpatch.json"]),
    (("pipelines/ecfusion_pet-mri.json", "pipelines/cpu_reduced_ecfusion.json",
      "pipelines/cpu_reduced_ecfusion_randpatch.json", "pipelines/ecfusion_black_background.json",
      "pipelines/ecfusion_identity_output.json"), "ecfusion",
     ["pipelines/cpu_reduced_ecfusion.json", "pipelines/cpu_reduced_ecfusion_randpatch.json",
      "pipelines/ecfusion_black_background.json", "pipelines/ecfusion_identity_output.json"]),
])
def test_the_card_names_the_overlays_the_run_used(tmp_path, configs, net, expected) -> None:
    assert ship_weights.overlays(_run_with(tmp_path, *configs), net) == expected


def test_settings_set_on_the_command_line_reach_the_reproduce_command(tmp_path) -> None:
    """A run started with ``optimizer#lr=0.0001`` beside its overlays (the ECFusion PET-MRI
    fine-tune): the card's command sets it too (it was left out), run-only settings (threads,
    epochs, checkpoints) are not listed, and a run without such settings lists none."""
    extra = ["pipelines/cpu_reduced_ecfusion.json", "pipelines/cpu_reduced_ecfusion_randpatch.json",
             "pipelines/ecfusion_black_background.json"]
    run = _run_with(tmp_path, "pipelines/ecfusion_pet-mri.json", *extra)
    config = json.loads((run / "config.json").read_text())
    config["optimizer"]["lr"] = 0.0001
    config["trainer"].update(threads=1, max_epochs=10, checkpoint_every_n_iterations=10)
    (run / "config.json").write_text(json.dumps(config))
    assert ship_weights.overlays(run, "ecfusion") == extra
    assert ship_weights.changed_settings(run, "ecfusion", "pet-mri", extra) == [
        ("optimizer#lr", 0.001, 0.0001)]
    words = ship_weights.command_overrides(run, "ecfusion", "pet-mri", extra)
    text = ship_weights.reproduce("ecfusion", "pet-mri", 10, extra, words)
    assert "'optimizer#lr=0.0001'" in text and "trainer#max_epochs=10" in text
    assert "threads" not in text
    committed = REPO / "training_runs" / "ecfusion_spect-mri_cpu_ft2"
    assert ship_weights.changed_settings(
        committed, "ecfusion", "spect-mri", ship_weights.overlays(committed, "ecfusion")) == []


def test_the_committed_full_recipe_run_gets_the_full_recipe_card_text() -> None:
    run = REPO / "training_runs" / "s3imfusion_ct-mri"
    assert ship_weights.overlays(run, "s3imfusion") == []
    summary = json.loads((run / "summary.json").read_text())
    text = ship_weights.deviations(summary, reduced=False)
    assert "full recipe, trained on a CPU" in text and "reduced recipe" not in text
    assert "100 of 100 epochs" in text and "best epoch (89)" in text
    assert 'reduction="paper"' in text and "`baseline_score`" in text


def test_background_level_is_the_fused_grey_where_both_sources_are_black(tmp_path,
                                                                         harvard_dir) -> None:
    """A fused image = MRI + 7 grey levels has a background of exactly 7."""
    names = sorted(p.name for p in (harvard_dir / "CT-MRI" / "CT").glob("*.png"))[:2]
    fa, fb, fused = (tmp_path / d for d in ("CT", "MRI", "fused"))
    black = 0
    for folder, src in ((fa, "CT"), (fb, "MRI")):
        folder.mkdir()
        for n in names:
            shutil.copy(harvard_dir / "CT-MRI" / src / n, folder / n)
    fused.mkdir()
    for n in names:
        a = np.asarray(Image.open(fa / n).convert("L"))
        b = np.asarray(Image.open(fb / n).convert("L"))
        black += int(((a == 0) & (b == 0)).sum())
        Image.fromarray(np.clip(b.astype(int) + 7, 0, 255).astype(np.uint8)).save(fused / n)
    assert black > 1000  # the real pairs have a black surround
    assert bench_quality.background_level(fa, fb, fused) == pytest.approx(7.0)


def _scored(task: str = "ct-mri", net: str = "s3imfusion") -> dict:
    """A ``--against-shipped`` record from the committed figures: the new run = the shipped one."""
    q = copy.deepcopy(json.loads((WEIGHTS_DIR / "quality.json").read_text())["tasks"][task])
    q["background"] = {net: 0.2}
    q["shipped"] = {"weights": {net: "old.safetensors"}, "background": {net: 0.2},
                    "profiles": {"paper": {net: dict(q["profiles"]["paper"][net])}}}
    return q


def _nudge(scores: dict, metrics, better: bool) -> None:
    from medfuse.metrics.profiles import higher_is_better

    for m in metrics:
        up = higher_is_better(m) == better
        scores[m] = scores[m] * (1.01 if up else 0.99)


def test_equal_figures_do_not_ship_and_a_majority_of_wins_does() -> None:
    net = "s3imfusion"
    q = _scored()
    ok, reasons = ship_run.verdict(net, q)
    assert not ok and reasons[0].startswith("FAIL") and "0 of 11" in reasons[0]
    new = q["profiles"]["paper"][net]
    _nudge(new, ship_run.METRICS[:6], better=True)   # MI Qabf VIF SSIM Qcb Qcv: 6 of 11
    _nudge(new, ship_run.METRICS[6:], better=False)
    ok, reasons = ship_run.verdict(net, q)
    assert ok, reasons
    _nudge(new, ship_run.METRICS[5:6], better=False)  # undo Qcv's win: 5 of 11
    _nudge(new, ship_run.METRICS[5:6], better=False)
    assert not ship_run.verdict(net, q)[0]


def test_a_brighter_background_or_lost_auto_ground_blocks_shipping() -> None:
    net = "s3imfusion"
    q = _scored()
    _nudge(q["profiles"]["paper"][net], ship_run.METRICS, better=True)
    assert ship_run.verdict(net, q)[0]
    q["background"][net] = 0.2 + ship_run.BACKGROUND_TOLERANCE + 0.01
    ok, reasons = ship_run.verdict(net, q)
    assert not ok and reasons[1].startswith("FAIL background")
    q = _scored()
    _nudge(q["profiles"]["paper"][net], ship_run.METRICS, better=True)
    old = q["shipped"]["profiles"]["paper"][net]
    old["Qabf"] = 2.0  # the shipped weights beat every baseline on Qabf; the new ones do not
    q["profiles"]["paper"][net]["Qabf"] = 0.0
    ok, reasons = ship_run.verdict(net, q)
    assert not ok and reasons[2].startswith("FAIL")


def test_the_replaced_weights_figures_stay_out_of_quality_json() -> None:
    old = json.loads((WEIGHTS_DIR / "quality.json").read_text())
    new = {"split": old["split"], "tasks": {"ct-mri": _scored()}}
    new["tasks"]["ct-mri"]["fuse_time_s"] = {"s3imfusion": 1.0}
    merged = ship_weights.merge_quality(copy.deepcopy(old), new)
    task = merged["tasks"]["ct-mri"]
    assert "shipped" not in task
    assert task["background"]["s3imfusion"] == 0.2
    assert task["fuse_time_s"]["ecfusion"] == old["tasks"]["ct-mri"]["fuse_time_s"]["ecfusion"]

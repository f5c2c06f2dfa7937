"""Engine parts on real pairs: the validation metric, the batch contract, the CSV log, the card."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from medfuse.engines.card import PAPER_TARGETS, render_model_card
from medfuse.engines.checkpoint import GeneratorStates, Record
from medfuse.engines.data import harvard_datalist, load_transforms
from medfuse.engines.metrics_log import MetricsLog
from medfuse.engines.trainer import FusionQuality, amp_dtype, prepare_fusion_batch
from medfuse.losses import S3IMFusionLoss
from medfuse.metrics import FusionMetrics

REPO = Path(__file__).resolve().parents[2]
SPLIT = REPO / "pipelines" / "splits" / "harvard_val10.json"


@pytest.fixture(scope="module")
def val_batch(harvard_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    items = [load_transforms()(p)
             for p in harvard_datalist(harvard_dir, "spect-mri", "val", split_file=SPLIT, limit=2)]
    return torch.stack([d["a"] for d in items]), torch.stack([d["b"] for d in items])


def test_fusion_quality_is_the_mean_of_fusion_metrics(val_batch) -> None:
    a, b = val_batch
    fused = torch.maximum(a, b)
    q = FusionQuality(profile="vifb", metrics=["Qabf", "SSIM", "MI"])
    q.reset()
    q.update((fused, a, b, torch.tensor(0.5)))
    out = q.compute()
    rows = FusionMetrics("vifb", ["Qabf", "SSIM", "MI"]).score_batch(fused, a, b,
                                                                      value_range=(-1, 1))
    for m in ("Qabf", "SSIM", "MI"):
        assert out[m] == pytest.approx(sum(r[m] for r in rows) / 2, rel=1e-12)
    assert out["val_loss"] == pytest.approx(0.5)


def test_batch_contract_and_amp_settings(val_batch) -> None:
    a, b = val_batch
    x, y = prepare_fusion_batch({"a": a, "b": b, "name": ["x", "y"]}, "cpu")
    assert x.shape == (2, 1, 256, 256) and x.dtype == torch.float32 and torch.equal(y, b)
    with pytest.raises(ValueError, match="'a' and 'b'"):
        prepare_fusion_batch({"image": a}, "cpu")
    for setting in (True, "auto", "bf16", "fp16", "off", None):
        assert amp_dtype(setting, "cpu") is None  # never on the CPU


def test_metrics_log_keeps_earlier_rows_on_resume(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, ["Qabf"], tensorboard=False)
    for e in (1, 2, 3):
        log.log({"epoch": e, "iteration": 10 * e, "train_loss": 1.0 / e, "lr": 1e-3,
                 "epoch_time_s": 1.0, "Qabf": 0.1 * e})
    resumed = MetricsLog(tmp_path, ["Qabf"], resume_epoch=2, tensorboard=False)  # epoch 3 is redone
    resumed.log({"epoch": 3, "iteration": 30, "train_loss": 0.3, "lr": 1e-3, "epoch_time_s": 1.0})
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[1]["train_loss"]) == 0.5 and rows[2]["Qabf"] == ""


def test_loss_generators_are_checkpointed(val_batch) -> None:
    a, b = val_batch
    loss = S3IMFusionLoss(seed=5)
    states = GeneratorStates(loss)
    saved = states.state_dict()
    assert list(saved) == ["sim.generator"]
    first = loss(torch.maximum(a, b), a, b)
    states.load_state_dict(saved)
    assert torch.equal(loss(torch.maximum(a, b), a, b), first)
    assert Record("ecfusion").state_dict() == "ecfusion"


def test_model_card_renders_run_and_paper_rows() -> None:
    summary = {"name": "ecfusion_ct-mri", "network": "ecfusion", "task": "ct-mri",
               "network_kwargs": {}, "seed": 0, "epochs": 50, "max_epochs": 50, "iterations": 16200,
               "batch_size": 4, "world_size": 1, "train_items": 1296, "validation_items": 16,
               "amp": "bfloat16", "wall_time_s": 3600.0, "train_time_s": 3000.0,
               "seconds_per_iteration": 0.18,
               "hardware": {"gpu": "NVIDIA H200", "torch": "2.13.0", "monai": "1.6.1",
                            "ignite": "0.5.5"},
               "validation": {"profile": "vifb", "key_metric": "Qabf",
                              "metrics": ["val_loss", "MI", "Qabf"], "best_epoch": 41,
                              "best": {"val_loss": 0.2, "MI": 2.5, "Qabf": 0.61}},
               "files": {"weights": "ecfusion-ct-mri.safetensors", "weights_sha256": "ab" * 32}}
    card = render_model_card(summary, notes=["Test split: see medfuse evaluate."])
    assert card.startswith("# ecfusion - ct-mri\n")
    assert "| this run (validation) | 0.2 | 2.5 | 0.61 |" in card
    assert (f"| paper (its test set) |  | {PAPER_TARGETS['ecfusion']['ct-mri']['MI']:.4g} "
            f"| 0.6497 |") in card
    assert "NVIDIA H200" in card and "Best epoch 41 by `Qabf`" in card and "Test split" in card
    assert "harvard_val10.json" in card and card.endswith("\n")


def test_model_card_says_whether_auto_picks_the_network() -> None:
    from medfuse.engines.card import quality_section
    from medfuse.nets.quality import AUTO_METRICS

    base = {m: (50.0 if m == "Qcv" else 0.5) for m in AUTO_METRICS}
    model = {m: (10.0 if m == "Qcv" else 0.9) for m in AUTO_METRICS}  # better on all six
    for lost, picked in ((("MI", "Qcv"), "picks"), (("MI", "Qcv", "SSIM"), "does not pick")):
        scores = {"ecfusion": {**model, **{m: base[m] for m in lost}}, "max": base}
        lines = quality_section("ecfusion", "ct-mri", {"pairs": 2, "profiles": {"paper": scores}})
        auto = [line for line in lines if "--method auto" in line]
        assert auto == [f"- `medfuse fuse --method auto` {picked} it: it beats every baseline on "
                        f"{6 - len(lost)} of MI, Qabf, VIF, SSIM, Qcb, Qcv (needs 4)."]
        assert (f"- Beats every classical baseline on {6 - len(lost)} of 6 metrics"
                in "\n".join(lines))

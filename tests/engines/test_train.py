"""End-to-end training of the real networks on a handful of real Harvard pairs, at small size.

Each config trains 2 epochs straight (run A), and 1 epoch then a resume to 2 (run B): the loss
falls, checkpoints round-trip bit for bit, the resumed run repeats run A exactly, and the exported
safetensors rebuild the network.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from medfuse.engines.checkpoint import RNGState, find_last_checkpoint, load_checkpoint
from medfuse.engines.recipes import load_config
from medfuse.engines.workflow import run_training
from medfuse.nets import load_weights

REPO = Path(__file__).resolve().parents[2]

#: small and fast on 2 CPU cores: 64x64 training inputs, one whole 256x256 validation pair.
SMALL = ["val_limit=1", "input_size=64", "trainer#num_workers=0", "trainer#amp=off",
         'validation#metrics=["Qabf","SSIM"]', "device=cpu"]
NETS = {
    # ECFusion without its VGG19 perceptual term (ImageNet weights are not available offline);
    # one pair = 9 patches, batch 4: 3 steps per epoch, the last one a partial batch
    "ecfusion": ["loss#lam=0", "train_limit=1", "trainer#batch_size=4"],
    # S3IMFusion with its own loss; 4 whole pairs, batch 2: 2 steps per epoch
    "s3imfusion": ["train_limit=4", "trainer#batch_size=2"],
}


def _config(net: str, epochs: int, harvard_dir: Path):
    return load_config([REPO / "pipelines" / f"{net}_ct-mri.json"],
                       [*SMALL, *NETS[net], f"trainer#max_epochs={epochs}",
                        f"data_root={json.dumps(str(harvard_dir))}"])


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module", params=sorted(NETS))
def runs(request, harvard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    net = request.param
    root = tmp_path_factory.mktemp(net)
    a = run_training(_config(net, 2, harvard_dir), output_dir=root / "A", progress=False)
    b1 = run_training(_config(net, 1, harvard_dir), output_dir=root / "B", progress=False)
    b2 = run_training(_config(net, 2, harvard_dir), output_dir=root / "B", resume="auto",
                      progress=False)
    return {"net": net, "A": root / "A", "B": root / "B", "summary_a": a, "summary_b1": b1,
            "summary_b2": b2}


@pytest.mark.slow
def test_loss_falls_and_run_folder_is_complete(runs: dict) -> None:
    rows = _rows(runs["A"])
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    for r in rows:
        assert 0.0 < float(r["Qabf"]) <= 1.0 and r["val_loss"] != ""
    names = {p.name for p in runs["A"].iterdir()}
    assert {"config.json", "split.json", "metrics.csv", "summary.json", "model_card.md",
            f"{runs['net']}-ct-mri.safetensors", "last_checkpoint_2.pt"} <= names
    assert len([n for n in names if n.startswith("best_checkpoint_")]) == 1
    assert len([n for n in names if n.startswith("last_checkpoint_")]) == 1
    s = json.loads((runs["A"] / "summary.json").read_text())
    assert s == runs["summary_a"]
    assert s["network"] == runs["net"] and s["epochs"] == 2 and s["completed"] is True
    assert s["train_items"] == (9 if runs["net"] == "ecfusion" else 4)
    assert s["validation"]["key_metric"] == "baseline_score"
    assert set(s["validation"]["best"]) >= {"Qabf", "SSIM", "baseline_score", "val_background"}
    assert set(s["validation"]["baselines"]) == {"average", "max", "laplacian", "dwt",
                                                 "guided-filter"}
    assert s["hardware"]["device"] == "cpu" and s["wall_time_s"] > 0
    split = json.loads((runs["A"] / "split.json").read_text())
    assert split["validation"] == ["20007"]  # the first of the committed CT-MRI split
    card = (runs["A"] / "model_card.md").read_text()
    assert (f"# {runs['net']} - ct-mri" in card and "Qabf" in card
            and s["files"]["weights_sha256"] in card)


@pytest.mark.slow
def test_checkpoint_round_trips_bit_exactly(runs: dict, harvard_dir: Path) -> None:
    ckpt = load_checkpoint(runs["A"] / "last_checkpoint_2.pt")
    assert {"model", "optimizer", "trainer", "rng", "loss_rng", "checkpointer",
            "best_checkpointer"} <= set(ckpt)
    assert (ckpt["trainer"]["iteration"] == runs["summary_a"]["iterations"]
            == 2 * ckpt["trainer"]["epoch_length"])
    fresh = _config(runs["net"], 2, harvard_dir).get_parsed_content("network_def")
    fresh.load_state_dict(ckpt["model"])
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k
    # the optimiser state too
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    opt.load_state_dict(ckpt["optimizer"])
    again = opt.state_dict()
    for pid, st in ckpt["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(again["state"][pid][k], v)
    # RNG states restore exactly
    rng = RNGState()
    saved = rng.state_dict()
    x = (torch.rand(3), random.random(), np.random.rand())
    rng.load_state_dict(saved)
    y = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(x[0], y[0]) and x[1:] == y[1:]


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_run(runs: dict) -> None:
    assert runs["summary_b1"]["epochs"] == 1 and runs["summary_b2"]["resumed_from_epoch"] == 1
    assert find_last_checkpoint(runs["B"]).name == "last_checkpoint_2.pt"
    # the resumed checkpointer kept n_saved=1
    assert not (runs["B"] / "last_checkpoint_1.pt").exists()
    a = load_checkpoint(runs["A"] / "last_checkpoint_2.pt")
    b = load_checkpoint(runs["B"] / "last_checkpoint_2.pt")
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    ra, rb = _rows(runs["A"]), _rows(runs["B"])
    assert [int(r["epoch"]) for r in rb] == [1, 2]
    # the resumed summary's total covers both sessions' epochs, not only the last session's
    b2 = runs["summary_b2"]
    assert b2["epoch_time_total_s"] == pytest.approx(
        sum(float(r["epoch_time_s"]) for r in rb), abs=0.06)
    assert b2["epoch_time_total_s"] > b2["mean_epoch_time_s"]  # this session trained one epoch
    for x, y in zip(ra, rb):
        for col in ("train_loss", "val_loss", "Qabf", "SSIM"):
            assert x[col] == y[col], col
    # the exported weights hold the same tensors and metadata (safetensors orders metadata freely)
    from safetensors import safe_open

    opened = []
    for run in (runs["A"], runs["B"]):
        with safe_open(str(run / runs["summary_a"]["files"]["weights"]), framework="pt") as f:
            opened.append((f.metadata(), {k: f.get_tensor(k) for k in f.keys()}))
    assert opened[0][0] == opened[1][0]
    assert opened[0][1].keys() == opened[1][1].keys()
    assert all(torch.equal(v, opened[1][1][k]) for k, v in opened[0][1].items())


@pytest.mark.slow
def test_exported_weights_rebuild_the_best_model(runs: dict) -> None:
    s = runs["summary_a"]
    net_st = load_weights(runs["A"] / s["files"]["weights"])
    net_pt = load_weights(runs["A"] / s["files"]["best_checkpoint"])
    best = load_checkpoint(runs["A"] / s["files"]["best_checkpoint"])
    for k, v in net_st.state_dict().items():
        assert torch.equal(v, best["model"][k]), k
    assert best["network"] == runs["net"] and best["task"] == "ct-mri"
    from safetensors import safe_open

    with safe_open(str(runs["A"] / s["files"]["weights"]), framework="pt") as f:
        meta = f.metadata()
    assert meta["network"] == runs["net"] and meta["task"] == "ct-mri"
    assert json.loads(meta["val_metrics"]) == s["validation"]["best"]
    a = torch.rand(1, 1, 64, 64) * 2 - 1
    b = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net_st(a, b), net_pt(a, b))

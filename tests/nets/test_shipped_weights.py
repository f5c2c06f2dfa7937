"""The six shipped checkpoints: they load safely by name, fuse a real pair, and match their cards.

``medfuse/weights/quality.json`` is the output of ``benchmarks/bench_quality.py`` from which the
model cards' quality tables were rendered; the slow test recomputes the model rows from scratch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medfuse.engines.card import PAPER_METRICS, _fmt
from medfuse.engines.data import load_split
from medfuse.nets import load_pretrained
from medfuse.nets.pretrained import TASKS, WEIGHTS_DIR, pretrained_path, read_weights, sha256

REPO = Path(__file__).resolve().parents[2]
SPLIT = REPO / "pipelines" / "splits" / "harvard_val10.json"
SHIPPED = [(net, task) for net in ("ecfusion", "s3imfusion") for task in TASKS]
FOLDER = {"ct-mri": ("CT-MRI", "CT"), "pet-mri": ("PET-MRI", "PET"),
          "spect-mri": ("SPECT-MRI", "SPECT")}


def _quality() -> dict:
    return json.loads((WEIGHTS_DIR / "quality.json").read_text())


def _metadata(path: Path) -> dict:
    return read_weights(path)[1]


def _val_pair(harvard_dir: Path, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first validation pair of ``task`` as ``(1, 1, 256, 256)`` luma tensors in [0, 1]."""
    from medfuse.fusion.folders import read_image
    from medfuse.transforms.colour import rgb_to_ycbcr

    folder, mod = FOLDER[task]
    name = sorted(load_split(SPLIT, task))[0]
    out = []
    for m in (mod, "MRI"):
        x = torch.from_numpy(read_image(harvard_dir / folder / m / f"{name}.png").astype(np.float32)
                             / 255.0)
        x = rgb_to_ycbcr(x.permute(2, 0, 1))[:1] if x.ndim == 3 else x[None]
        out.append(x[None].contiguous())
    return out[0], out[1]


@pytest.mark.parametrize("net,task", SHIPPED)
def test_shipped_checkpoint_loads_by_name_and_fuses_a_real_pair(net: str, task: str,
                                                                harvard_dir: Path) -> None:
    from medfuse.fusion.base import get_method
    from medfuse.fusion.slices import fuse_slices
    from medfuse.metrics import FusionMetrics

    path = pretrained_path(net, task)
    assert path.is_file(), f"{path} is not shipped"
    assert path.stat().st_size < 8 * 2**20
    meta = _metadata(path)
    assert meta["network"] == net and meta["task"] == task
    model = load_pretrained(net, task=task)
    assert not model.training and all(torch.isfinite(p).all() for p in model.parameters())

    a, b = _val_pair(harvard_dir, task)
    fused = fuse_slices(get_method(net, task=task, device="cpu"), a, b, batch_size=1)
    average = fuse_slices(get_method("average"), a, b, batch_size=1)
    assert fused.shape == a.shape and torch.isfinite(fused).all()
    assert 0.0 <= float(fused.min()) and float(fused.max()) <= 1.0 and float(fused.std()) > 0.05
    fm = FusionMetrics(profile="vifb", metrics=["Qabf", "MI"])
    to8 = lambda t: np.round(t[0, 0].numpy() * 255.0)  # noqa: E731 - scored as saved PNGs
    ours, avg = fm(to8(fused), to8(a), to8(b)), fm(to8(average), to8(a), to8(b))
    # a trained fusion keeps more of the sources' edges than the pixel average does
    assert ours["Qabf"] > avg["Qabf"], (ours, avg)
    assert ours["MI"] > 0.5


@pytest.mark.parametrize("net,task", SHIPPED)
def test_model_card_matches_its_weights_and_quality_table(net: str, task: str) -> None:
    path = pretrained_path(net, task)
    card = path.with_suffix(".md").read_text()
    assert card.startswith(f"# {net} - {task}\n")
    assert sha256(path) in card, "the card names another weights file"
    q = _quality()["tasks"][task]
    # the scored file is the shipped one, named relative to the repository (an absolute path from
    # the machine that scored it once stood here for ECFusion SPECT-MRI)
    assert q["weights"][net] == f"medfuse/weights/{path.name}"
    model_row = q["profiles"]["paper"][net]
    for m in PAPER_METRICS[net]:
        assert m in model_row
    row = next(line for line in card.splitlines() if line.startswith(f"| **{net} (this model)** |"))
    assert row == "| " + " | ".join([f"**{net} (this model)**",
                                     *[_fmt(model_row[m]) for m in PAPER_METRICS[net]]]) + " |"
    assert "## Quality on the validation split" in card and "Deviations from the paper" in card


@pytest.mark.slow
@pytest.mark.parametrize("net", ["ecfusion", "s3imfusion"])
def test_validation_figures_in_the_cards_reproduce(net: str, tmp_path: Path) -> None:
    """``medfuse fuse`` + ``medfuse evaluate`` on the validation split give the cards' figures."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_quality

    q = _quality()
    for task in TASKS:
        got = bench_quality.run_task(task, {net: str(pretrained_path(net, task))}, tmp_path / task,
                                     baselines=())
        want = q["tasks"][task]
        assert got["pairs"] == want["pairs"]
        for profile in ("paper", "vifb"):
            for m in PAPER_METRICS[net]:
                w, g = want["profiles"][profile][net][m], got["profiles"][profile][net][m]
                assert g == pytest.approx(w, rel=2e-3, abs=1e-4), (task, profile, m)

"""Training data recipes on the real Harvard pairs: split, luma, grid patches, square masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medfuse.engines.data import (
    PatchCropd,
    PatchGridDataset,
    RandSquareMaskd,
    ToLumad,
    grid_starts,
    harvard_datalist,
    harvard_pairs,
    load_transforms,
    patch_transforms,
    validation_split,
    write_split,
)
from medfuse.engines.recipes import PAPER_RECIPES
from medfuse.errors import InputError
from medfuse.metrics import to_luma

REPO = Path(__file__).resolve().parents[2]
SPLIT = REPO / "pipelines" / "splits" / "harvard_val10.json"


def test_pair_counts_match_the_papers(harvard_dir: Path) -> None:
    counts = {t: len(harvard_pairs(harvard_dir, t)) for t in ("ct-mri", "pet-mri", "spect-mri")}
    assert counts == {"ct-mri": 160, "pet-mri": 245, "spect-mri": 333}
    # ECFusion: 9 patches per pair give the paper's 1440 / 2205 / 2997 training patch pairs
    for task, n in counts.items():
        assert (len(PatchGridDataset(list(range(n))))
                == PAPER_RECIPES["ecfusion"]["patch_pairs"][task])


def test_committed_split_is_the_rule_and_disjoint(harvard_dir: Path, tmp_path: Path) -> None:
    fresh = write_split(harvard_dir, tmp_path / "split.json", fraction=0.1, seed=0)
    assert json.loads(SPLIT.read_text()) == json.loads(json.dumps(fresh))
    for task, (n_train, n_val) in {"ct-mri": (144, 16), "pet-mri": (220, 25),
                                   "spect-mri": (300, 33)}.items():
        train = harvard_datalist(harvard_dir, task, "train", split_file=SPLIT)
        val = harvard_datalist(harvard_dir, task, "val", split_file=SPLIT)
        assert (len(train), len(val)) == (n_train, n_val)
        assert not {d["name"] for d in train} & {d["name"] for d in val}
        # the rule without the file gives the same split
        assert val == harvard_datalist(harvard_dir, task, "val", val_fraction=0.1, split_seed=0)


def test_split_depends_on_names_only() -> None:
    names = [f"{i:05d}" for i in range(50)]
    held = validation_split(names, 0.1, seed=3)
    assert len(held) == 5
    assert validation_split(list(reversed(names)), 0.1, seed=3) == held
    assert validation_split(names, 0.1, seed=4) != held
    assert validation_split(names, 0.0) == []


def test_missing_data_is_a_one_line_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data folder not found"):
        harvard_pairs(tmp_path, "ct-mri")
    with pytest.raises(InputError, match="unknown task"):
        harvard_pairs(tmp_path, "xray-mri")


def test_luma_is_bt601_of_the_rgb_pet(harvard_dir: Path) -> None:
    pair = harvard_datalist(harvard_dir, "pet-mri", "val", split_file=SPLIT)[0]
    d = load_transforms()(pair)
    rgb = np.asarray(Image.open(pair["a"]).convert("RGB"), dtype=np.float64)
    expected = to_luma(rgb) / 127.5 - 1.0
    assert d["a"].shape == d["b"].shape == (1, 256, 256)
    assert d["a"].dtype == torch.float32 and type(d["a"]) is torch.Tensor
    np.testing.assert_allclose(d["a"][0].numpy(), expected, atol=1e-5)
    # MRI (grey) keeps its orientation: row-major as in the PNG, no transposition
    mri = np.asarray(Image.open(pair["b"]), dtype=np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(d["b"][0].numpy(), mri, atol=1e-6)
    assert float(d["a"].min()) >= -1.0 and float(d["a"].max()) <= 1.0


def test_to_luma_rejects_two_channels() -> None:
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        ToLumad("a")({"a": torch.zeros(2, 4, 4)})


def test_grid_patches_cover_the_image_as_the_paper_says(harvard_dir: Path) -> None:
    starts = grid_starts(256, 128, 64)
    assert starts == [(y, x) for y in (0, 64, 128) for x in (0, 64, 128)]
    pairs = harvard_datalist(harvard_dir, "ct-mri", "train", split_file=SPLIT, limit=2)
    loaded = [load_transforms()(p) for p in pairs]
    ds = PatchGridDataset(loaded, transform=PatchCropd(("a", "b"), 128))
    assert len(ds) == 18
    for i in (0, 4, 8, 13):
        item = ds[i]
        y, x = starts[i % 9]
        assert item["start"] == [y, x] and item["name"] == pairs[i // 9]["name"]
        assert torch.equal(item["a"], loaded[i // 9]["a"][:, y:y + 128, x:x + 128])
        assert torch.equal(item["b"], loaded[i // 9]["b"][:, y:y + 128, x:x + 128])
    with pytest.raises(IndexError):
        ds[18]


def test_ecfusion_patch_chain_shapes_and_upsampling(harvard_dir: Path) -> None:
    pair = load_transforms()(harvard_datalist(harvard_dir, "spect-mri", "train", split_file=SPLIT,
                                              limit=1)[0])
    tf = patch_transforms(patch_size=128, input_size=256, mask_prob=0.0)
    out = tf({**pair, "start": [64, 0]})
    assert out["a"].shape == (1, 256, 256) and out["a"].dtype == torch.float32
    # nearest-neighbour 2x: every 2x2 block repeats one source pixel
    patch = pair["a"][:, 64:192, 0:128]
    assert torch.equal(out["a"], patch.repeat_interleave(2, -2).repeat_interleave(2, -1))
    # input_size=128 skips the upsampling
    out128 = patch_transforms(128, 128, mask_prob=0.0)({**pair, "start": [64, 0]})
    assert torch.equal(out128["a"], patch)


def _masked(img: torch.Tensor, ref: torch.Tensor) -> tuple[int, set[float]]:
    diff = img != ref
    return int(diff.sum()), {float(v) for v in img[diff].unique()}


def test_square_mask_is_seeded_white_or_black_and_about_half(harvard_dir: Path) -> None:
    pair = load_transforms()(harvard_datalist(harvard_dir, "ct-mri", "train", split_file=SPLIT,
                                              limit=1)[0])
    item = {"a": pair["a"][:, 64:192, 64:192], "b": pair["b"][:, 64:192, 64:192]}
    mask = RandSquareMaskd(("a", "b"), prob=0.5, size=64)
    mask.set_random_state(seed=7)
    first = [mask(item) for _ in range(200)]
    mask.set_random_state(seed=7)
    again = [mask(item) for _ in range(200)]
    assert all(torch.equal(x["a"], y["a"]) and torch.equal(x["b"], y["b"])
               for x, y in zip(first, again))
    hits = {"a": 0, "b": 0}
    both = 0
    for out in first:
        masked = {}
        for k in ("a", "b"):
            sq = (out[k] != item[k]).squeeze(0)
            masked[k] = bool(sq.any())
            if masked[k]:
                rows, cols = sq.any(1).nonzero(), sq.any(0).nonzero()
                # one square
                assert int(rows.max() - rows.min()) < 64 and int(cols.max() - cols.min()) < 64
                assert {float(v) for v in out[k][out[k] != item[k]].unique()} <= {-1.0, 1.0}
                hits[k] += 1
        both += masked["a"] and masked["b"]
    # independent per source: each about half the time, both about a quarter
    assert 70 < hits["a"] < 130 and 70 < hits["b"] < 130
    assert 25 < both < 75
    # the input is not modified in place
    assert torch.equal(item["a"], pair["a"][:, 64:192, 64:192])


def test_shared_square_mask_paints_both_sources_alike() -> None:
    item = {"a": torch.zeros(1, 128, 128), "b": torch.zeros(1, 128, 128)}
    mask = RandSquareMaskd(("a", "b"), prob=1.0, size=64, values=(1.0,), independent=False)
    mask.set_random_state(seed=1)
    for _ in range(10):
        out = mask(item)
        assert torch.equal(out["a"], out["b"]) and int(out["a"].sum()) == 64 * 64
    assert int(item["a"].sum()) == 0  # the input is not modified in place

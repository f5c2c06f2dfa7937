"""The training configs in pipelines/ against the papers, and config loading with overrides."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from medfuse.engines.card import PAPER_METRICS
from medfuse.engines.recipes import PAPER_RECIPES, load_config, parse_override
from medfuse.errors import InputError

REPO = Path(__file__).resolve().parents[2]
PIPELINES = REPO / "pipelines"
TASKS = ("ct-mri", "pet-mri", "spect-mri")
CONFIGS = [PIPELINES / f"{net}_{task}.json" for net in ("ecfusion", "s3imfusion") for task in TASKS]


def _generator():
    spec = importlib.util.spec_from_file_location("make_train_configs",
                                                  REPO / "scripts" / "make_train_configs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_the_generated_paper_recipe(path: Path) -> None:
    net, task = path.stem.split("_")
    assert json.loads(path.read_text()) == json.loads(json.dumps(_generator().config(net, task)))
    paper = PAPER_RECIPES[net]
    p = load_config([path])
    assert p["task"] == task and p["name"] == path.stem
    assert p["optimizer"]["_target_"] == f"torch.optim.{paper['optimizer']}"
    assert p["optimizer"]["lr"] == paper["lr"]
    assert p["trainer"]["batch_size"] == paper["batch_size"]
    assert p["trainer"]["max_epochs"] == paper["max_epochs"]
    assert p["input_size"] == paper["input_size"] and p["image_size"] == 256
    assert p["network_def"]["_target_"].startswith(f"medfuse.nets.{net}.")
    if net == "ecfusion":
        # see docs/training.md
        assert p["loss"] == {"_target_": "medfuse.losses.ECFusionLoss", "lam": paper["lam"],
                             "backbone": "vgg19", "vgg_weights": None, "reduction": "mean"}
        assert p["network_def"]["out_activation"] == "clamp"
        assert (p["patch_size"], p["patch_stride"]) == (paper["patch_size"], paper["stride"])
        aug = {t["_target_"].rsplit(".", 1)[-1]: t for t in p["train_transforms"]["transforms"]}
        assert aug["RandSquareMaskd"]["prob"] == paper["mask_prob"]
        assert aug["RandSquareMaskd"]["size"] == paper["mask_size"]
        assert aug["Resized"]["mode"] == paper["upsampling"]
    else:
        assert p["loss"] == {"_target_": "medfuse.losses.S3IMFusionLoss",
                             "gamma": list(paper["gamma"]), "reduction": "paper"}
    # the best epoch: the paper's six metrics against the classical baselines on the validation
    # pairs
    assert (p["validation"]["profile"] == "paper"
            and p["validation"]["key_metric"] == "baseline_score")
    assert (p["validation"]["metrics"] == list(PAPER_METRICS["ecfusion"])
            and len(p["validation"]["baselines"]) == 5)
    # the split file and data root resolve to real files
    assert Path(p.get_parsed_content("split_file")).is_file()
    assert Path(p.get_parsed_content("data_root")).is_dir()


def test_overrides_and_overlay() -> None:
    p = load_config([PIPELINES / "ecfusion_ct-mri.json", PIPELINES / "cpu_quick.json"],
                    ["trainer#max_epochs=3", "validation.key_metric=SSIM", "loss#lam=0",
                     "train_limit=2", 'validation#metrics=["Qabf","SSIM"]'])
    assert p["trainer"]["max_epochs"] == 3
    assert (p["validation"]["key_metric"] == "SSIM"
            and p["validation"]["metrics"] == ["Qabf", "SSIM"])
    assert p["loss"]["lam"] == 0 and p["train_limit"] == 2
    assert p["input_size"] == 128  # from the overlay
    assert p["trainer"]["batch_size"] == 4  # untouched recipe values stay


def test_parse_override_values() -> None:
    assert parse_override("a#b=2") == ("a#b", 2)
    assert parse_override("a.b=0.5") == ("a#b", 0.5)
    assert parse_override("device=cuda:1") == ("device", "cuda:1")
    assert parse_override("x=[1, 2]") == ("x", [1, 2])
    assert parse_override("x=null") == ("x", None)
    assert parse_override("network_def#_target_=medfuse.nets.ecfusion.ECFusion") == (
        "network_def#_target_", "medfuse.nets.ecfusion.ECFusion")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("nothing")


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="config file not found"):
        load_config([tmp_path / "missing.json"])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a readable config"):
        load_config([bad])
    with pytest.raises(ValueError, match="no section"):
        load_config([PIPELINES / "ecfusion_ct-mri.json"], ["nosuch#key=1"])

"""Write the training configs pipelines/<net>_<task>.json from one template per network.

The JSON files are the source of truth that ``medfuse train`` reads; this script only keeps the six
consistent (tests/engines/test_configs.py checks that they match it). Run from the repository root::

    python scripts/make_train_configs.py
"""

from __future__ import annotations

import json
from pathlib import Path

TASKS = ("ct-mri", "pet-mri", "spect-mri")
KEYS = ["a", "b"]

LOAD = [
    {"_target_": "LoadImaged", "keys": KEYS, "reader": "PILReader", "reverse_indexing": False,
     "image_only": True},
    {"_target_": "EnsureChannelFirstd", "keys": KEYS},
    {"_target_": "medfuse.engines.data.ToLumad", "keys": KEYS},
    {"_target_": "ScaleIntensityRanged", "keys": KEYS, "a_min": 0.0, "a_max": 255.0, "b_min": -1.0,
     "b_max": 1.0, "clip": True},
]
TYPED = {"_target_": "EnsureTyped", "keys": KEYS, "dtype": "$torch.float32", "track_meta": False}

ECFUSION_AUG = [
    {"_target_": "medfuse.engines.data.PatchCropd", "keys": KEYS, "patch_size": "@patch_size"},
    {"_target_": "medfuse.engines.data.RandSquareMaskd", "keys": KEYS, "prob": 0.5, "size": 64,
     "values": [-1.0, 1.0], "independent": True},
    {"_target_": "Resized", "keys": KEYS, "spatial_size": ["@input_size", "@input_size"],
     "mode": "nearest"},
]
S3IM_AUG = [
    {"_target_": "Resized", "keys": KEYS, "spatial_size": ["@input_size", "@input_size"],
     "mode": "area"},
]

PAPERS = {
    "ecfusion": ("ECFusion (Luo et al. 2025): 9 overlapping 128x128 patches per image (stride 64), "
                 "each source patch masked with p=0.5 by a 64x64 white or black square, "
                 "nearest-neighbour upsampling to 256x256, [-1, 1]; Adam, lr 1e-3, batch 4, "
                 "50 epochs, lambda 0.02."),
    "s3imfusion": ("S3IMFusion (Lv et al. 2025): whole 256x256 pairs in [-1, 1]; Adam, lr 1e-3, "
                   "batch 16, 100 epochs, gamma = (10, 5, 1)."),
}


def config(net: str, task: str) -> dict:
    """The full paper recipe of ``net`` on ``task``."""
    ec = net == "ecfusion"
    data = {"_target_": "medfuse.engines.data.harvard_datalist", "root": "@data_root",
            "task": "@task", "split_file": "@split_file"}
    cache = {"_target_": "CacheDataset", "cache_rate": 1.0, "num_workers": None,
             "copy_cache": False, "progress": False}
    if ec:
        train_ds = {"_target_": "medfuse.engines.data.PatchGridDataset",
                    "data": {**cache, "data": "@train_data", "transform": "@load_transforms"},
                    "transform": "@train_transforms", "image_size": "@image_size",
                    "patch_size": "@patch_size", "stride": "@patch_stride"}
        train_tf = {"_target_": "Compose", "transforms": [*ECFUSION_AUG, TYPED]}
    else:
        train_ds = {**cache, "data": "@train_data", "transform": "@train_transforms"}
        train_tf = {"_target_": "Compose", "transforms": [*LOAD, *S3IM_AUG, TYPED]}
    return {
        "_meta_": {
            "description": f"{net} on Harvard {task.upper()}: the paper's training recipe",
            "recipe": PAPERS[net],
            "split": "pipelines/splits/harvard_val10.json (10 % of the training pairs, "
                     "by file name, seed 0)",
            "docs": "docs/training.md",
        },
        "imports": ["$import torch", "$import medfuse"],
        "name": f"{net}_{task}",
        "task": task,
        "seed": 0,
        "device": "auto",
        "data_root": "$medfuse.engines.recipes.default_data_root()",
        "split_file": "$@config_dir + '/splits/harvard_val10.json'",
        "output_dir": "$'runs/' + @name",
        "image_size": 256,
        **({"patch_size": 128, "patch_stride": 64} if ec else {}),
        "input_size": 256,
        "train_limit": None,
        "val_limit": None,
        "network_def": {"_target_": f"medfuse.nets.{net}.{'ECFusion' if ec else 'S3IMFusion'}",
                        **({"out_activation": "clamp"} if ec else {})},
        "loss": ({"_target_": "medfuse.losses.ECFusionLoss", "lam": 0.02, "backbone": "vgg19",
                  "vgg_weights": None, "reduction": "mean"} if ec
                 else {"_target_": "medfuse.losses.S3IMFusionLoss", "gamma": [10.0, 5.0, 1.0],
                       "reduction": "paper"}),
        "optimizer": {"_target_": "torch.optim.Adam", "params": "$@network_def.parameters()",
                      "lr": 0.001},
        "train_data": {**data, "subset": "train", "limit": "@train_limit"},
        "val_data": {**data, "subset": "val", "limit": "@val_limit"},
        "load_transforms": {"_target_": "Compose", "transforms": [*LOAD, TYPED]},
        "train_transforms": train_tf,
        "train_dataset": train_ds,
        "val_dataset": {**cache, "data": "@val_data", "transform": "@load_transforms"},
        "trainer": {"max_epochs": 50 if ec else 100, "batch_size": 4 if ec else 16,
                    "num_workers": 2 if ec else 0, "amp": "auto", "drop_last": False,
                    "checkpoint_every": 1,
                    "checkpoint_every_n_iterations": 25 if ec else 0, "stop_after_iterations": None,
                    "threads": None, "tensorboard": "auto"},
        "validation": {"enabled": True, "profile": "paper",
                       "metrics": ["MI", "Qabf", "VIF", "SSIM", "Qcb", "Qcv"],
                       "baselines": ["average", "max", "laplacian", "dwt", "guided-filter"],
                       "key_metric": "baseline_score", "every_n_epochs": 1, "batch_size": 4,
                       "loss": True},
    }


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "pipelines"
    for net in ("ecfusion", "s3imfusion"):
        for task in TASKS:
            path = out / f"{net}_{task}.json"
            path.write_text(json.dumps(config(net, task), indent=1) + "\n")
            print(path)


if __name__ == "__main__":
    main()

"""Write a MONAI bundle for a medfuse fusion network (``medfuse export-bundle``).

Layout (MONAI Bundle specification)::

    <dir>/configs/metadata.json    versions, task, inputs/outputs, references, source weights hash
    <dir>/configs/inference.json   LoadImaged (NibabelReader) -> medfuse Windowd ->
                                   medfuse ResampleToReferenced (A onto B's grid) -> ConcatItemsd ->
                                   SliceFusionInferer (net(a, b) slice by slice) -> ToUInt8d ->
                                   SaveImaged (NIfTI with the reference affine)
    <dir>/models/model.pt          the network's state dict (torch.save; loads with weights_only)
    <dir>/docs/README.md           what it does, inputs, the command
    <dir>/LICENSE                  Apache-2.0 notice (medfuse's licence)

Run it offline with::

    python -m monai.bundle run --config_file DIR/configs/inference.json \\
        --meta_file DIR/configs/metadata.json --bundle_root DIR \\
        --image_a ct.nii.gz --image_b mr.nii.gz --output_dir out
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["BUNDLE_VERSION", "REFERENCES", "SCHEMA_URL", "bundle_name", "export_bundle",
           "inference_config", "metadata"]

#: version of the bundle layout written here (bump with a changelog line when it changes).
BUNDLE_VERSION = "0.1.0"
#: the MONAI metadata schema the metadata follows (a local equivalent ships in medfuse.bundle).
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
#: publications per network (metadata "references").
REFERENCES: dict[str, list[str]] = {
    "ecfusion": [
        "F. Luo, D. Wu, L. Rojas Pino, W. Ding: A novel multimodal medical image fusion framework "
        "with edge enhancement and cross-scale transformer, Scientific Reports (2025)"
    ],
    "s3imfusion": [
        "J. Lv, X. Zeng, B. Chen, M. Hu, S. Yang, X. Qiu, Z. Wang: A stochastic structural "
        "similarity guided approach for multi-modal medical image fusion, Scientific Reports "
        "15, 8870 (2025)"
    ],
}
_MODALITY_A = {"ct-mri": "CT", "pet-mri": "PET", "spect-mri": "SPECT"}


def bundle_name(network: str, task: str | None) -> str:
    """Folder name of a bundle: ``<network>_<task>`` (``pipelines/bundles/<name>``)."""
    return f"{network}_{task}" if task else network


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    import monai
    import numpy
    import torch

    from medfuse import __version__

    return {
        "monai": monai.__version__,
        "torch": torch.__version__.split("+")[0],
        "numpy": numpy.__version__,
        "medfuse": __version__,
        "nibabel": md.version("nibabel"),
    }


def _tensor(desc: str, fmt: str = "magnitude") -> dict[str, Any]:
    return {
        "type": "image",
        "format": fmt,
        "modality": desc,
        "num_channels": 1,
        "spatial_shape": ["*", "*", "*"],
        "dtype": "float32",
        "value_range": [0, 1],
        "is_patch_data": False,
        "channel_def": {"0": desc},
    }


def metadata(
    network: str, task: str | None, weights_sha256: str, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The ``configs/metadata.json`` content of a bundle."""
    v = _versions()
    mod_a = _MODALITY_A.get(task or "", "CT, PET or SPECT")
    task_text = task or "multimodal"
    inputs = {
        "image_a": _tensor(f"{mod_a} (input A), windowed to [0, 1]"),
        "image_b": _tensor("MR (input B, the reference grid), windowed to [0, 1]"),
    }
    fused = _tensor("fused image on B's grid")
    return {
        "schema": SCHEMA_URL,
        "version": BUNDLE_VERSION,
        "changelog": {BUNDLE_VERSION: f"first bundle of medfuse {v['medfuse']}"},
        "monai_version": v["monai"],
        "pytorch_version": v["torch"],
        "numpy_version": v["numpy"],
        "required_packages_version": {"medfuse": v["medfuse"], "nibabel": v["nibabel"]},
        "name": f"medfuse {network} {task_text}",
        "task": f"{task_text.upper()} image fusion with {network}",
        "description": (
            f"Fuses a {mod_a} volume (A) with an MR volume (B) into one image with {network}, a "
            "two-input 2D network applied slice by slice (axial by default). A is resampled onto "
            "B's grid in physical space (the inputs must already be co-registered or share a world "
            "frame), both are windowed to [0, 1] (medfuse presets), and the fused volume is "
            "written as a uint8 NIfTI with B's affine. It reproduces `medfuse fuse A B --method "
            "network --weights ... --register none --format nifti` on NIfTI inputs."
        ),
        "authors": "medfuse developers",
        "copyright": "Copyright (c) medfuse developers; network weights under the licence stated "
        "in docs/README.md",
        "data_source": "Harvard Whole Brain Atlas (AANLIB) image pairs for training",
        "data_type": "nibabel",
        "image_classes": f"two single-channel volumes: image_a {mod_a}, image_b MR",
        "pred_classes": "one single-channel fused volume (uint8, 0..255)",
        "intended_use": "research: visual fusion of co-registered multimodal images; not for "
        "diagnosis",
        "references": REFERENCES.get(network, []),
        "network_data_format": {
            "inputs": inputs,
            "outputs": {"pred": fused},
        },
        "medfuse": {
            "network": network,
            "task": task,
            "kwargs": kwargs,
            "weights_sha256": weights_sha256,
        },
    }


def inference_config(
    network_target: str, kwargs: dict[str, Any], task: str | None
) -> dict[str, Any]:
    """The ``configs/inference.json`` content of a bundle (MONAI bundle config syntax)."""
    return {
        "imports": [
            "$import torch",
            "$import medfuse.bundle.components",
            "$import medfuse.transforms",
        ],
        "bundle_root": ".",
        "task": task,
        "image_a": "???",
        "image_b": "???",
        "output_dir": "$@bundle_root + '/eval'",
        "window_a": "auto",
        "window_b": "auto",
        "axis": "axial",
        "batch_size": None,
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "ckpt_path": "$@bundle_root + '/models/model.pt'",
        "network_def": {"_target_": network_target, **kwargs},
        "network": "$@network_def.to(@device).eval()",
        "datalist": "$[{'image_a': @image_a, 'image_b': @image_b}]",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {
                    "_target_": "LoadImaged",
                    "keys": ["image_a", "image_b"],
                    "reader": "NibabelReader",
                    "image_only": True,
                },
                {"_target_": "EnsureChannelFirstd", "keys": ["image_a", "image_b"]},
                {
                    "_target_": "medfuse.transforms.Windowd",
                    "keys": ["image_a", "image_b"],
                    "preset": ["@window_a", "@window_b"],
                },
                {
                    "_target_": "medfuse.transforms.ResampleToReferenced",
                    "keys": ["image_a"],
                    "ref_key": "image_b",
                },
                {
                    "_target_": "ConcatItemsd",
                    "keys": ["image_a", "image_b"],
                    "name": "image",
                    "dim": 0,
                },
                {"_target_": "DeleteItemsd", "keys": ["image_a", "image_b"]},
            ],
        },
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": 1,
            "shuffle": False,
            "num_workers": 0,
        },
        "inferer": {
            "_target_": "medfuse.bundle.components.SliceFusionInferer",
            "axis": "@axis",
            "batch_size": "@batch_size",
        },
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "medfuse.bundle.components.ToUInt8d", "keys": "pred"},
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "fused",
                    "output_ext": ".nii.gz",
                    "output_dtype": "$torch.uint8",
                    "resample": False,
                    "separate_folder": False,
                    "print_log": False,
                    "writer": "NibabelWriter",
                },
            ],
        },
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": "@ckpt_path",
                "load_dict": {"model": "@network"},
                "map_location": "@device",
                "strict": True,
            },
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": False,
        },
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    }


def _readme(network: str, task: str | None, name: str, sha: str) -> str:
    mod_a = _MODALITY_A.get(task or "", "CT/PET/SPECT")
    return f"""# {name}: medfuse {network} fusion bundle ({task or "any task"})

Fuses a {mod_a} volume (`image_a`) with an MR volume (`image_b`) into one image with the medfuse
network `{network}` (a two-input 2D network, applied slice by slice). Written by
`medfuse export-bundle`; the weights are those of the medfuse weights file with SHA-256
`{sha}`.

## Inputs
- `image_a`: {mod_a} NIfTI (`.nii`/`.nii.gz`).
- `image_b`: MR NIfTI; its grid and affine are the output's.

The two must already be co-registered (or share one world frame): A is resampled onto B's grid in
physical space, no registration is done here (use `medfuse fuse`, which registers, otherwise).
Each input is windowed to [0, 1] with a medfuse preset (`window_a`, `window_b`: `auto` = 0.5-99.5
percentiles for NIfTI; `ct-brain`, `ct-bone`, `ct-soft-tissue`, `pet`, `spect`, `mr`).

## Output
`<output_dir>/<name of image_a>_fused.nii.gz`: uint8 (0..255) fused volume on B's grid with B's
affine, equal to the `fused.nii.gz` of
`medfuse fuse A B --method network --weights WEIGHTS --register none --format nifti`.

## Command (offline; needs `pip install medfuse`)
```
python -m monai.bundle run \\
    --config_file {name}/configs/inference.json --meta_file {name}/configs/metadata.json \\
    --bundle_root {name} --image_a A.nii.gz --image_b B.nii.gz --output_dir out
```
Other overrides: `--window_a ct-brain`, `--axis coronal`, `--batch_size 8`, \
`--device "\\$torch.device('cpu')"`.

Check the metadata offline (the schema ships with medfuse):
```
python -m medfuse.bundle.schema {name}/configs/metadata.json
```

Intended use: research on visual image fusion; not a medical device.
"""


_LICENSE = """medfuse bundle: configuration, documentation and network weights

Licensed under the Apache License, Version 2.0 (the "License"); you may not use these files except
in compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License
is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
implied. See the License for the specific language governing permissions and limitations under the
License. The training images (Harvard Whole Brain Atlas) keep their own terms of use.
"""


def export_bundle(
    out_dir: str | Path,
    network: str | None = None,
    task: str | None = None,
    weights: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a MONAI bundle for a fusion network into ``out_dir`` (atomically).

    Args:
        out_dir: the bundle folder (created; must be absent or empty unless ``overwrite``).
        network: registry name ("ecfusion", "s3imfusion"); taken from the weights file if None.
        task: "ct-mri", "pet-mri" or "spect-mri"; picks the shipped weights when ``weights`` is
            None, and is taken from the weights file when None.
        weights: a medfuse weights file (.safetensors/.pt) instead of the shipped weights.
        overwrite: replace an existing non-empty ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        WeightsError: no such weights, or they do not fit the network.
        OutputError: ``out_dir`` cannot be written.
    """
    import torch

    from medfuse.errors import WeightsError
    from medfuse.io.atomic import AtomicOutputDir, check_output_dir
    from medfuse.nets import NETWORKS, TASKS
    from medfuse.nets.pretrained import load_weights, pretrained_path, read_weights, sha256

    out = check_output_dir(out_dir, overwrite, inputs=(weights,) if weights else ())
    if weights is None:
        if not network or not task:
            raise WeightsError(
                "export-bundle needs --net and --task (shipped weights) or --weights FILE"
            )
        if task.lower() not in TASKS:
            raise WeightsError(f"unknown task {task!r}; shipped tasks are {', '.join(TASKS)}")
        weights = pretrained_path(network, task)
        if not weights.is_file():
            raise WeightsError(
                f"{weights}: no shipped weights for {network} on {task}; pass --weights FILE"
            )
    weights = Path(weights)
    model = load_weights(weights, network=network)  # validates file, network and state dict
    _, meta = read_weights(weights)
    network = str(network or meta.get("network")).lower()
    task = (task or meta.get("task") or None)
    task = task.lower() if task else None
    kwargs = dict(meta.get("kwargs") or {})
    target = NETWORKS[network].replace(":", ".")
    digest = sha256(weights)
    name = bundle_name(network, task)
    with AtomicOutputDir(out, overwrite=overwrite, inputs=(weights,),
                         command="export-bundle") as tmp:
        for sub in ("configs", "models", "docs"):
            (tmp / sub).mkdir()
        (tmp / "configs" / "metadata.json").write_text(
            json.dumps(metadata(network, task, digest, kwargs), indent=2) + "\n")
        (tmp / "configs" / "inference.json").write_text(
            json.dumps(inference_config(target, kwargs, task), indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, tmp / "models" / "model.pt")
        (tmp / "docs" / "README.md").write_text(_readme(network, task, name, digest))
        (tmp / "LICENSE").write_text(_LICENSE)
    return out

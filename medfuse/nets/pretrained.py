"""Shipped and user weights: save, load and look up trained fusion networks.

A weights file is a safetensors file holding the network's ``state_dict`` and, in its metadata,
everything needed to rebuild the network: ``network`` (registry name), ``kwargs`` (JSON of the
constructor keyword arguments), ``task`` and ``medfuse_version``. Shipped weights live in
``medfuse/weights/<network>-<task>.safetensors`` next to a model card ``<network>-<task>.md``.

Loading never unpickles: safetensors files are read with :func:`safetensors.torch.load_file`,
and PyTorch checkpoints (``.pt``/``.pth``, as written by the training engine) with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from medfuse.errors import WeightsError

__all__ = [
    "TASKS",
    "WEIGHTS_DIR",
    "load_pretrained",
    "load_weights",
    "pretrained_path",
    "read_weights",
    "save_weights",
    "sha256",
]

#: fusion tasks with shipped weights (the Harvard AANLIB tasks of both papers).
TASKS = ("ct-mri", "pet-mri", "spect-mri")

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (recorded in run.json and model cards)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pretrained_path(network: str, task: str) -> Path:
    """Path of the shipped weights for ``network`` on ``task`` (may not exist)."""
    return WEIGHTS_DIR / f"{network.lower()}-{task.lower()}.safetensors"


def save_weights(
    model: nn.Module,
    path: str | Path,
    network: str,
    kwargs: dict[str, Any] | None = None,
    task: str | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s state dict and its rebuild recipe to a safetensors file (atomically)."""
    from safetensors.torch import save_file

    from medfuse import __version__

    path = Path(path)
    meta = {"network": network, "kwargs": json.dumps(kwargs or {}, sort_keys=True),
            "task": task or "", "medfuse_version": __version__, **(extra or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def _first_line(exc: BaseException) -> str:
    """One short line from an exception's text (torch.load's messages span many).

    For a file refused by ``torch.load(weights_only=True)`` this is the unpickler's reason, not
    torch's advice to load unsafely.
    """
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    elif "Weights only load failed" in text:  # keep the reason, drop torch's advice and links
        parts = [" ".join(p.split()) for p in text.split("\n\n")]
        parts = [p for p in parts if p and "weights_only" not in p and "Weights only" not in p]
        text = parts[0] if parts else "refused"
    else:
        text = ""
    if text:
        detail = " ".join(text.split()).split(". ")[0].split(" Check the documentation")[0]
        return f"refused by the safe (weights_only) loader: {detail.rstrip('.')}"[:200]
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of a weights file, loaded safely (no network is built).

    Args:
        path: a ``.safetensors`` file of :func:`save_weights` or a PyTorch checkpoint (read with
            ``weights_only=True``).

    Returns:
        ``(state_dict, metadata)``; metadata holds ``network``, ``kwargs`` (a dict) and ``task``
        when the file records them, and for safetensors every other metadata string.

    Raises:
        WeightsError: unreadable file (one line naming it).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001 - any decode failure is a bad file
            raise WeightsError(
                f"{path}: not a readable safetensors file ({_first_line(exc)})"
            ) from None
        meta["kwargs"] = json.loads(meta.get("kwargs") or "{}")
        return state, meta
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)})"
        ) from None
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path}: checkpoint is not a dictionary")
    state = ckpt["model"] if "model" in ckpt else ckpt.get("state_dict", ckpt)
    meta = {k: ckpt[k] for k in ("network", "kwargs", "task") if k in ckpt}
    meta.setdefault("kwargs", {})
    return state, meta


def load_weights(path: str | os.PathLike[str], network: str | None = None,
                 device: str | torch.device = "cpu", **kwargs: Any) -> nn.Module:
    """Rebuild a network from a weights file and return it in eval mode on ``device``.

    Args:
        path: ``.safetensors`` (as written by :func:`save_weights`) or a ``.pt``/``.pth``
            checkpoint (a dict with ``model`` or ``state_dict``, plus ``network``/``kwargs``).
        network: registry name; needed only when the file does not record it.
        device: where to put the network.
        kwargs: constructor arguments overriding those recorded in the file.

    Raises:
        WeightsError: missing, unreadable, or not matching the network.
    """
    from medfuse.nets.registry import get_network, list_networks

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    state, meta = read_weights(path)
    name = network or meta.get("network")
    if not name:
        raise WeightsError(
            f"{path}: the file does not say which network it holds; pass the network name"
        )
    if name not in list_networks():
        raise WeightsError(
            f"{path}: unknown network {name!r} (known: {', '.join(list_networks())})"
        )
    try:
        model = get_network(name, **{**meta.get("kwargs", {}), **kwargs})
    except TypeError as exc:  # hyper-parameters recorded for another network
        raise WeightsError(
            f"{path}: weights do not match network {name!r}: {_first_line(exc)}"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{path}: weights do not match network {name!r}: {_first_line(exc)}"
        ) from None
    bad = [k for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a diverged training run: the network would fuse every slice to NaN
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise WeightsError(f"{path}: tensor {bad[0]!r}{more} holds NaN or infinite values")
    return model.to(device).eval()


def load_pretrained(
    network: str, task: str = "ct-mri", device: str | torch.device = "cpu"
) -> nn.Module:
    """The shipped network ``network`` trained for ``task``, in eval mode on ``device``.

    Example::

        net = medfuse.nets.load_pretrained("ecfusion", task="ct-mri")

    Raises:
        WeightsError: no shipped weights for this network and task.
    """
    task = task.lower()
    if task not in TASKS:
        raise WeightsError(f"unknown task {task!r}; shipped tasks are {', '.join(TASKS)}")
    path = pretrained_path(network, task)
    if not path.is_file():
        have = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")) or ["none"]
        raise WeightsError(
            f"{path}: no shipped weights for {network} on {task} (shipped: {', '.join(have)}); "
            "pass a weights file instead"
        )
    return load_weights(path, network=network, device=device)

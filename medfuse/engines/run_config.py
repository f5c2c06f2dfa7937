"""A training run's settings and components, read from its MONAI config.

- :class:`RunSettings`: the ``trainer``/``validation`` sections and the run's name, task, seed;
- :func:`resolve_device`, :func:`resolve_threads`: the ``device`` and ``trainer#threads`` values;
- :class:`RunPlace`: where the run goes (device, AMP dtype, run folder, processes);
- :func:`build_components`: network, loss, optimiser and datasets, any failure one clear line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medfuse.errors import InputError, MedfuseError

__all__ = ["RunComponents", "RunPlace", "RunSettings", "build_components", "config_value",
           "network_record", "resolve_device", "resolve_threads"]

#: MONAI config keys of ``network_def`` that are not constructor arguments
_RESERVED = {"_target_", "_requires_", "_disabled_", "_desc_", "_mode_"}


def config_value(parser: Any, key: str, default: Any = None) -> Any:
    """The parsed config entry ``key`` (a MONAI id: ``trainer#max_epochs``), or ``default``."""
    try:
        return parser.get_parsed_content(key)
    except KeyError:
        return default


def resolve_threads(setting: Any) -> int | None:
    """The torch thread count for ``trainer#threads``: ``None`` (torch's), an int, or ``"auto"``.

    ``"auto"``: the cores not busy right now (:func:`medfuse.runtime.free_cores`), at least 1 (on
    a shared machine, more threads than free cores make every thread wait).
    """
    if setting in (None, "", "default"):
        return None
    if setting == "auto":
        from medfuse.runtime import free_cores

        return free_cores()
    return max(1, int(setting))


def resolve_device(setting: str | None) -> torch.device:
    """``"auto"``/``None``: the local rank's GPU when CUDA is available, else the CPU."""
    if setting in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    dev = torch.device(setting)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {setting!r} requested but CUDA is not available")
    return dev


@dataclass
class RunSettings:
    """The run-wide settings of a config (its ``trainer`` and ``validation`` sections).

    Attributes:
        tcfg, vcfg: the ``trainer`` and ``validation`` sections as dicts (other keys are read
            where they are used).
        name, task, seed: the config's ``name``, ``task`` and ``seed``.
        max_epochs, batch_size, num_workers: ``trainer#...``.
        threads: the resolved ``trainer#threads`` (``None``: torch's default).
        every_iters: ``trainer#checkpoint_every_n_iterations`` (0: none inside an epoch).
        stop_after: ``trainer#stop_after_iterations`` (0: no stop).
    """

    tcfg: dict[str, Any]
    vcfg: dict[str, Any]
    name: str
    task: str
    seed: int
    max_epochs: int
    batch_size: int
    num_workers: int
    threads: int | None
    every_iters: int
    stop_after: int

    @classmethod
    def from_parser(cls, parser: Any) -> RunSettings:
        """Read the settings from a :class:`monai.bundle.ConfigParser`."""
        tcfg: dict[str, Any] = dict(config_value(parser, "trainer", {}) or {})
        vcfg: dict[str, Any] = dict(config_value(parser, "validation", {}) or {})
        return cls(
            tcfg=tcfg, vcfg=vcfg, name=str(config_value(parser, "name", "run")),
            task=str(config_value(parser, "task", "")), seed=int(config_value(parser, "seed", 0)),
            max_epochs=int(tcfg.get("max_epochs", 1)), batch_size=int(tcfg.get("batch_size", 1)),
            num_workers=int(tcfg.get("num_workers", 0)),
            threads=resolve_threads(tcfg.get("threads")),
            every_iters=int(tcfg.get("checkpoint_every_n_iterations") or 0),
            stop_after=int(tcfg.get("stop_after_iterations") or 0))

    @property
    def key_metric(self) -> str:
        """The validation metric that picks the best epoch (``validation#key_metric``)."""
        return str(self.vcfg.get("key_metric", "Qabf"))


@dataclass
class RunPlace:
    """Where a run trains: processes, device, AMP dtype, run folder, checkpoint to resume from."""

    world_size: int
    rank: int
    device: torch.device
    amp: torch.dtype | None
    out: Path
    resume_from: Path | None


@dataclass
class RunComponents:
    """The parts a config builds.

    Attributes:
        model: the bare network, on the run's device.
        loss_fn: ``loss(fused, a, b)``; ``term_weights`` its terms' weights (may be empty).
        optimizer: the optimiser of ``model``'s parameters.
        train_ds, val_ds: the datasets (``val_ds`` ``None`` when validation is off).
        net_name, net_kwargs: the network's registry name and constructor arguments.
    """

    model: torch.nn.Module
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    train_ds: Any
    val_ds: Any
    net_name: str
    net_kwargs: dict[str, Any]
    term_weights: dict[str, float] = field(default_factory=dict)


def _reason(exc: BaseException | None) -> str:
    """One line naming the innermost cause of a config failure (MONAI wraps it in RuntimeErrors)."""
    parts = []
    while exc is not None:
        text = " ".join(str(exc).split())
        parts.append(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)
        exc = exc.__cause__ or exc.__context__
    return parts[-1] if len(parts) == 1 else f"{parts[0][:160]} <- {parts[-1][:300]}"


def _medfuse_cause(exc: BaseException | None) -> MedfuseError | None:
    """The first MedfuseError in an exception's cause chain (MONAI wraps component errors)."""
    while exc is not None:
        if isinstance(exc, MedfuseError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def network_record(parser: Any, model: torch.nn.Module) -> tuple[str, dict[str, Any]]:
    """Registry name and constructor kwargs of the configured network (for save_weights)."""
    from medfuse.nets import NETWORKS

    cls = type(model)
    where = f"{cls.__module__}:{cls.__name__}"
    names = [n for n, target in NETWORKS.items() if target == where]
    raw = parser["network_def"]
    kwargs = {k: config_value(parser, f"network_def#{k}")
              for k in raw if k not in _RESERVED and k != "name"}
    name = names[0] if names else str(raw.get("name", cls.__name__.lower()))
    json.dumps(kwargs)  # must be JSON to go into the weights file's metadata
    return name, kwargs


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Start training from the weights in ``path`` (the config's ``init_weights``).

    A medfuse ``.safetensors`` weights file (``medfuse.nets.save_weights``, a run's exported best
    model, a shipped file) of the same network: every tensor must fit (strict), the output
    activation and other parameter-free choices are the config's own.

    Raises:
        InputError: the file is missing, unreadable or does not fit the network (one line).
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: init_weights file not found")
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure to read is a bad weights file
        raise InputError(f"{path}: cannot read the initial weights ({_reason(exc)})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{path}: the initial weights do not fit the network ({first})") from None


def build_components(parser: Any, settings: RunSettings, device: torch.device) -> RunComponents:
    """Seed everything, then build the network, loss, optimiser and datasets of the config.

    Args:
        parser: the run's :class:`monai.bundle.ConfigParser`.
        settings: its settings (the seed; whether validation is enabled).
        device: where the network and the loss go.

    Raises:
        InputError: a component cannot be built, or the training list is empty (one line).
        MedfuseError: the medfuse error a component raised (e.g. missing VGG weights).
    """
    from monai.utils import set_determinism

    set_determinism(seed=settings.seed)  # before the network's initialisation
    try:
        model = parser.get_parsed_content("network_def").to(device)
        loss_fn = parser.get_parsed_content("loss")
        if isinstance(loss_fn, torch.nn.Module):
            loss_fn = loss_fn.to(device)
        optimizer = parser.get_parsed_content("optimizer")
        train_ds = parser.get_parsed_content("train_dataset")
        validate = settings.vcfg.get("enabled", True)
        val_ds = config_value(parser, "val_dataset") if validate else None
    except MedfuseError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to build a component is a config problem
        # e.g. WeightsError: the perceptual loss's VGG weights are missing
        inner = _medfuse_cause(exc)
        if inner is not None:
            raise inner from None
        raise InputError(f"config: cannot build the training components ({_reason(exc)})") from None
    if len(train_ds) == 0:
        raise InputError("config: the training data list is empty")
    init = config_value(parser, "init_weights")
    if init:
        load_initial_weights(model, init)
    net_name, net_kwargs = network_record(parser, model)
    term_weights: dict[str, float] = dict(getattr(loss_fn, "term_weights", {}) or {})
    return RunComponents(model, loss_fn, optimizer, train_ds, val_ds, net_name, net_kwargs,
                         term_weights)

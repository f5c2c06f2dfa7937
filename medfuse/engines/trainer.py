"""The unsupervised fusion trainer and evaluator (MONAI workflows on pytorch-ignite).

Fusion has no label: a batch carries the two sources ``"a"`` and ``"b"`` (``(B, 1, H, W)`` in
``[-1, 1]``), the network is called as ``network(a, b)`` and the loss as ``loss(fused, a, b)``.
:class:`FusionTrainer` is MONAI's :class:`~monai.engines.SupervisedTrainer` with that iteration
and a simpler mixed precision (the network's forward under ``torch.autocast`` in bfloat16 or
float16 on CUDA, the loss in float32; the gradient scaler only for float16, and it survives a
resume). :class:`FusionEvaluator` runs the network on
validation pairs; :class:`FusionQuality` scores them with :class:`medfuse.metrics.FusionMetrics`
(and against the classical baselines of :func:`baseline_means`). :func:`background_sums` measures
the fused image's level where both sources are black.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from monai.utils.enums import CommonKeys as Keys

__all__ = ["FusionEvaluator", "FusionQuality", "FusionTrainer", "amp_dtype", "background_sums",
           "baseline_means", "prepare_fusion_batch"]


def background_sums(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """Sum and count of the fused grey levels (0..255) where both sources are black.

    Args:
        fused: ``(B, 1, H, W)`` in ``[-1, 1]``.
        a, b: the sources, ``(B, 1, H, W)`` in ``[-1, 1]``; "black" is below 0.5 grey levels.

    Returns:
        ``(sum, count)``; their ratio is the mean background level in grey levels.
    """
    black = -1.0 + 1.0 / 255.0
    with torch.no_grad():
        mask = (a <= black) & (b <= black)
        grey = (fused.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5
        return float(grey[mask].sum()), int(mask.sum())


def prepare_fusion_batch(batchdata: Mapping[str, Any], device: torch.device | str | None = None,
                         non_blocking: bool = False,
                         **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the two sources of a collated batch to ``device``.

    Args:
        batchdata: a dict with ``"a"`` and ``"b"``, each ``(B, 1, H, W)``.

    Returns:
        ``(a, b)`` as plain float tensors on ``device``.
    """
    if not isinstance(batchdata, Mapping) or "a" not in batchdata or "b" not in batchdata:
        raise ValueError("a fusion batch must be a dict with the sources 'a' and 'b'")

    def move(x: torch.Tensor) -> torch.Tensor:
        x = x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
        return x.to(device=device, dtype=torch.float32, non_blocking=non_blocking, **kwargs)

    return move(batchdata["a"]), move(batchdata["b"])


def amp_dtype(setting: bool | str | None, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` setting, or ``None`` for full float32.

    Args:
        setting: ``False``/``None``/``"off"``: off; ``True``/``"auto"``: bfloat16 where the GPU
            supports it, else float16; ``"bf16"``/``"bfloat16"`` or ``"fp16"``/``"float16"``.
        device: AMP is used on CUDA only (on CPU the setting is ignored: float32).
    """
    device = torch.device(device)
    if setting in (False, None, "off", "false", "none") or device.type != "cuda":
        return None
    if setting in ("bf16", "bfloat16"):
        return torch.bfloat16
    if setting in ("fp16", "float16", "half"):
        return torch.float16
    if setting in (True, "auto", "on", "true"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    raise ValueError(f"unknown amp setting {setting!r}; use auto, bf16, fp16 or off")


class FusionTrainer(SupervisedTrainer):
    """Unsupervised two-source fusion training on MONAI's SupervisedTrainer.

    Each iteration: ``a, b = prepare_batch(batch)``, ``fused = network(a, b)``,
    ``loss = loss_function(fused, a, b)``, backward, optimiser step. ``engine.state.output``
    holds ``"a"``, ``"b"``, ``Keys.PRED`` (the fused batch) and ``Keys.LOSS`` (a scalar tensor).

    Args:
        device: where the batch goes (the network must already be there).
        max_epochs: epochs to train.
        train_data_loader: yields dicts with ``"a"`` and ``"b"`` ``(B, 1, H, W)`` in ``[-1, 1]``.
        network: ``network(a, b) -> (B, 1, H, W)``; may be a DDP wrapper.
        optimizer: the optimiser of ``network``'s parameters.
        loss_function: ``loss(fused, a, b) -> scalar``.
        amp: ``None`` (float32) or the autocast dtype (see :func:`amp_dtype`); CUDA only.
        kwargs: the other :class:`~monai.engines.SupervisedTrainer` arguments (handlers, ...).
    """

    def __init__(self, device: torch.device | str, max_epochs: int, train_data_loader: Any,
                 network: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 loss_function: Callable,
                 amp: torch.dtype | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("prepare_batch", prepare_fusion_batch)
        kwargs.setdefault("decollate", False)
        device = torch.device(device)
        self.amp_dtype = amp if device.type == "cuda" else None
        super().__init__(device=device, max_epochs=max_epochs, train_data_loader=train_data_loader,
                         network=network, optimizer=optimizer, loss_function=loss_function,
                         amp=self.amp_dtype is not None, **kwargs)
        # MONAI types the scaler as torch.cuda.amp.GradScaler, a deprecated subclass of this one
        scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.scaler = scaler  # type: ignore[assignment]

    def run(self) -> None:  # type: ignore[override]
        """Train (or continue training) up to ``state.max_epochs``; keeps a restored AMP scaler."""
        # Trainer.run() would replace the scaler (and its restored state) by a fresh one.
        Workflow.run(self)

    def _iteration(  # type: ignore[override]
        self, engine: FusionTrainer, batchdata: Mapping[str, Any]
    ) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        a, b = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking,
                                    **engine.to_kwargs)
        engine.state.output = {"a": a, "b": b}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(device_type=engine.state.device.type,
                            dtype=engine.amp_dtype or torch.float32,
                            enabled=engine.amp_dtype is not None):
            fused = engine.network(a, b)
        engine.state.output[Keys.PRED] = fused
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        # the loss (SSIM statistics, VGG features, gradients) in float32, outside autocast; a loss
        # with components() also gives its terms for the log
        if hasattr(engine.loss_function, "components"):
            parts = engine.loss_function.components(fused.float(), a, b)
            loss = parts["total"].float().mean()
            engine.state.output["terms"] = {k: float(v.detach()) for k, v in parts.items()
                                            if k != "total"}
        else:
            loss = engine.loss_function(fused.float(), a, b).float().mean()
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if engine.scaler is not None:
            engine.scaler.scale(loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            loss.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


class FusionEvaluator(SupervisedEvaluator):
    """Runs ``network(a, b)`` on validation batches (eval mode, no gradients).

    ``engine.state.output`` holds ``"a"``, ``"b"``, ``Keys.PRED`` (fused, clamped to ``[-1, 1]``)
    and, when ``loss_function`` is given, ``Keys.LOSS`` (the batch's loss, a float tensor).

    Args:
        device: where the batch goes.
        val_data_loader: yields dicts with ``"a"`` and ``"b"``.
        network: the bare network (not a DDP wrapper: validation runs on rank 0 only).
        loss_function: optional ``loss(fused, a, b)`` for a validation loss.
        amp: autocast dtype or ``None``.
        kwargs: the other :class:`~monai.engines.SupervisedEvaluator` arguments.
    """

    def __init__(self, device: torch.device | str, val_data_loader: Any, network: torch.nn.Module,
                 loss_function: Callable | None = None, amp: torch.dtype | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("prepare_batch", prepare_fusion_batch)
        kwargs.setdefault("decollate", False)
        device = torch.device(device)
        self.amp_dtype = amp if device.type == "cuda" else None
        super().__init__(device=device, val_data_loader=val_data_loader, network=network, **kwargs)
        self.loss_function = loss_function

    def _iteration(  # type: ignore[override]
        self, engine: FusionEvaluator, batchdata: Mapping[str, Any]
    ) -> dict:
        a, b = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking,
                                    **engine.to_kwargs)
        engine.network.eval()
        with torch.no_grad():
            with torch.autocast(device_type=engine.state.device.type,
                                dtype=engine.amp_dtype or torch.float32,
                                enabled=engine.amp_dtype is not None):
                fused = engine.network(a, b).float()
            out = {"a": a, "b": b, Keys.PRED: fused.clamp(-1.0, 1.0)}
            if engine.loss_function is not None:
                out[Keys.LOSS] = engine.loss_function(fused, a, b).float().mean()
        engine.state.output = out
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return out


def _fusion_output(output: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """``(fused, a, b, loss or None)`` from an evaluator's output dict."""
    return output[Keys.PRED], output["a"], output["b"], output.get(Keys.LOSS)


class FusionQuality(Metric):
    """Mean fusion metrics over a validation epoch (an ignite metric).

    ``compute()`` returns ``{metric: mean, ..., "val_background": grey levels, "val_loss": mean,
    "baseline_score": score}`` (``val_loss`` only when the evaluator computes a loss,
    ``baseline_score`` only with ``baselines``); ignite copies every key into
    ``engine.state.metrics``. Images are mapped from ``[-1, 1]`` to 0..255 (clipped, not rounded).
    ``val_background`` is the mean fused level where both sources are black
    (:func:`background_sums`; NaN when no pixel is).

    Args:
        profile: metric definitions (``"vifb"``, ``"cddfuse"`` or ``"paper"``).
        metrics: names to compute, e.g. ``("MI", "Qabf", "SSIM", "VIF", "Qcb", "Qcv")``.
        baselines: ``{method: {metric: mean}}`` of the classical baselines on the same pairs
            (:func:`baseline_means`); adds :func:`medfuse.nets.quality.baseline_score`.
    """

    def __init__(self, profile: str = "vifb", metrics: Sequence[str] | str | None = None,
                 output_transform: Callable = _fusion_output,
                 baselines: Mapping[str, Mapping[str, float]] | None = None) -> None:
        from medfuse.metrics import FusionMetrics

        self.scorer = FusionMetrics(profile=profile, metrics=metrics)
        self.baselines = dict(baselines or {})
        super().__init__(output_transform=output_transform, device="cpu")

    def reset(self) -> None:  # noqa: D102 - ignite API
        self._rows: list[dict[str, float]] = []
        self._losses: list[float] = []
        self._background = [0.0, 0]

    def update(self, output: Sequence[Any]) -> None:  # noqa: D102 - ignite API
        fused, a, b, loss = output
        self._rows.extend(self.scorer.score_batch(fused, a, b, value_range=(-1.0, 1.0)))
        total, count = background_sums(fused, a, b)
        self._background[0] += total
        self._background[1] += count
        if loss is not None:
            self._losses.append(float(loss) * len(a))

    def compute(self) -> dict[str, float]:  # noqa: D102 - ignite API
        from medfuse.metrics import aggregate
        from medfuse.nets.quality import baseline_score

        stats = aggregate(self._rows)
        out = {m: stats[m]["mean"] for m in self.scorer.metrics if m in stats}
        total, count = self._background
        out["val_background"] = total / count if count else float("nan")
        if self._losses:
            out["val_loss"] = sum(self._losses) / max(len(self._rows), 1)
        if self.baselines:
            out["baseline_score"] = baseline_score(out, self.baselines, self.scorer.metrics)
        return out


def baseline_means(loader: Any, methods: Sequence[str], profile: str,
                   metrics: Sequence[str] | None) -> dict[str, dict[str, float]]:
    """Mean metrics of classical fusion methods (``medfuse fuse --method``) on validation batches.

    Args:
        loader: yields dicts with ``"a"`` and ``"b"`` ``(B, 1, H, W)`` in ``[-1, 1]``.
        methods: registry names, e.g. ``("average", "max", "laplacian", "dwt", "guided-filter")``.
        profile, metrics: as :class:`FusionQuality`'s.

    Returns:
        ``{method: {metric: mean}}``.
    """
    from medfuse.fusion import get_method
    from medfuse.metrics import FusionMetrics, aggregate

    scorer = FusionMetrics(profile=profile, metrics=metrics)
    fusers = {m: get_method(m) for m in methods}
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for batch in loader:
        a, b = prepare_fusion_batch(batch, "cpu")
        a, b = (a + 1.0) / 2.0, (b + 1.0) / 2.0
        for m, fuser in fusers.items():
            rows[m].extend(scorer.score_batch(fuser(a, b), a, b, value_range=(0.0, 1.0)))
    out = {}
    for m, r in rows.items():
        stats = aggregate(r)
        out[m] = {k: float(stats[k]["mean"]) for k in scorer.metrics if k in stats}
    return out

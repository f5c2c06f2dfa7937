"""ONNX Runtime backend for the fusion networks (CPU inference).

Measured on the shared 2-core machine (``python benchmarks/bench_nets.py``, docs/nets.md), ONNX
Runtime runs ECFusion and S3IMFusion several times faster than eager PyTorch with 2 threads under
load (its thread pool does not oversubscribe the cores as OpenMP does) and 1.3x faster on one
thread, with the same outputs within 1e-5. Eager PyTorch stays the reference and the default::

    from medfuse.nets import load_pretrained
    from medfuse.nets.ort_backend import OrtNetwork, export_onnx

    net = load_pretrained("ecfusion", task="ct-mri")
    fast = OrtNetwork(net, threads=2)        # fast(a, b) == net(a, b) within 1e-5
    export_onnx(net, "ecfusion.onnx", size=(256, 256))   # for Triton / ORT deployments

The networks pad to their patch size with Python-side arithmetic, so an exported graph is fixed to
one input shape: :class:`OrtNetwork` exports (a few seconds) and keeps one session per input
shape, which suits slice-by-slice fusion of a volume (one shape for all slices).
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from medfuse.nets.blocks import reference_kernels

__all__ = ["OrtNetwork", "export_onnx", "onnx_bytes"]

OPSET = 17


def onnx_bytes(net: nn.Module, shape: tuple[int, int, int, int]) -> bytes:
    """The network's ONNX graph (opset 17) for inputs ``a``, ``b`` of ``shape`` ``(B, C, H, W)``.

    The graph is traced from the reference eager path (``reference_kernels``), output ``fused``.
    """
    was_training = net.training
    net.eval()
    a = torch.zeros(shape)
    buf = io.BytesIO()
    try:
        with reference_kernels(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # the TorchScript exporter's deprecation and trace notes
            torch.onnx.export(
                net,
                (a, a.clone()),
                buf,  # type: ignore[arg-type]  # a file-like object is accepted
                input_names=["a", "b"],
                output_names=["fused"],
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        net.train(was_training)
    return buf.getvalue()


def export_onnx(
    net: nn.Module,
    path: str | Path,
    size: tuple[int, int] = (256, 256),
    batch: int = 1,
    in_channels: int = 1,
) -> Path:
    """Write the network as an ONNX file for ``batch`` x ``in_channels`` x ``size`` inputs.

    Written to a temporary name beside ``path`` and renamed, so a failed export leaves nothing.
    """
    path = Path(path)
    data = onnx_bytes(net, (batch, in_channels, *size))
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


class OrtNetwork(nn.Module):
    """A fusion network run by ONNX Runtime's CPU provider: ``forward(a, b)`` like the network's.

    Args:
        net: the PyTorch network (its current weights are exported; later weight changes are not
            seen: build a new ``OrtNetwork``).
        threads: ONNX Runtime intra-op threads (``None``: ORT's default, all cores).
        max_sessions: sessions kept (one per input shape), least recently used dropped first.

    Raises:
        ImportError: ``onnxruntime`` is not installed (``pip install 'medfuse[ort]'``).
    """

    def __init__(self, net: nn.Module, threads: int | None = None, max_sessions: int = 4) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the onnxruntime backend needs onnxruntime: pip install 'medfuse[ort]'"
            ) from exc
        self._ort = onnxruntime
        self.net = net.eval()
        self.threads = threads
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def _session(self, shape: tuple[int, int, int, int]):
        sess = self._sessions.get(shape)
        if sess is None:
            opts = self._ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            # no spin-waiting: on a shared machine spinning threads cost more than they save
            # (ECFusion 256x256, 2 threads, load 2: 376 ms spinning, 240 ms not)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = self._ort.InferenceSession(
                onnx_bytes(self.net, shape), opts, providers=["CPUExecutionProvider"]
            )
            self._sessions[shape] = sess
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(shape)
        return sess

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Fuse ``a`` and ``b`` ``(B, C, H, W)`` (CPU float32) into ``(B, C_out, H, W)``."""
        if a.shape != b.shape:
            raise ValueError(
                f"a and b must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        feed = {
            "a": np.ascontiguousarray(a.detach().cpu().float().numpy()),
            "b": np.ascontiguousarray(b.detach().cpu().float().numpy()),
        }
        n, c, h, w = (int(v) for v in a.shape)
        out = self._session((n, c, h, w)).run(["fused"], feed)[0]
        return torch.from_numpy(out)

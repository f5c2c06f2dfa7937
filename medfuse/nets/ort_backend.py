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
one slice size (its batch axis stays free): :class:`OrtNetwork` exports (a few seconds, traced at
batch 1) and keeps one session per slice size, which suits slice-by-slice fusion of a volume (one
size for all slices, any batch). Memory: ONNX Runtime's arena is off and a batch runs in chunks of
at most ``max_pixels`` pixels, because the exported attention materialises its ``N x N`` matrix
(S3IMFusion at 512x512: 4096 tokens, 4 heads, 268 MB a slice) where eager PyTorch's fused kernel
does not; ``medfuse fuse`` with ONNX Runtime then peaks near eager's memory (docs/fuse.md).
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
#: most pixels (batch x H x W) per ONNX Runtime call by default: one 512x512 slice.
MAX_PIXELS = 512 * 512


def onnx_bytes(
    net: nn.Module, shape: tuple[int, int, int, int], dynamic_batch: bool = False
) -> bytes:
    """The network's ONNX graph (opset 17) for inputs ``a``, ``b`` of ``shape`` ``(B, C, H, W)``.

    The graph is traced from the reference eager path (``reference_kernels``), output ``fused``.
    With ``dynamic_batch`` the batch axis is left free (named ``n``): one graph serves every batch
    size of that ``C, H, W`` (trace at ``B = 1`` to keep the export's memory low).
    """
    axes = {"a": {0: "n"}, "b": {0: "n"}, "fused": {0: "n"}} if dynamic_batch else None
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
                dynamic_axes=axes,
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
    dynamic_batch: bool = False,
) -> Path:
    """Write the network as an ONNX file for ``batch`` x ``in_channels`` x ``size`` inputs.

    With ``dynamic_batch`` the file takes any batch of that size (Triton's dynamic batching).
    Written to a temporary name beside ``path`` and renamed, so a failed export leaves nothing.
    """
    path = Path(path)
    data = onnx_bytes(net, (batch, in_channels, *size), dynamic_batch=dynamic_batch)
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
        max_sessions: sessions kept (one per slice size ``C, H, W``), least recently used dropped
            first.
        max_pixels: most pixels (batch x H x W) run in one ORT call; a larger batch runs in chunks
            (at least one slice each). Bounds memory: see the module docstring.

    Raises:
        ImportError: ``onnxruntime`` is not installed (``pip install 'medfuse[ort]'``).
    """

    def __init__(
        self,
        net: nn.Module,
        threads: int | None = None,
        max_sessions: int = 4,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
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
        self.max_pixels = int(max_pixels)
        self._sessions: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def _session(self, shape: tuple[int, int, int]):
        """The session for slices of ``shape`` ``(C, H, W)`` (any batch), built on first use."""
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
            # no arena: it keeps the largest working set of any run for the session's life
            opts.enable_cpu_mem_arena = False
            graph = onnx_bytes(self.net, (1, *shape), dynamic_batch=True)
            sess = self._ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
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
        xa = np.ascontiguousarray(a.detach().cpu().float().numpy())
        xb = np.ascontiguousarray(b.detach().cpu().float().numpy())
        n, c, h, w = (int(v) for v in a.shape)
        sess = self._session((c, h, w))
        step = max(1, self.max_pixels // max(1, h * w))
        outs = [
            sess.run(["fused"], {"a": xa[i : i + step], "b": xb[i : i + step]})[0]
            for i in range(0, n, step)
        ]
        return torch.from_numpy(outs[0] if len(outs) == 1 else np.concatenate(outs))

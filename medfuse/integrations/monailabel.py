"""A MONAI Label infer task for medfuse fusion: two input images, one fused output.

:class:`FusionInferTask` has the shape of MONAI Label's ``BasicInferTask`` (``pre_transforms``,
``inferer``, ``post_transforms``, ``info``, ``is_valid``, ``__call__(request) -> (file, json)``) and
derives from it when ``monailabel`` is installed; without ``monailabel`` it derives from a small
compatible base, so the task runs (and is tested) anywhere medfuse runs. Its ``__call__`` does the
whole run itself (pre-transforms, slice-wise fusion, post-transforms, a NIfTI written atomically),
because MONAI Label's own pipeline expects one input image per request.

Request keys: ``image_b`` (the MR, the reference grid; MONAI Label's ``image`` is accepted for it),
``image_a`` (CT, PET or SPECT, co-registered), optional ``output`` (a ``.nii.gz`` path; default a
new temporary file, as MONAI Label writers do), ``window_a``/``window_b`` (medfuse presets).

Example::

    task = FusionInferTask(network="ecfusion", task="ct-mri")
    path, info = task({"image_a": "ct.nii.gz", "image_b": "mr.nii.gz"})
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FusionInferTask", "HAVE_MONAILABEL"]

try:  # MONAI Label is optional: use its base class when it is installed
    from monailabel.tasks.infer.basic_infer import BasicInferTask as _Base

    HAVE_MONAILABEL = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_MONAILABEL = False

    class _Base:  # type: ignore[no-redef]
        """Stand-in with the attributes of MONAI Label's BasicInferTask that this task uses."""

        def __init__(self, path: Any, network: Any, type: str, labels: Any, dimension: int,
                     description: str, **kwargs: Any) -> None:
            self.path = path
            self.network = network
            self.type = type
            self.labels = labels
            self.dimension = dimension
            self.description = description
            self._config = dict(kwargs.get("config") or {})

        def is_valid(self) -> bool:
            return True

        def info(self) -> dict[str, Any]:
            return {"type": self.type, "labels": self.labels, "dimension": self.dimension,
                    "description": self.description, "config": self._config}


class FusionInferTask(_Base):
    """Fuse a co-registered pair (A: CT/PET/SPECT, B: MR) with a medfuse network.

    Args:
        network: "ecfusion" or "s3imfusion" (with ``task``: the shipped weights).
        task: "ct-mri", "pet-mri" or "spect-mri".
        weights: a weights file instead of the shipped weights.
        model: an already built network (then ``network``/``task``/``weights`` only describe it).
        device: "auto", "cpu" or "cuda[:N]".
        axis: slice axis ("axial", "coronal", "sagittal").
        batch_size: slices per network call (None: from free memory).
        window_a, window_b: default medfuse window presets ("auto": 0.5-99.5 percentiles for NIfTI).
    """

    def __init__(
        self,
        network: str = "ecfusion",
        task: str | None = "ct-mri",
        weights: str | os.PathLike | None = None,
        model: Any = None,
        device: str = "auto",
        axis: str = "axial",
        batch_size: int | None = None,
        window_a: str = "auto",
        window_b: str = "auto",
    ) -> None:
        from medfuse.fusion.slices import resolve_device
        from medfuse.nets import load_pretrained, load_weights
        from medfuse.nets.pretrained import pretrained_path

        self.device = resolve_device(device)
        if model is None:
            model = (load_weights(weights, device=self.device) if weights is not None
                     else load_pretrained(network, task or "ct-mri", device=self.device))
        path = (
            str(weights) if weights is not None else str(pretrained_path(network, task or "ct-mri"))
        )
        super().__init__(
            path=path,
            network=model,
            type="others",
            labels=None,
            dimension=3,
            description=f"medfuse {network} fusion ({task or 'any task'}): "
            "image_a + image_b -> fused",
            config={"window_a": window_a, "window_b": window_b, "axis": axis},
        )
        self.model = model.to(self.device).eval()
        self.fusion_network, self.fusion_task = network, task
        self.axis, self.batch_size = axis, batch_size
        self.window_a, self.window_b = window_a, window_b

    def pre_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        """Load both images, window each to [0, 1], put A on B's grid, stack them as ``image``."""
        from monai.transforms import ConcatItemsd, DeleteItemsd, EnsureChannelFirstd, LoadImaged

        from medfuse.transforms import ResampleToReferenced, Windowd

        data = data or {}
        keys = ["image_a", "image_b"]
        return [
            LoadImaged(keys=keys, image_only=True),
            EnsureChannelFirstd(keys=keys),
            Windowd(
                keys=keys,
                preset=[data.get("window_a", self.window_a), data.get("window_b", self.window_b)],
            ),
            ResampleToReferenced(keys=["image_a"], ref_key="image_b"),
            ConcatItemsd(keys=keys, name="image", dim=0),
            DeleteItemsd(keys=keys),
        ]

    def inferer(self, data: dict[str, Any] | None = None) -> Any:
        """The slice-wise two-input fusion inferer."""
        from medfuse.bundle.components import SliceFusionInferer

        return SliceFusionInferer(axis=self.axis, batch_size=self.batch_size)

    def post_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        """Fused [0, 1] volume -> uint8 (as ``medfuse fuse`` writes it)."""
        from medfuse.bundle.components import ToUInt8d

        return [ToUInt8d(keys="pred")]

    def is_valid(self) -> bool:  # noqa: D102 - MONAI Label API
        return self.model is not None

    def __call__(
        self, request: dict[str, Any], callbacks: Any = None
    ) -> tuple[str, dict[str, Any]]:
        """Fuse ``request["image_a"]`` with ``request["image_b"]``; returns (NIfTI path, info).

        Raises:
            InputError: a missing or unreadable input.
        """
        from monai.transforms import Compose

        from medfuse.errors import InputError
        from medfuse.io.writers import write_nifti

        req = dict(request)
        req.setdefault("image_b", req.get("image"))
        for key in ("image_a", "image_b"):
            if not req.get(key) or not Path(str(req[key])).is_file():
                raise InputError(
                    f"{req.get(key) or key}: no such image for '{key}' in the fusion request"
                )
        t0 = time.perf_counter()
        data = {k: str(req[k]) for k in ("image_a", "image_b")}
        try:
            data = Compose(self.pre_transforms(req))(data)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - MONAI wraps reader errors in RuntimeError
            raise InputError(
                f"{req['image_a']} / {req['image_b']}: cannot load the pair "
                f"({str(exc).splitlines()[0]})"
            ) from None
        t1 = time.perf_counter()
        data["pred"] = self.inferer(req)(data["image"].to(self.device), self.model)
        t2 = time.perf_counter()
        data = Compose(self.post_transforms(req))(data)
        pred = data["pred"]
        out = Path(req["output"]) if req.get("output") else None
        if out is None:
            fd, name = tempfile.mkstemp(suffix=".nii.gz", prefix="medfuse_fused_")
            os.close(fd)
            out = Path(name)
        tmp = out.with_name(f".{out.name}.part.nii.gz")
        write_nifti(pred.cpu().numpy(), pred.affine.cpu().numpy(), tmp)
        tmp.replace(out)
        t3 = time.perf_counter()
        info = {
            "label_names": {},
            "network": self.fusion_network,
            "task": self.fusion_task,
            "shape": [int(v) for v in pred.shape[1:]],
            "latencies": {"pre": round(t1 - t0, 3), "infer": round(t2 - t1, 3),
                          "post": round(t3 - t2, 3), "total": round(t3 - t0, 3)},
        }
        return str(out), info

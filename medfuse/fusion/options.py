"""``FuseOptions``: what a fusion job is asked to do, with its own types and checks.

The library owns the options: the ``medfuse fuse`` flags and the batch manifest's columns only
translate into :class:`FuseOptions` (see :func:`medfuse.fusion.run.options_from_flags`), and
:meth:`FuseOptions.check` reports a bad value in one line before any heavy work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from medfuse.errors import InputError

__all__ = [
    "FuseOptions",
    "FORMATS",
    "REGISTER_MODES",
    "REFERENCES",
    "AXES",
    "parse_window",
]

#: output formats a volume job writes.
FORMATS = ("dicom", "nifti", "png")
#: registration modes.
REGISTER_MODES = ("auto", "rigid", "affine", "none")
#: which input gives the output grid.
REFERENCES = ("auto", "a", "b")
#: slicing axes by name (0, 1, 2 are voxel axes).
AXES = ("axial", "coronal", "sagittal")

Register = Literal["auto", "rigid", "affine", "none"]
Reference = Literal["auto", "a", "b"]
Axis = Literal["axial", "coronal", "sagittal", 0, 1, 2]
Side = Literal["a", "b"]
Backend = Literal["eager", "onnxruntime"]
GpuPrecision = Literal["fp16", "fp32"]
#: network inference backends (:data:`medfuse.nets.BACKENDS`, listed here without importing torch).
BACKENDS = ("eager", "onnxruntime")


@dataclass
class FuseOptions:
    """Options of a fusion job (:func:`~medfuse.fusion.pipeline.fuse_volumes`,
    :func:`~medfuse.fusion.folders.fuse_folders`); the ``medfuse fuse`` flags.

    Values are normalised on construction: ``axis`` "0"/"1"/"2" become ints, ``formats`` may be a
    comma list ("nifti,png"), ``palette`` is upper-cased.

    Attributes:
        method: fusion method name, or "auto" (a shipped network when its validation figures
            beat the classical baselines, else "laplacian").
        task: "ct-mri" | "pet-mri" | "spect-mri" (inferred from the modalities when None).
        weights: weights file for a network method.
        reference: "a", "b" or "auto" (the anatomical input: the non-functional one, else the MR).
        register: "auto" | "rigid" | "affine" | "none".
        transform: ITK transform file to apply instead of registering (moving -> reference as ITK
            writes it: fixed -> moving, LPS).
        axis: "axial" | "coronal" | "sagittal" | 0 | 1 | 2.
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        batch_size: slices per batch (None: from free memory).
        window_a, window_b: window specs (see :func:`parse_window`), None for the modality preset.
        functional: "a" or "b" to colourise that input (PET and SPECT are functional anyway).
        palette: DICOM palette of the functional input.
        formats: subset of :data:`FORMATS` (None: all when an input is DICOM, else nifti and png).
        overwrite: replace an existing non-empty output folder.
        progress: show progress bars.
        series_a, series_b: SeriesInstanceUID to pick from folders holding several series.
        tile: network methods: fuse slices in overlapping tiles of this size (pixels; 0 = whole
            slices; None = the method's default, see docs/fuse.md "Tiling").
        tile_overlap: fraction of a tile shared with its neighbours (None: 0.25).
        net_backend: network methods: "eager" (PyTorch, the reference) or "onnxruntime" (CPU only,
            faster; needs ``pip install 'medfuse[ort]'``).
        gpu_precision: network methods on a GPU: "fp16" (float16 autocast) or "fp32".
        skip_unreadable: fuse a DICOM series without its unreadable files (recorded in run.json)
            instead of failing.
        allow_different_patients: fuse inputs whose PatientID (or PatientBirthDate) differ.
        review: write review.png (with the png format): A | B | fused | alignment check.
    """

    method: str = "auto"
    task: str | None = None
    weights: str | None = None
    reference: Reference = "auto"
    register: Register = "auto"
    transform: str | None = None
    axis: Axis = "axial"
    device: str = "auto"
    batch_size: int | None = None
    window_a: str | None = None
    window_b: str | None = None
    functional: Side | None = None
    palette: str = "PET"
    formats: tuple[str, ...] | None = None
    overwrite: bool = False
    progress: bool = True
    series_a: str | None = None
    series_b: str | None = None
    tile: int | None = None
    tile_overlap: float | None = None
    net_backend: Backend = "eager"
    gpu_precision: GpuPrecision = "fp16"
    skip_unreadable: bool = False
    allow_different_patients: bool = False
    review: bool = True

    def __post_init__(self) -> None:
        if str(self.axis) in ("0", "1", "2"):
            self.axis = int(self.axis)  # type: ignore[assignment]
        if isinstance(self.formats, str):
            self.formats = tuple(f.strip().lower() for f in self.formats.split(",") if f.strip())
        if self.formats is not None:
            self.formats = tuple(self.formats) or None
        self.palette = str(self.palette or "PET").upper()

    def check(self) -> None:
        """Check every value that needs no input data; one :class:`InputError` line on the first
        bad one (unknown palette, malformed window, bad format list, ...), naming the option by
        its ``medfuse fuse`` flag, which is how users (CLI, batch manifests) meet it."""
        from medfuse.transforms.colour import palette_lut

        if self.formats is not None:
            bad = [f for f in self.formats if f not in FORMATS]
            if bad:
                raise InputError(
                    f"--format takes a comma list of {', '.join(FORMATS)}, got {self.formats}"
                )
        if self.functional not in (None, "a", "b"):
            raise InputError(f"--functional must be a or b, not '{self.functional}'")
        if str(self.register).lower() not in REGISTER_MODES:
            raise InputError(
                f"--register must be auto, rigid, affine or none, not '{self.register}'"
            )
        if self.reference not in REFERENCES:
            raise InputError(f"--reference must be a, b or auto, not '{self.reference}'")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if self.tile is not None and self.tile != 0 and int(self.tile) < 16:
            raise InputError(f"--tile must be 0 (whole slices) or at least 16, got {self.tile}")
        if self.tile_overlap is not None and not 0.0 <= float(self.tile_overlap) < 1.0:
            raise InputError(f"--tile-overlap must be in [0, 1), got {self.tile_overlap}")
        if self.net_backend not in BACKENDS:
            raise InputError(
                f"--net-backend must be one of {', '.join(BACKENDS)}, not '{self.net_backend}'"
            )
        if self.gpu_precision not in ("fp16", "fp32"):
            raise InputError(f"--gpu-precision must be fp16 or fp32, not '{self.gpu_precision}'")
        palette_lut(self.palette)  # an unknown palette fails here
        parse_window(self.window_a)
        parse_window(self.window_b)


def parse_window(spec: str | None) -> Any:
    """A :class:`~medfuse.transforms.Window` from a ``--window-a/--window-b`` spec.

    Args:
        spec: None or "auto" (modality preset), a preset name ("ct-bone", "mr", "dicom", ...),
            "LEVEL:WIDTH" (e.g. "40:400") or "pLO:HI" percentiles (e.g. "p1:99").

    Raises:
        InputError: a malformed spec.
    """
    from medfuse.transforms import Window

    if spec is None or spec == "auto":
        return Window("auto")
    text = str(spec).strip()
    try:
        if text.lower().startswith("p") and ":" in text:
            lo, hi = (float(v) for v in text[1:].split(":"))
            return Window(None, percentiles=(lo, hi))
        if ":" in text:
            level, width = (float(v) for v in text.split(":"))
            return Window(None, level=level, width=width)
    except ValueError:
        raise InputError(
            f"bad window '{spec}': use a preset, LEVEL:WIDTH (40:400) or pLO:HI (p1:99)"
        ) from None
    return Window(text)

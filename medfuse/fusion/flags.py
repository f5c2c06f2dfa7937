"""The options of one ``medfuse fuse`` study, as click parameters.

This is the one table of them: ``medfuse fuse`` and ``medfuse batch`` add them to their command
line, and the batch manifests (:mod:`medfuse.batch.options`) convert and check their values with
the same click types. Each option's name is a :class:`~medfuse.fusion.pipeline.FuseOptions` field
(``formats`` as a comma list, ``axis`` as text) that
:func:`~medfuse.fusion.run.options_from_flags` turns into :class:`FuseOptions`. Torch-free: only
click is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["add_study_options", "study_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _opt(*decls: str, **attrs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return decls, attrs


def _choice(*decls: str, choices: list[str], default: str, help: str,
            **attrs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """An option taking one of ``choices``, its default shown in ``--help``."""
    return _opt(*decls, type=click.Choice(choices, **attrs), default=default, show_default=True,
                help=help)


#: (parameter declarations, click.Option keyword arguments) of each option, in ``--help`` order.
_TABLE: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    _opt(
        "--method",
        default="auto",
        show_default=True,
        metavar="NAME",
        help="A registered fusion method: average, max, laplacian, dwt, guided-filter, "
        "ecfusion, s3imfusion, network; auto = a shipped network whose model card shows it "
        "beating the classical baselines on the validation split, else laplacian.",
    ),
    _opt(
        "--task",
        type=click.Choice(["ct-mri", "pet-mri", "spect-mri"]),
        default=None,
        help="Task of the shipped network weights (default: from the modalities).",
    ),
    _opt(
        "--weights",
        type=click.Path(path_type=str, readable=False),
        default=None,
        help="Network weights file (.safetensors/.pt) for ecfusion, s3imfusion or network.",
    ),
    _choice(
        "--reference",
        choices=["auto", "a", "b"],
        default="auto",
        help="Whose grid the result takes; auto = the anatomical input (MR).",
    ),
    _choice(
        "--register",
        "register",
        choices=["auto", "rigid", "affine", "none"],
        default="auto",
        help="auto registers (rigid) when the frames of reference differ.",
    ),
    _opt(
        "--transform",
        type=click.Path(path_type=str, readable=False),
        default=None,
        help="Apply this ITK transform file (e.g. a previous run's transform.tfm).",
    ),
    _opt(
        "--axis",
        default="axial",
        show_default=True,
        type=click.Choice(["axial", "coronal", "sagittal", "0", "1", "2"]),
        help="Slice orientation the 2D method works on.",
    ),
    _opt("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    _opt(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Slices per batch (default: from free memory).",
    ),
    _opt(
        "--tile",
        type=click.IntRange(min=0),
        default=None,
        metavar="PIXELS",
        help="Networks: fuse slices in overlapping tiles of this size (0: whole slices; default: "
        "see docs/fuse.md).",
    ),
    _opt(
        "--tile-overlap",
        type=click.FloatRange(min=0.0, max=1.0, max_open=True),
        default=None,
        metavar="FRACTION",
        help="Networks: fraction of a tile shared with its neighbours [default: 0.25].",
    ),
    _choice(
        "--net-backend",
        choices=["eager", "onnxruntime"],
        default="eager",
        help="Networks on the CPU: eager PyTorch (the reference) or ONNX Runtime (faster, "
        "within 1e-5; pip install 'medfuse[ort]').",
    ),
    _choice(
        "--gpu-precision",
        choices=["fp16", "fp32"],
        default="fp16",
        help="Networks on a GPU: float16 autocast (fast; within 0.25 grey levels of float32 on "
        "the shipped weights) or float32.",
    ),
    _opt(
        "--window-a",
        default=None,
        metavar="SPEC",
        help="Window of A: preset (ct-brain, ct-bone, mr, dicom, ...), LEVEL:WIDTH or pLO:HI.",
    ),
    _opt("--window-b", default=None, metavar="SPEC", help="Window of B (as --window-a)."),
    _opt(
        "--functional",
        type=click.Choice(["a", "b"]),
        default=None,
        help="Colourise this input as the functional image (PET/SPECT are anyway).",
    ),
    _opt(
        "--palette",
        default="PET",
        show_default=True,
        type=click.Choice(
            ["PET", "HOT_IRON", "HOT_METAL_BLUE", "PET_20_STEP", "SPRING", "SUMMER", "FALL",
             "WINTER"],
            case_sensitive=False,
        ),
        help="DICOM standard palette for the functional input.",
    ),
    _opt(
        "--format",
        "formats",
        default=None,
        metavar="LIST",
        help="Comma list of dicom,nifti,png (default: all when an input is DICOM).",
    ),
    _opt("--series-a", default=None, metavar="UID", help="SeriesInstanceUID to pick in A."),
    _opt("--series-b", default=None, metavar="UID", help="SeriesInstanceUID to pick in B."),
    _opt(
        "--skip-unreadable",
        is_flag=True,
        help="Fuse a DICOM series without its unreadable files (listed in run.json) instead of "
        "failing.",
    ),
    _opt(
        "--allow-different-patients",
        is_flag=True,
        help="Fuse A and B although their PatientID or PatientBirthDate differ.",
    ),
)


def study_options() -> list[click.Option]:
    """New click options, one per study option, in ``--help`` order."""
    return [click.Option(list(decls), **attrs) for decls, attrs in _TABLE]


def add_study_options(f: F) -> F:
    """Decorator: add the study options to a click command function (in ``--help`` order)."""
    for decls, attrs in reversed(_TABLE):
        f = click.option(*decls, **attrs)(f)
    return f

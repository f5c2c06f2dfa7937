"""Fusion quality metrics that reproduce the field's reference implementations.

One function per metric on 2D numpy arrays ``(H, W)`` in 0..255, profiles that bind metric names
to the definitions of VIFB (``vifb``), CDDFuse (``cddfuse``) or the papers' tables (``paper``), a
:class:`FusionMetrics` scorer and :func:`aggregate`. See docs/metrics.md.
"""

from .basic import average_gradient, edge_intensity, entropy, spatial_frequency, standard_deviation
from .evaluate import EvaluationResult, evaluate_folders
from .fidelity import vif, vif_and_viff, vif_pair, viff
from .gradient import qabf
from .information import cross_entropy, mutual_information
from .perceptual import qcb, qcv
from .profiles import (
    DEFAULT_METRICS,
    HIGHER_IS_BETTER,
    PROFILES,
    FusionMetrics,
    aggregate,
    higher_is_better,
    to_luma,
)
from .similarity import correlation_coefficient, mse, psnr, rmse, scd, ssim, ssim_pair

__all__ = [
    "FusionMetrics",
    "aggregate",
    "evaluate_folders",
    "EvaluationResult",
    "PROFILES",
    "DEFAULT_METRICS",
    "HIGHER_IS_BETTER",
    "higher_is_better",
    "to_luma",
    "entropy",
    "standard_deviation",
    "spatial_frequency",
    "average_gradient",
    "edge_intensity",
    "mutual_information",
    "cross_entropy",
    "rmse",
    "mse",
    "psnr",
    "correlation_coefficient",
    "scd",
    "ssim",
    "ssim_pair",
    "qabf",
    "vif",
    "vif_pair",
    "viff",
    "vif_and_viff",
    "qcb",
    "qcv",
]

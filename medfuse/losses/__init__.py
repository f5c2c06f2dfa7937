"""medfuse.losses: the unsupervised fusion losses of the ECFusion and S3IMFusion papers.

Every loss is an ``nn.Module`` called as ``loss(fused, a, b)`` on ``(B, 1, H, W)`` tensors in the
networks' value range (``[-1, 1]``) and returns a scalar.
"""

from __future__ import annotations

from medfuse.losses.ecfusion import ECFusionLoss
from medfuse.losses.gradient import MaxGradientLoss
from medfuse.losses.intensity import IntensityLoss
from medfuse.losses.perceptual import BACKBONES, PerceptualLoss, VGGFeatures
from medfuse.losses.s3im import S3IMLoss
from medfuse.losses.s3imfusion import S3IMFusionLoss

__all__ = [
    "BACKBONES", "ECFusionLoss", "IntensityLoss", "MaxGradientLoss", "PerceptualLoss",
    "S3IMFusionLoss", "S3IMLoss", "VGGFeatures",
]

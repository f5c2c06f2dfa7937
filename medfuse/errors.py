"""One exception family for medfuse.

Every error a user can cause (bad input, impossible geometry, unwritable output, missing weights)
is a :class:`MedfuseError` whose message is one clear line naming the file and the problem. The
CLI turns these into ``medfuse: error: <message>`` and the exit code of the class, never a
traceback.

Exit codes (documented in docs/cli.md):

====  =====================================================
0     success
1     unexpected internal error (a bug: please report it)
2     usage error (bad options; click's own code)
3     input error (missing/unreadable/unsupported input)
4     geometry or registration error
5     output error (unwritable folder, refusing to overwrite)
6     model weights error (missing or invalid weights)
7     remote error (PACS/DICOMweb unreachable or refused)
8     batch: one or more studies failed (the others completed; see the batch report)
====  =====================================================
"""

from __future__ import annotations

__all__ = [
    "MedfuseError",
    "InputError",
    "GeometryError",
    "RegistrationError",
    "OutputError",
    "WeightsError",
    "RemoteError",
    "BatchError",
]


class MedfuseError(Exception):
    """Base class of all user-facing medfuse errors."""

    exit_code: int = 1


class InputError(MedfuseError):
    """An input file or folder is missing, unreadable, or not a supported image."""

    exit_code = 3


class GeometryError(MedfuseError):
    """Geometry is missing or inconsistent (no affine, non-overlapping fields of view, 2D vs 3D)."""

    exit_code = 4


class RegistrationError(GeometryError):
    """Registration failed to converge or produced an unusable transform."""

    exit_code = 4


class OutputError(MedfuseError):
    """Outputs cannot be written (unwritable folder, existing output without --overwrite)."""

    exit_code = 5


class WeightsError(MedfuseError):
    """Model weights are missing, corrupt, or do not match the network."""

    exit_code = 6


class RemoteError(MedfuseError):
    """A remote peer (PACS, DICOMweb server, Ray cluster) is unreachable or refused the request."""

    exit_code = 7


class BatchError(MedfuseError):
    """One or more studies of ``medfuse batch`` failed (the others ran; the report lists each)."""

    exit_code = 8

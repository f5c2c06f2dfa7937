"""Data shipped inside the package: the CT/MR demo pair (see ``demo/README.md``)."""

from __future__ import annotations

from pathlib import Path

from medfuse.errors import InputError

__all__ = ["DEMO_DIR", "demo_pair"]

#: folder of the demo pair: ``ct/`` and ``mr/`` DICOM series, README.md and LICENSE.txt.
DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_pair() -> tuple[Path, Path]:
    """Paths of the shipped demo series ``(ct, mr)``: a subset of the MRI-DIR phantom pair.

    Raises:
        InputError: the demo data is missing from this installation.
    """
    ct, mr = DEMO_DIR / "ct", DEMO_DIR / "mr"
    if not (ct.is_dir() and mr.is_dir()):
        raise InputError(f"{DEMO_DIR}: demo data missing from this medfuse installation")
    return ct, mr

"""Every file under ../shared/data/odd_dicom loads correctly or fails with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medfuse.errors import GeometryError, InputError, MedfuseError
from medfuse.io import load_volume

REPO = Path(__file__).resolve().parents[2]

NO_GEOMETRY = (GeometryError, "no geometry")
UNDECODABLE = (InputError, "cannot decode")
NOT_IMAGE = (InputError, "not a")

#: relative path -> expected (C, I, J, K) shape, or (error class, message fragment)
EXPECTED: dict[str, tuple] = {
    # single-slice CT/MR in many transfer syntaxes (J2K, JPEG-LS, RLE, JPEG lossless, big endian)
    "pydicom_data_pkg/693_J2KR.dcm": (1, 512, 512, 1),
    "pydicom_data_pkg/693_UNCR.dcm": (1, 512, 512, 1),
    "pydicom_data_pkg/MR-SIEMENS-DICOM-WithOverlays.dcm": (1, 484, 484, 1),
    "pydicom_data_pkg/MR2_J2KI.dcm": (1, 1024, 1024, 1),
    "pydicom_data_pkg/MR2_J2KR.dcm": (1, 1024, 1024, 1),
    "pydicom_data_pkg/MR2_UNCR.dcm": (1, 1024, 1024, 1),
    "pydicom_data_pkg/bad_sequence.dcm": (1, 512, 512, 1),
    "pydicom_data_pkg/explicit_VR-UN.dcm": (1, 512, 512, 1),
    "pydicom_pkg/CT_small.dcm": (1, 128, 128, 1),
    "pydicom_pkg/MR_small.dcm": (1, 64, 64, 1),
    "pydicom_pkg/MR_small_RLE.dcm": (1, 64, 64, 1),
    "pydicom_pkg/MR_small_bigendian.dcm": (1, 64, 64, 1),
    "pydicom_pkg/MR_small_jp2klossless.dcm": (1, 64, 64, 1),
    "pydicom_pkg/MR_small_jpeg_ls_lossless.dcm": (1, 64, 64, 1),
    "pydicom_pkg/MR_small_padded.dcm": (1, 64, 64, 1),
    "wg04/CT1_UNC.dcm": (1, 512, 512, 1),
    "wg04/CT2_UNC.dcm": (1, 512, 512, 1),
    "wg04/MR1_UNC.dcm": (1, 512, 512, 1),
    "wg04/MR2_UNC.dcm": (1, 1024, 1024, 1),
    "wg04/MR3_UNC.dcm": (1, 512, 512, 1),
    "wg04/MR4_UNC.dcm": (1, 512, 512, 1),
    # multi-frame with geometry: enhanced CT (per-frame functional groups), RT dose (grid offsets)
    "pydicom_data_pkg/eCT_Supplemental.dcm": (1, 512, 512, 2),
    "pydicom_pkg/rtdose.dcm": (1, 10, 10, 15),
    "pydicom_pkg/rtdose_1frame.dcm": (1, 10, 10, 1),
    # decodable but without patient geometry: planar NM / secondary capture / US, and enhanced MR
    # whose functional groups were stripped
    "pydicom_data_pkg/JPEG-LL.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/JPGLosslessP14SV1_1s_1f_8b.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/SC_rgb.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/emri_small.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/emri_small_RLE.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/emri_small_big_endian.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/emri_small_jpeg_2k_lossless.dcm": NO_GEOMETRY,
    "pydicom_data_pkg/emri_small_jpeg_ls_lossless.dcm": NO_GEOMETRY,
    "pydicom_pkg/JPEG2000.dcm": NO_GEOMETRY,
    "pydicom_pkg/JPGExtended.dcm": NO_GEOMETRY,
    "wg04/NM1_J2KR.dcm": NO_GEOMETRY,
    "wg04/NM1_JLSL.dcm": NO_GEOMETRY,
    "wg04/NM1_JPLL.dcm": NO_GEOMETRY,
    "wg04/NM1_RLE.dcm": NO_GEOMETRY,
    "wg04/NM1_UNC.dcm": NO_GEOMETRY,
    # broken or not images
    "pydicom_pkg/JPEG-lossy.dcm": UNDECODABLE,  # 12-bit JPEG Extended pylibjpeg cannot decode
    "pydicom_pkg/MR_truncated.dcm": (InputError, "truncated pixel data"),
    "pydicom_data_pkg/emri_small_jpeg_2k_lossless_too_short.dcm": (InputError, "truncated file"),
    "pydicom_data_pkg/liver.dcm": (InputError, "segmentation"),
    "pydicom_pkg/liver_1frame.dcm": (InputError, "segmentation"),
    "pydicom_pkg/meta_missing_tsyntax.dcm": NOT_IMAGE,
    "pydicom_pkg/no_meta.dcm": NOT_IMAGE,
    "pydicom_pkg/ExplVR_BigEndNoMeta.dcm": NOT_IMAGE,  # an RT Plan without file meta
    "pydicom_pkg/rtstruct.dcm": NOT_IMAGE,
    "pydicom_pkg/README.txt": NOT_IMAGE,
}


@pytest.fixture(scope="module")
def odd_dir(shared_data: Path) -> Path:
    return shared_data / "odd_dicom"


def test_every_file_is_listed(odd_dir: Path):
    found = {str(p.relative_to(odd_dir)) for p in odd_dir.rglob("*") if p.is_file()}
    assert found == set(EXPECTED), (
        f"unlisted: {found - set(EXPECTED)}, gone: {set(EXPECTED) - found}"
    )


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_odd_file_outcome(odd_dir: Path, rel: str):
    expected = EXPECTED[rel]
    path = odd_dir / rel
    if isinstance(expected[0], int):
        vol = load_volume(path)
        assert tuple(vol.shape) == expected
        assert vol.affine.shape == (4, 4)
        assert bool(vol.isfinite().all())
        return
    cls, fragment = expected
    with pytest.raises(MedfuseError) as err:
        load_volume(path)
    assert type(err.value) is cls
    msg = str(err.value)
    assert fragment in msg
    assert "\n" not in msg and str(path) in msg


def test_cli_reports_bad_files_one_line_each(odd_dir: Path):
    rels = [
        "pydicom_pkg/JPEG-lossy.dcm",
        "pydicom_pkg/MR_truncated.dcm",
        "wg04/NM1_UNC.dcm",
        "pydicom_pkg/rtstruct.dcm",
    ]
    paths = [str(odd_dir / r) for r in rels]
    res = subprocess.run(
        [sys.executable, "-m", "medfuse", "info", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == EXPECTED[rels[0]][0].exit_code  # the first failure's code
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == len(paths)
    for line, path in zip(lines, paths):
        assert line.startswith("medfuse: error: ") and path in line

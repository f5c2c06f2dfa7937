"""Build medfuse/data/demo (the shipped demo pair) from the MRI-DIR phantom pair in ../shared.

Usage: python3 scripts/make_demo.py medfuse/data/demo [jpegls|rle]
MR slices k 37-56 (20, mid-volume) and the CT slices k 36-59 (24) that cover them after
registration, re-encoded JPEG-LS lossless (checked pixel for pixel); headers untouched.
"""

import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import JPEGLSLossless, RLELossless

from medfuse.io import load_volume

src = Path("../shared/data/volumes/mridir_phantom_ct_mr")
dst = Path(sys.argv[1])
uid = sys.argv[2] if len(sys.argv) > 2 else "jpegls"
ts = JPEGLSLossless if uid == "jpegls" else RLELossless
for name, sub, k0, k1 in (("mr", "MR_T2", 37, 57), ("ct", "CT_every4th", 36, 60)):
    vol = load_volume(src / sub)
    out = dst / name
    out.mkdir(parents=True, exist_ok=True)
    for h in vol.meta["dicom_datasets"][k0:k1]:
        ds = pydicom.dcmread(h.filename)
        ref = ds.pixel_array.copy()
        ds.compress(ts)
        ds.save_as(out / Path(h.filename).name, enforce_file_format=True)
        back = pydicom.dcmread(out / Path(h.filename).name).pixel_array
        assert np.array_equal(back, ref), h.filename

"""Load a volume, window it and cut axial slices that keep their world position.

Usage: python3 examples/load_window_slice.py PATH [--preset auto] [--png out.png]
(PATH: DICOM series folder or file, NIfTI, MetaImage or NRRD; e.g.
../shared/data/volumes/mridir_phantom_ct_mr/CT_every4th)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's medfuse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("path")
    ap.add_argument("--preset", default="auto", help="window preset (auto, dicom, ct-brain, mr...)")
    ap.add_argument("--png", default=None, help="save the middle axial slice as PNG")
    args = ap.parse_args()

    from medfuse.io import load_volume, orientation_code, voxel_spacing
    from medfuse.transforms import ExtractSlices, Window

    vol = load_volume(args.path)
    aff = vol.affine.numpy()
    print(
        f"{vol.meta['modality'] or '?'} {tuple(vol.shape)} spacing {voxel_spacing(aff)} "
        f"orientation {orientation_code(aff)}"
    )
    win = Window(args.preset)(vol)
    print(f"window {win.meta['window']}")
    slices = ExtractSlices("axial")(win)
    mid = slices.shape[0] // 2
    print(
        f"{slices.shape[0]} axial slices of {tuple(slices.shape[2:])}; slice {mid} pixel (0, 0) "
        f"at RAS {slices.meta['slice_positions'][mid].round(2).tolist()} mm"
    )
    if args.png:
        import matplotlib.pyplot as plt

        plt.imsave(args.png, slices[mid, 0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

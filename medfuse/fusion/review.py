"""``review.png``: what was fused, at a glance - A | B | fused | alignment check, a row per slice.

:func:`volume_review` renders a few slices spread through the overlap of the two inputs plus the
slice with the most signal, one row each: source A (windowed, colourised if functional), source B,
the fused slice, and a registration check (A's edges drawn over B after registration); each row is
labelled with its position in mm along the slice normal (from the slice affine), under a header
naming the method and the task. :func:`pairs_review` does the same for a sample of 2D pairs.
Pillow only (its bundled scalable font), on a dark background, about 1600 px wide.

The layout is recorded in the PNG's ``medfuse-review`` text chunk (JSON: per row the slice index,
position and the four panel boxes), so tools and tests can find the panels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "PANEL",
    "ReviewRow",
    "choose_slices",
    "slice_position",
    "edge_overlay",
    "render_review",
    "volume_review",
    "pairs_review",
    "save_review",
    "read_layout",
    "write_fuse_review",
    "write_pairs_review",
]

#: the four columns of every row.
COLUMNS = ("A", "B", "fused", "check")
#: panel box size (px): each slice is scaled to fit it, keeping its physical aspect ratio.
PANEL = 340
_BG, _FG, _DIM, _ACCENT, _EDGE = (
    (18, 18, 20),
    (236, 236, 236),
    (150, 150, 156),
    (255, 196, 0),
    (0, 255, 90),
)
_MARGIN, _LABEL_W, _GAP = 16, 190, 8
_LAYOUT_KEY = "medfuse-review"


@dataclass
class ReviewRow:
    """One row of the review image.

    Attributes:
        label: big label (e.g. "S +12.5 mm" or a file name).
        sublabel: small lines under it (e.g. "slice 37 of 94", "most signal").
        panels: four (h, w, 3) uint8 images of one size (A, B, fused, check).
        info: JSON-ready facts recorded in the layout chunk (slice index, position).
        accent: draw the label in the accent colour.
    """

    label: str
    sublabel: Sequence[str]
    panels: Sequence[np.ndarray]
    info: dict[str, Any]
    accent: bool = False


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def _rgb(x: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) in [0, 1] float or uint8 -> (H, W, 3) uint8."""
    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(arr[..., None], 3, axis=-1) if arr.ndim == 2 else arr


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (H, W, 3) uint8 to ``size`` = (w, h) (Lanczos)."""
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def panel_size(
    shape_hw: tuple[int, int], spacing_hw: tuple[float, float] = (1.0, 1.0), box: int = PANEL
) -> tuple[int, int]:
    """(w, h) of a panel showing an (H, W) slice with pixel spacing (sh, sw) mm inside ``box``."""
    ph, pw = shape_hw[0] * spacing_hw[0], shape_hw[1] * spacing_hw[1]
    scale = box / max(ph, pw)
    return max(1, round(pw * scale)), max(1, round(ph * scale))


def edge_overlay(a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int] = _EDGE) -> np.ndarray:
    """Registration check: the strongest edges of ``a`` drawn in colour over ``b`` in grey.

    Args:
        a: (H, W) float in [0, 1] (A's luma on the reference grid, after registration).
        b: (H, W) float in [0, 1] (B).
        colour: edge colour.

    Returns:
        (H, W, 3) uint8. Edges: Gaussian-smoothed (sigma 1 px) Sobel magnitude of ``a`` above the
        88th percentile of its non-zero values (and above 5 % of the maximum).
    """
    from scipy import ndimage

    sa = ndimage.gaussian_filter(np.asarray(a, dtype=np.float32), 1.0)
    mag = np.hypot(ndimage.sobel(sa, 0), ndimage.sobel(sa, 1))
    nz = mag[mag > 1e-6]
    out = _rgb(np.asarray(b, dtype=np.float32) * 0.85)
    if nz.size:
        thr = max(float(np.percentile(nz, 88)), 0.05 * float(nz.max()))
        out[mag > thr] = colour
    return out


def slice_position(
    slice_affine: np.ndarray, shape_hw: tuple[int, int], k: int
) -> tuple[str, float]:
    """Where slice ``k`` lies: (patient-axis letter, mm) of its centre along the slice normal.

    The letter is the RAS axis closest to the normal ("S"/"I" for axial, "A"/"P" coronal,
    "L"/"R" sagittal) with the sign of the coordinate, e.g. ("S", 12.5), ("I", 30.0).

    Args:
        slice_affine: (4, 4) (h, w, n) -> RAS mm, as ExtractSlices records it.
        shape_hw: (H, W) of the slices.
        k: slice number.
    """
    aff = np.asarray(slice_affine, dtype=np.float64)
    centre = aff @ np.array([(shape_hw[0] - 1) / 2.0, (shape_hw[1] - 1) / 2.0, float(k), 1.0])
    normal = np.cross(aff[:3, 0], aff[:3, 1])
    axis = int(np.argmax(np.abs(normal)))
    value = float(centre[axis])
    letter = ("RL", "AP", "SI")[axis][0 if value >= 0 else 1]
    return letter, abs(value)


def choose_slices(
    a: np.ndarray, b: np.ndarray, fused: np.ndarray, rows: int = 4
) -> tuple[list[int], int]:
    """Slices to review: spread through the overlap of A and B, plus the one with most signal.

    Args:
        a: (N, H, W) A luma in [0, 1] on the fused grid.
        b: (N, H, W) B in [0, 1].
        fused: (N, H, W) fused luma (any scale).
        rows: number of slices.

    Returns:
        (sorted slice numbers, the most-signal slice). The overlap is the slices where both A
        and B have at least 2 % of their pixels above 0.05; the most-signal slice is the overlap
        slice with the largest fused sum; the others sit at evenly spaced quantiles of the overlap.
    """
    n = a.shape[0]
    cover_a = (a.reshape(n, -1) > 0.05).mean(1)
    cover_b = (b.reshape(n, -1) > 0.05).mean(1)
    overlap = np.flatnonzero((cover_a >= 0.02) & (cover_b >= 0.02))
    if overlap.size == 0:
        overlap = np.arange(n)
    total = np.asarray(fused, dtype=np.float64).reshape(n, -1).sum(1)
    best = int(overlap[np.argmax(total[overlap])])
    rows = max(1, min(rows, overlap.size))
    picks = [int(overlap[int(round((i + 0.5) / rows * overlap.size - 0.5))]) for i in range(rows)]
    nearest = int(np.argmin([abs(p - best) for p in picks]))
    picks[nearest] = best
    return sorted(set(picks)), best


def render_review(
    rows: Sequence[ReviewRow], title: str, subtitle: Sequence[str], column_titles: Sequence[str]
) -> Any:
    """Lay the rows out under a header; returns a ``PIL.Image`` (RGB) with the layout chunk info.

    Args:
        rows: the rows (all panels of one size).
        title: header line (method, task).
        subtitle: smaller header lines (inputs, windows, registration).
        column_titles: four column titles.
    """
    from PIL import Image, ImageDraw

    ph, pw = rows[0].panels[0].shape[:2]
    f_title, f_sub, f_col, f_lab, f_small = _font(30), _font(18), _font(21), _font(26), _font(17)
    head_h = 44 + 24 * len(subtitle) + 10
    col_h = 34
    width = _MARGIN * 2 + _LABEL_W + 4 * pw + 3 * _GAP
    height = head_h + col_h + len(rows) * (ph + _GAP) + _MARGIN
    img = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(img)
    draw.text((_MARGIN, _MARGIN - 4), title, font=f_title, fill=_FG)
    for i, line in enumerate(subtitle):
        draw.text((_MARGIN, _MARGIN + 36 + 24 * i), line, font=f_sub, fill=_DIM)
    x0 = _MARGIN + _LABEL_W
    for c, t in enumerate(column_titles):
        draw.text((x0 + c * (pw + _GAP) + 4, head_h + 4), t, font=f_col, fill=_FG)
    placed: list[dict[str, Any]] = []
    layout = {"columns": list(COLUMNS), "column_titles": list(column_titles), "rows": placed}
    for r, row in enumerate(rows):
        y = head_h + col_h + r * (ph + _GAP)
        draw.text((_MARGIN, y + 6), row.label, font=f_lab, fill=_ACCENT if row.accent else _FG)
        for i, line in enumerate(row.sublabel):
            draw.text((_MARGIN, y + 42 + 22 * i), line, font=f_small, fill=_DIM)
        boxes = []
        for c, panel in enumerate(row.panels):
            x = x0 + c * (pw + _GAP)
            img.paste(Image.fromarray(np.ascontiguousarray(panel)), (x, y))
            boxes.append([x, y, x + pw, y + ph])
        placed.append({**row.info, "label": row.label, "boxes": boxes})
    img.info[_LAYOUT_KEY] = json.dumps(layout)
    return img


def save_review(img: Any, path: str | os.PathLike) -> Path:
    """Write a rendered review as PNG, with its layout in the ``medfuse-review`` text chunk."""
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text(_LAYOUT_KEY, img.info.get(_LAYOUT_KEY, "{}"))
    p = Path(path)
    img.save(p, format="PNG", pnginfo=meta, compress_level=6)
    return p


def read_layout(path: str | os.PathLike) -> dict[str, Any]:
    """The layout recorded in a review PNG (columns, rows with slice, position and boxes)."""
    from PIL import Image

    with Image.open(path) as im:
        return json.loads(im.text.get(_LAYOUT_KEY, "{}"))


def _luma01(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) [0, 1] or uint8 -> (N, H, W) float32 luma in [0, 1]."""
    arr = np.asarray(x, dtype=np.float32)
    if np.asarray(x).dtype == np.uint8:
        arr = arr / 255.0
    if arr.shape[1] == 3:
        return arr[:, 0] * 0.299 + arr[:, 1] * 0.587 + arr[:, 2] * 0.114
    return arr[:, 0]


def _display(x: Any, functional: bool, palette: str) -> np.ndarray:
    """(N, C, H, W) [0, 1] windowed slices -> (N, H, W, 3) uint8 as the user sees the input."""
    import torch

    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if functional and t.shape[1] == 1:
        from medfuse.transforms.colour import colourise

        t = colourise(t, palette)
    arr = np.clip(np.rint(t.numpy() * 255.0), 0, 255).astype(np.uint8)
    return (
        np.repeat(arr, 3, axis=1).transpose(0, 2, 3, 1)
        if arr.shape[1] == 1
        else arr.transpose(0, 2, 3, 1)
    )


def volume_review(
    a: Any,
    b: Any,
    fused: Any,
    slice_affine: np.ndarray,
    *,
    functional: Sequence[bool] = (False, False),
    palette: str = "PET",
    title: str = "",
    subtitle: Sequence[str] = (),
    column_titles: Sequence[str] | None = None,
    rows: int = 4,
    box: int = PANEL,
) -> Any:
    """Render the review of a fused volume.

    Args:
        a: (N, C, H, W) source A on the fused grid, windowed to [0, 1] (C = 1, or 3 for RGB),
            as the pipeline cut it (before colourising).
        b: (N, C, H, W) source B, likewise.
        fused: (N, C, H, W) uint8 fused slices (what was written).
        slice_affine: (4, 4) (h, w, n) -> RAS mm of the slices.
        functional: ``(a, b)`` colourise that input with ``palette`` (as the fusion did).
        palette: DICOM palette name.
        title: header line, e.g. "medfuse fuse - method laplacian - task ct-mri".
        subtitle: smaller header lines.
        column_titles: four titles (default "A", "B", "fused", "A edges on B").
        rows: slices shown (spread through the overlap, the most-signal one included).
        box: panel box size in px.

    Returns:
        ``PIL.Image`` (save with :func:`save_review`).
    """
    a_np = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    b_np = b.detach().cpu().numpy() if hasattr(b, "detach") else np.asarray(b)
    f_np = fused.detach().cpu().numpy() if hasattr(fused, "detach") else np.asarray(fused)
    la, lb, lf = _luma01(a_np), _luma01(b_np), _luma01(f_np)
    if functional[0] and a_np.shape[1] == 1:  # the method fused the colourised input's luma
        la = _luma01(_display(a_np, True, palette).transpose(0, 3, 1, 2))
    if functional[1] and b_np.shape[1] == 1:
        lb = _luma01(_display(b_np, True, palette).transpose(0, 3, 1, 2))
    picks, best = choose_slices(la, lb, lf, rows)
    aff = np.asarray(slice_affine, dtype=np.float64)
    n, h, w = la.shape
    spacing = (float(np.linalg.norm(aff[:3, 0])), float(np.linalg.norm(aff[:3, 1])))
    size = panel_size((h, w), spacing, box)
    out_rows = []
    for k in picks:
        disp_a = _display(a_np[k : k + 1], functional[0], palette)[0]
        disp_b = _display(b_np[k : k + 1], functional[1], palette)[0]
        fk = f_np[k]
        disp_f = (
            np.repeat(fk, 3, 0).transpose(1, 2, 0) if fk.shape[0] == 1 else fk.transpose(1, 2, 0)
        )
        la_k, lb_k = (_fit(_rgb(x[k]), size)[..., 0] / 255.0 for x in (la, lb))
        panels = [
            _fit(disp_a, size),
            _fit(disp_b, size),
            _fit(np.ascontiguousarray(disp_f), size),
            edge_overlay(la_k, lb_k),
        ]
        letter, mm = slice_position(aff, (h, w), k)
        sub = [f"slice {k + 1} of {n}"] + (["most signal"] if k == best else [])
        out_rows.append(
            ReviewRow(
                f"{letter} {mm:.1f} mm",
                sub,
                panels,
                {"slice": k, "position_mm": [letter, round(mm, 3)]},
                accent=k == best,
            )
        )
    cols = column_titles or ("A", "B", "fused", "A edges (green) on B")
    return render_review(out_rows, title, subtitle, cols)


def _window_text(win: dict[str, Any]) -> str:
    if not win:
        return ""
    return f", window {win.get('preset', '')} {float(win['lower']):.4g}..{float(win['upper']):.4g}"


def write_fuse_review(
    path: str | os.PathLike,
    slices: Sequence[Any],
    fused: Any,
    slice_affine: np.ndarray,
    *,
    vols: Sequence[Any],
    paths: Sequence[str],
    windows: Sequence[dict[str, Any]],
    functional: Sequence[bool],
    palette: str,
    method: str,
    task: str | None,
    registration: dict[str, Any],
) -> Path:
    """Write ``review.png`` of a ``medfuse fuse`` run (the header from the run's facts).

    Args:
        path: the PNG to write.
        slices: ``[a, b]`` (N, C, H, W) windowed slices on the reference grid, [0, 1].
        fused: (N, C, H, W) uint8 fused slices as written.
        slice_affine: (4, 4) (h, w, n) -> RAS mm.
        vols: ``[a, b]`` the loaded inputs (for modality and series description).
        paths: ``[a, b]`` input paths (only their last component is shown).
        windows: ``[a, b]`` ``{"preset", "lower", "upper"}``.
        functional: ``[a, b]`` colourised flags.
        palette: palette of the functional input.
        method: method name.
        task: task name or None.
        registration: ``{"kind", "why", "mi"}`` (mi: ``{"before", "after"}`` nats or None).

    Returns:
        the written path. No patient name or ID is drawn.
    """

    mods = [str(v.meta.get("modality") or "") for v in vols]

    def who(n: int) -> str:
        desc = str(vols[n].meta.get("series_description") or "")
        name = Path(str(paths[n]).rstrip("/")).name
        what = f"{mods[n]} ({desc or name})" if mods[n] else (desc or name)
        colour = f", {palette} palette" if functional[n] else ""
        return f"{'AB'[n]}: {what}{_window_text(windows[n])}{colour}"

    reg = f"registration {registration.get('kind')}"
    if registration.get("why"):
        reg += f" ({registration['why']})"
    mi = registration.get("mi")
    if mi:
        reg += f", mutual information {mi['before']:.2f} -> {mi['after']:.2f} nats"
    n = int(np.shape(fused)[0])
    aff = np.asarray(slice_affine, dtype=np.float64)
    sp = " x ".join(f"{float(np.linalg.norm(aff[:3, i])):.3g}" for i in range(3))
    img = volume_review(
        slices[0],
        slices[1],
        fused,
        aff,
        functional=functional,
        palette=palette,
        title=f"medfuse fuse  |  method {method}  |  task {task or 'none'}",
        subtitle=[f"{who(0)}   |   {who(1)}", f"{reg}  |  {n} slices, {sp} mm"],
        column_titles=(
            f"A: {mods[0]}" if mods[0] else "A",
            f"B: {mods[1]}" if mods[1] else "B",
            f"fused: {method}",
            "A edges (green) on B",
        ),
    )
    return save_review(img, path)


def pairs_review(
    names: Sequence[str],
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    fused: Sequence[np.ndarray],
    *,
    title: str = "",
    subtitle: Sequence[str] = (),
    column_titles: Sequence[str] | None = None,
    rows: int = 4,
    box: int = PANEL,
) -> Any:
    """Render the review of a folder of fused 2D pairs: a row for each of ``rows`` sample pairs.

    Args:
        names: pair names (file names), in order.
        a: per pair (H, W) or (H, W, 3) uint8 source A (as read; RGB for PET/SPECT).
        b: per pair (H, W) or (H, W, 3) uint8 source B.
        fused: per pair the fused image as written (uint8 grey, or RGB for colour tasks).
        title, subtitle, column_titles, box: as :func:`volume_review`.
        rows: pairs shown, evenly spaced through the sorted names (first and last included).

    Returns:
        ``PIL.Image`` (save with :func:`save_review`).
    """
    idx = sorted(set(np.linspace(0, len(names) - 1, min(rows, len(names))).round().astype(int)))
    shapes = {np.asarray(a[i]).shape[:2] for i in idx}
    size = panel_size(max(shapes, key=lambda s: s[0] * s[1]), (1.0, 1.0), box)
    out_rows = []
    for i in idx:
        imgs = [_rgb(np.asarray(x[i])) for x in (a, b, fused)]
        la, lb = (_luma01(x.transpose(2, 0, 1)[None])[0] for x in imgs[:2])
        panels = [_fit(x, size) for x in imgs]
        ea, eb = (_fit(_rgb(x), size)[..., 0] / 255.0 for x in (la, lb))
        panels.append(edge_overlay(ea, eb))
        out_rows.append(
            ReviewRow(
                names[i],
                [f"pair {i + 1} of {len(names)}"],
                panels,
                {"pair": int(i), "name": names[i]},
            )
        )
    cols = column_titles or ("A", "B", "fused", "A edges (green) on B")
    return render_review(out_rows, title, subtitle, cols)


def write_pairs_review(
    path: str | os.PathLike,
    names: Sequence[str],
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    fused: Sequence[np.ndarray],
    method: str,
    task: str | None,
) -> Path:
    """Write ``review.png`` of a 2D-folder run (``medfuse fuse A/ B/``): :func:`pairs_review`."""
    img = pairs_review(
        names,
        a,
        b,
        fused,
        title=f"medfuse fuse (2D pairs)  |  method {method}  |  task {task or 'none'}",
        subtitle=[f"{len(names)} pairs; rows: a sample of {min(4, len(names))}, by file name"],
        column_titles=("A", "B", f"fused: {method}", "A edges (green) on B"),
    )
    return save_review(img, path)

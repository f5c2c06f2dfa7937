"""Score folders of fused images against their sources: the library behind ``medfuse evaluate``.

Images are matched by file name (without extension) across the source folders ``a`` and ``b`` and
every fused folder. Supported entries: 2D images (PNG, TIFF, BMP; grey, RGB or palette, 8-bit or
float in 0..255) and volumes (NIfTI, MetaImage, NRRD files, DICOM files, or DICOM series
sub-folders; read with :func:`medfuse.io.load_volume`) scored slice by slice along the voxel axis
k. Outputs are written atomically into the output folder: ``per_image.csv``, ``summary.csv``,
``summary.md``, ``evaluate.json`` and one ``boxplot_<metric>.png`` per metric.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import GeometryError, InputError, OutputError
from medfuse.io.interrupts import critical

from .profiles import FusionMetrics, aggregate, higher_is_better

__all__ = [
    "IMAGE_SUFFIXES",
    "VOLUME_SUFFIXES",
    "EvaluationResult",
    "find_images",
    "match_folders",
    "evaluate_folders",
    "summary_markdown",
    "summary_text",
    "OUTPUT_FILES",
    "check_method_names",
    "check_results_dir",
    "write_results",
]

#: 2D image file suffixes read with Pillow.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
#: volume file suffixes read with medfuse.io.load_volume (plus DICOM series folders).
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
#: fixed output file names (box plots are ``boxplot_<metric>.png``).
OUTPUT_FILES = ("per_image.csv", "summary.csv", "summary.md", "evaluate.json")


@dataclass
class EvaluationResult:
    """What :func:`evaluate_folders` computed.

    Attributes:
        profile: the metric profile used.
        metrics: metric names, in column order.
        methods: fused-method names, in the order given.
        rows: per-image rows ``{"method", "image", <metric>: value}``.
        summary: ``{method: {metric: {"mean", "median", "std", "min", "max", "n"}}}``.
        files: the written output files.
        notes: remarks (skipped constant slices, rescaled volumes).
        volume: volume mode (:func:`medfuse.fusion.scoring.evaluate_volumes`): per method the
            whole-volume metrics, ``{method: {"ISE": value}}``; empty for 2D images.
        interslice: volume mode: per method ``{"positions_mm": [...], "per_gap": [...]}``, the
            inter-slice excess of each neighbouring-slice gap (plotted as ``interslice.png``).
        sources: volume mode: per method, what it was scored against (paths, windows, transform).
    """

    profile: str
    metrics: tuple[str, ...]
    methods: tuple[str, ...]
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, float]]]
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    volume: dict[str, dict[str, float]] = field(default_factory=dict)
    interslice: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    sources: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def volume_metrics(self) -> tuple[str, ...]:
        """Names of the whole-volume metrics (``("ISE",)`` in volume mode, else empty)."""
        return tuple(dict.fromkeys(k for v in self.volume.values() for k in v))


def _key(p: Path) -> str | None:
    name = p.name
    low = name.lower()
    if p.is_dir():
        return None if name.startswith(".") else name
    for suf in IMAGE_SUFFIXES + VOLUME_SUFFIXES:
        if low.endswith(suf):
            return name[: -len(suf)]
    return None


def find_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Map image name (file name without extension) -> path for the usable entries of ``folder``.

    Files with other extensions and hidden entries are ignored; sub-folders are DICOM series.

    Raises:
        InputError: the folder is missing, holds no usable entry, or two entries share a name.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: no such folder")
    found: dict[str, Path] = {}
    dupes: list[str] = []
    for p in sorted(d.iterdir()):
        if p.name.startswith("."):
            continue
        k = _key(p)
        if k is None:
            continue
        if k in found:
            dupes.append(f"{found[k].name}/{p.name}")
        found[k] = p
    if dupes:
        raise InputError(f"{d}: several files share a name: {', '.join(dupes[:10])}")
    if not found:
        raise InputError(f"{d}: no PNG/TIFF/BMP image, volume or DICOM series found")
    return found


def match_folders(folders: Mapping[str, str | os.PathLike]) -> dict[str, dict[str, Path]]:
    """Match entries by name across labelled folders.

    Args:
        folders: ``{label: folder}``, e.g. ``{"a": ..., "b": ..., "F_avg": ...}``.

    Returns:
        ``{name: {label: path}}`` for every name, sorted by name.

    Raises:
        InputError: one line listing the names missing from some folder.
    """
    found = {label: find_images(f) for label, f in folders.items()}
    names = sorted(set().union(*(set(v) for v in found.values())))
    missing = []
    for label, entries in found.items():
        absent = [n for n in names if n not in entries]
        if absent:
            more = f" (+{len(absent) - 8} more)" if len(absent) > 8 else ""
            missing.append(f"{label} ({folders[label]}) lacks {', '.join(absent[:8])}{more}")
    if missing:
        raise InputError("image names do not match across folders: " + "; ".join(missing))
    return {n: {label: found[label][n] for label in folders} for n in names}


def _read_image(p: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            if im.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr"):
                im = im.convert("RGB")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"{p}: cannot read image ({exc})") from None
    arr = arr.astype(np.float64)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise InputError(f"{p}: expected a grey or RGB 2D image, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InputError(
            f"{p}: values {arr.min():g}..{arr.max():g} are outside 0..255 "
            "(16-bit images are not supported; save 8-bit images)"
        )
    return arr


def _read_volume(p: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """(C, I, J, K) array in 0..255, affine, and whether it was min-max rescaled."""
    from medfuse.io import load_volume

    vol = load_volume(p)
    arr = np.asarray(vol.detach().cpu().numpy(), dtype=np.float32)  # slices become float64 later
    affine = np.asarray(vol.affine, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 255:
        return arr, affine, False
    scaled = (
        np.zeros_like(arr) if hi == lo else (arr - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    )
    return scaled, affine, True


def _is_volume(p: Path) -> bool:
    return p.is_dir() or p.name.lower().endswith(VOLUME_SUFFIXES)


def _items(
    name: str, paths: Mapping[str, Path], notes: list[str]
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Yield ``(image name, {label: 2D array})`` for one matched name (slices for volumes)."""
    kinds = {label: _is_volume(p) for label, p in paths.items()}
    if len(set(kinds.values())) > 1:
        listing = ", ".join(
            f"{p} ({'volume' if kinds[lb] else '2D image'})" for lb, p in paths.items()
        )
        raise InputError(f"{name}: mixes 2D images and volumes: {listing}")
    if not next(iter(kinds.values())):
        imgs = {label: _read_image(p) for label, p in paths.items()}
        shapes = {label: a.shape[:2] for label, a in imgs.items()}
        if len(set(shapes.values())) > 1:
            raise InputError(
                f"{name}: image sizes differ: "
                + ", ".join(f"{paths[lb]} {s[1]}x{s[0]}" for lb, s in shapes.items())
            )
        yield name, imgs
        return
    vols, ref_label = {}, None
    for label, p in paths.items():
        arr, affine, scaled = _read_volume(p)
        if scaled:
            notes.append(f"{p}: values outside 0..255, min-max rescaled to 0..255")
        if ref_label is None:
            ref_label = label
        else:
            ra, raff = vols[ref_label]
            if arr.shape[1:] != ra.shape[1:] or not np.allclose(affine, raff, atol=1e-3):
                raise GeometryError(
                    f"{p}: voxel grid {arr.shape[1:]} differs from {paths[ref_label]} "
                    f"{ra.shape[1:]} (shape or affine); resample onto one grid first"
                )
        vols[label] = (arr, affine)
    k_count = next(iter(vols.values()))[0].shape[3]
    skipped = 0
    for k in range(k_count):
        sl = {
            label: (v[0][0, :, :, k] if v[0].shape[0] == 1 else v[0][:, :, :, k])
            for label, v in vols.items()
        }
        if any(np.ptp(sl[s]) == 0 for s in ("a", "b") if s in sl):
            skipped += 1
            continue
        yield f"{name}:k{k:03d}", sl
    if skipped:
        notes.append(f"{name}: {skipped} of {k_count} slices skipped (a source slice is constant)")


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "nan"
    a = abs(v)
    if a >= 1000:
        return f"{v:.2f}"
    if a >= 10:
        return f"{v:.3f}"
    return f"{v:.4f}"


def _best(summary: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str) -> set[str]:
    means = {m: s[metric]["mean"] for m, s in summary.items() if math.isfinite(s[metric]["mean"])}
    if len(summary) < 2 or not means:
        return set()
    target = max(means.values()) if higher_is_better(metric) else min(means.values())
    return {m for m, v in means.items() if v == target}


def summary_markdown(result: EvaluationResult) -> str:
    """A Markdown table like the papers' Tables 1-3: one row per metric (with its direction),
    one column per method, ``mean ± std`` over the images, the best mean in bold."""
    methods = list(result.methods)
    n = {m: max((s["n"] for s in result.summary[m].values()), default=0) for m in methods}
    lines = [
        f"Profile `{result.profile}`; mean ± std over the images "
        f"({', '.join(f'{m}: n={n[m]}' for m in methods)}); best in bold.",
        "",
        "| Metric | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for metric in result.metrics:
        best = _best(result.summary, metric)
        cells = []
        for m in methods:
            s = result.summary[m][metric]
            c = f"{_fmt(s['mean'])} ± {_fmt(s['std'])}"
            cells.append(f"**{c}**" if m in best else c)
        arrow = "↑" if higher_is_better(metric) else "↓"
        lines.append(f"| {metric} {arrow} | " + " | ".join(cells) + " |")
    for metric, vcells in _volume_cells(result):
        lines.append(
            f"| {metric} ↓ (volume) | "
            + " | ".join(f"**{c}**" if b else c for c, b in vcells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _volume_cells(result: EvaluationResult) -> list[tuple[str, list[tuple[str, bool]]]]:
    """``(metric, [(cell text, is best)] per method)`` for the whole-volume metrics."""
    out = []
    for metric in result.volume_metrics:
        vals = {m: result.volume.get(m, {}).get(metric, math.nan) for m in result.methods}
        finite = [v for v in vals.values() if math.isfinite(v)]
        best = min(finite) if len(finite) > 1 else None
        out.append(
            (
                metric,
                [(_fmt(vals[m]), best is not None and vals[m] == best) for m in result.methods],
            )
        )
    return out


def summary_text(result: EvaluationResult, style: Callable[[str], str] | None = None) -> str:
    """A plain-text table (metrics x methods, mean ± std); ``style`` decorates the best cells
    (e.g. ``lambda s: click.style(s, bold=True)``)."""
    methods = list(result.methods)
    rows = [["metric"] + methods]
    bold: list[list[bool]] = [[False] * (len(methods) + 1)]
    for metric in result.metrics:
        best = _best(result.summary, metric)
        rows.append(
            [f"{metric} {'↑' if higher_is_better(metric) else '↓'}"]
            + [
                f"{_fmt(result.summary[m][metric]['mean'])} ± "
                f"{_fmt(result.summary[m][metric]['std'])}"
                for m in methods
            ]
        )
        bold.append([False] + [m in best for m in methods])
    for metric, vcells in _volume_cells(result):
        rows.append([f"{metric} ↓ (volume)"] + [c for c, _ in vcells])
        bold.append([False] + [b for _, b in vcells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r, b in zip(rows, bold):
        cells = []
        for i, c in enumerate(r):
            padded = c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
            cells.append(style(padded) if (style and b[i]) else padded)
        out.append("  ".join(cells))
    return "\n".join(out) + "\n"


def _boxplot(path: Path, metric: str, result: EvaluationResult) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data, labels = [], []
    for m in result.methods:
        vals = [
            float(r[metric])
            for r in result.rows
            if r["method"] == m and math.isfinite(float(r[metric]))
        ]
        data.append(vals)
        labels.append(m)
    fig = Figure(figsize=(max(3.0, 1.1 * len(labels) + 1.5), 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20 if len(labels) > 4 else 0)
    ax.set_title(
        f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better, "
        f"profile {result.profile})",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")


def _interslice_plot(path: Path, result: EvaluationResult) -> None:
    """Inter-slice excess of each neighbouring-slice gap by its position, one line per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for m, prof in result.interslice.items():
        ise = result.volume.get(m, {}).get("ISE", math.nan)
        ax.plot(prof["positions_mm"], prof["per_gap"], lw=1.2, label=f"{m} (ISE {_fmt(ise)})")
    ax.set_xlabel("slice gap position along the slice normal (mm)")
    ax.set_ylabel("excess / source change")
    ax.set_title("inter-slice excess per slice gap (lower is better; 0 = no flicker)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def _json_safe(x: object) -> object:
    """NaN/inf -> None, recursively, so the JSON stays standard."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _write_outputs(tmp: Path, result: EvaluationResult, plots: bool) -> list[str]:
    names = []
    with open(tmp / "per_image.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "image", *result.metrics])
        for r in result.rows:
            w.writerow([r["method"], r["image"], *(repr(float(r[m])) for m in result.metrics)])
    with open(tmp / "summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["method", "metric", "higher_is_better", "mean", "median", "std", "min", "max", "n"]
        )
        for m in result.methods:
            for metric in result.metrics:
                s = result.summary[m][metric]
                w.writerow(
                    [
                        m,
                        metric,
                        higher_is_better(metric),
                        *(repr(float(s[k])) for k in ("mean", "median", "std", "min", "max")),
                        s["n"],
                    ]
                )
            for metric, v in result.volume.get(m, {}).items():  # one value per volume
                w.writerow(
                    [
                        m,
                        metric,
                        False,
                        *([repr(float(v))] * 2),
                        repr(0.0),
                        *([repr(float(v))] * 2),
                        1,
                    ]
                )
    (tmp / "summary.md").write_text(summary_markdown(result), encoding="utf-8")
    record = {
        "profile": result.profile,
        "metrics": list(result.metrics),
        "methods": list(result.methods),
        "images": len({r["image"] for r in result.rows}),
        "summary": result.summary,
        "notes": result.notes,
    }
    if result.volume:
        record.update(volume=result.volume, interslice=result.interslice, sources=result.sources)
    (tmp / "evaluate.json").write_text(json.dumps(_json_safe(record), indent=2), encoding="utf-8")
    names += list(OUTPUT_FILES)
    if plots:
        for metric in result.metrics:
            fname = f"boxplot_{metric}.png"
            _boxplot(tmp / fname, metric, result)
            names.append(fname)
        if result.interslice:
            _interslice_plot(tmp / "interslice.png", result)
            names.append("interslice.png")
    return names


def evaluate_folders(
    a: str | os.PathLike,
    b: str | os.PathLike,
    fused: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    profile: str = "vifb",
    metrics: Sequence[str] | str | None = None,
    overwrite: bool = False,
    plots: bool = True,
    progress: bool | None = None,
) -> EvaluationResult:
    """Score every fused folder against the sources and write the tables and plots.

    Args:
        a: folder of source A images (CT, or PET/SPECT: RGB is scored on its BT.601 luma).
        b: folder of source B images (MRI).
        fused: ``{method name: folder}`` of fused images, in table-column order.
        out_dir: output folder (created); ``None`` computes without writing.
        profile: ``"vifb"``, ``"cddfuse"`` or ``"paper"``.
        metrics: metric names (default: the profile's defaults).
        overwrite: replace existing output files in ``out_dir``.
        plots: write one box plot per metric.
        progress: show a progress bar (``None``: only on a terminal).

    Returns:
        the :class:`EvaluationResult`.

    Raises:
        ValueError: unknown profile or metric, or no fused folder.
        InputError: missing folders, unmatched names or sizes, unreadable images.
        GeometryError: volumes on different voxel grids.
        OutputError: the output folder cannot be written, or holds results and not ``overwrite``.
    """
    from tqdm import tqdm

    check_method_names(fused, "fused folder")
    fm = FusionMetrics(profile=profile, metrics=metrics)
    out = check_results_dir(out_dir, overwrite)
    matched = match_folders({"a": a, "b": b, **fused})
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    disable = None if progress is None else not progress
    for name, paths in tqdm(matched.items(), desc="evaluate", unit="image", disable=disable):
        for item, imgs in _items(name, paths, notes):
            for method in fused:
                try:
                    scores = fm(imgs[method], imgs["a"], imgs["b"])
                except ValueError as exc:
                    raise InputError(f"{paths[method]}: {exc}") from None
                rows.append({"method": method, "image": item, **scores})
    if not rows:
        raise InputError("nothing to score: every slice of every volume has a blank source")
    summary = {}
    for method in fused:
        agg = aggregate([r for r in rows if r["method"] == method])
        summary[method] = {m: agg[m] for m in fm.metrics}
    result = EvaluationResult(profile, fm.metrics, tuple(fused), rows, summary, notes=notes)
    if out is not None:
        write_results(out, result, plots)
    return result


def check_method_names(names: Collection[str], what: str) -> None:
    """Method (table column) names: at least one, none empty, "a", "b" or holding a "/".

    Raises:
        ValueError: no name, or an invalid one.
    """
    if not names:
        raise ValueError(f"give at least one {what}")
    bad = [m for m in names if m in ("a", "b") or not m or "/" in m]
    if bad:
        raise ValueError(f"invalid method name(s): {', '.join(map(repr, bad))}")


def check_results_dir(out_dir: str | os.PathLike | None, overwrite: bool) -> Path | None:
    """The output folder, checked before any work: not a file, and no results unless overwrite.

    Raises:
        OutputError: ``out_dir`` is a file, or holds results and not ``overwrite``.
    """
    if out_dir is None:
        return None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and not overwrite:
        clash = [
            p.name
            for p in out.iterdir()
            if p.name in OUTPUT_FILES + ("interslice.png",)
            or (p.name.startswith("boxplot_") and p.suffix == ".png")
        ]
        if clash:
            raise OutputError(
                f"{out}: already holds results ({', '.join(sorted(clash)[:4])}); "
                "use --overwrite or another folder"
            )
    return out


def write_results(out: Path, result: EvaluationResult, plots: bool = True) -> None:
    """Write the tables, JSON and plots of ``result`` into ``out`` atomically (sets ``files``).

    Everything is written into a temporary folder inside ``out`` and then renamed into place. A
    stop by signal (:mod:`medfuse.io.interrupts`, installed by the CLI) never lands between the
    creation of that folder and the ``try`` that removes it, nor inside the renames: it leaves
    either none of the new files or all of them, and no temporary folder.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    made: list[Path] = []

    def drop_made() -> None:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)

    with critical(on_exit=drop_made):
        try:
            out.mkdir(parents=True, exist_ok=True)
            made.append(Path(tempfile.mkdtemp(prefix=".evaluate-", dir=out)))
        except OSError as exc:
            raise OutputError(f"{out}: cannot create output folder ({exc.strerror})") from None
    tmp = made[0]
    try:
        names = _write_outputs(tmp, result, plots)
        with critical():  # all the new files or none
            for n in names:
                os.replace(tmp / n, out / n)
        result.files = [out / n for n in names]
    except OSError as exc:
        raise OutputError(f"{out}: cannot write results ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

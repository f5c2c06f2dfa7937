"""Batch manifests: one study per row (input A, input B, output folder, fuse options).

CSV: a header row with the columns ``a``, ``b``, ``out`` (required), ``id`` (optional) and any
``medfuse fuse`` option (``method``, ``register``, ``window-a``, ...); an empty cell leaves that
option at its default. JSON: a list of row objects, or ``{"defaults": {...}, "studies": [...]}``.
Relative paths (inputs, outputs, ``weights``, ``transform``) resolve against the manifest's folder.

Option values, lowest precedence first: ``medfuse fuse``'s defaults, the JSON ``defaults``, the
``batch`` command line, the row. The whole manifest is checked before any study runs; a problem is
one :class:`~medfuse.errors.InputError` line naming the file and the row. Whether the inputs can be
read is only found out when a study runs (a per-study failure).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse.errors import InputError, OutputError
from medfuse.io.guard import check_output_place, inside

__all__ = ["Study", "load_manifest", "REQUIRED_COLUMNS"]

#: columns every row needs.
REQUIRED_COLUMNS = ("a", "b", "out")
_ID = "id"


@dataclass
class Study:
    """One manifest row, resolved and checked.

    Attributes:
        row: 1-based row number in the manifest (the header of a CSV is not counted).
        id: the row's ``id``, else its ``out`` as written.
        a, b: absolute input paths.
        out: absolute output folder.
        flags: ``medfuse fuse`` options by click parameter name (defaults merged in).
    """

    row: int
    id: str
    a: str
    b: str
    out: str
    flags: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what is sent to the workers)."""
        return {"row": self.row, "id": self.id, "a": self.a, "b": self.b, "out": self.out,
                "flags": dict(self.flags)}


def _options(entries: dict[str, Any], where: str) -> dict[str, Any]:
    import click

    from medfuse.batch.options import convert_option

    out: dict[str, Any] = {}
    for key, value in entries.items():
        try:
            name, v = convert_option(key, value)
        except KeyError as exc:
            raise InputError(f"{where}: {exc.args[0]}") from None
        except click.BadParameter as exc:
            raise InputError(f"{where}: option '{key}': {exc.message}") from None
        if v is not None:
            out[name] = v
    return out


def _rows_csv(path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    reader = csv.DictReader(text.splitlines(), skipinitialspace=True)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InputError(f"{path}: empty manifest (need a header row with a, b, out)")
    if len(set(header)) != len(header) or "" in header:
        raise InputError(f"{path}: line 1 (header): empty or repeated column names {header}")
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{path}: line 1 (header): missing column {', '.join(repr(c) for c in missing)} "
            f"(need {', '.join(REQUIRED_COLUMNS)})"
        )
    rows = []
    for n, rec in enumerate(reader, start=1):
        where = f"{path}: row {n} (line {reader.line_num})"
        if None in rec:
            n_values = len(header) + len(rec[None])
            raise InputError(f"{where}: {n_values} values for {len(header)} columns")
        rows.append((where, {k: v for k, v in rec.items() if v is not None}))
    return {}, rows


def _rows_json(path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    defaults: Any = {}
    if isinstance(data, dict):
        extra = sorted(set(data) - {"defaults", "studies"})
        if extra or "studies" not in data:
            raise InputError(
                f"{path}: a JSON manifest is a list of rows or an object with 'studies' and "
                f"optional 'defaults' (found keys: {', '.join(sorted(data)) or 'none'})"
            )
        defaults, data = data.get("defaults") or {}, data["studies"]
        if not isinstance(defaults, dict):
            raise InputError(f"{path}: 'defaults' must be an object of fuse options")
    if not isinstance(data, list):
        raise InputError(f"{path}: 'studies' must be a list of row objects")
    rows = []
    for n, rec in enumerate(data, start=1):
        where = f"{path}: row {n}"
        if not isinstance(rec, dict):
            raise InputError(
                f"{where}: expected an object with a, b, out, got {type(rec).__name__}"
            )
        rows.append((where, rec))
    return defaults, rows


def load_manifest(path: str | os.PathLike, defaults: dict[str, Any] | None = None) -> list[Study]:
    """Read and check a whole manifest.

    Args:
        path: a ``.csv`` or ``.json`` manifest.
        defaults: fuse options from the ``batch`` command line (click parameter names, converted
            values, paths already absolute); they override the JSON ``defaults`` section.

    Returns:
        the studies in manifest order.

    Raises:
        InputError: unreadable manifest, a row without a required column, an unknown option or a
            bad value, two rows with the same id or output folder (symlinks followed; one line
            naming file and row).
        OutputError: an output folder is, holds or sits inside an input of any row or the
            manifest, or is the current folder, a parent of it or a root
            (:func:`medfuse.io.guard.check_output_place`).
    """
    from medfuse.batch.options import absolute_paths

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such manifest file")
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InputError(f"{p}: a manifest is a .csv or .json file")
    file_defaults, rows = (_rows_csv if suffix == ".csv" else _rows_json)(p)
    if not rows:
        raise InputError(f"{p}: the manifest lists no study")
    base = p.absolute().parent
    merged = absolute_paths(_options(file_defaults, f"{p}: defaults"), base)
    merged.update(defaults or {})
    studies: list[Study] = []
    seen_out: dict[Path, int] = {}
    seen_id: dict[str, int] = {}
    for n, (where, rec) in enumerate(rows, start=1):
        values = {str(k).strip(): v for k, v in rec.items()}
        for col in REQUIRED_COLUMNS:
            v = values.get(col)
            if not isinstance(v, str) or not v.strip():
                raise InputError(f"{where}: missing '{col}' (every row needs a, b, out)")
        a, b, out = (os.path.abspath(base / Path(values[c].strip()).expanduser())
                     for c in REQUIRED_COLUMNS)
        sid = str(values.get(_ID) or "").strip() or values["out"].strip()
        flags = dict(merged)
        row_opts = {k: v for k, v in values.items() if k not in (*REQUIRED_COLUMNS, _ID)}
        flags.update(absolute_paths(_options(row_opts, where), base))
        try:  # symlinks followed: o3/x and o3link/x are one folder
            real = check_output_place(out, (a, b), "an input")
            check_output_place(out, (p,), "the manifest")
        except OutputError as exc:
            raise OutputError(f"{where}: {exc}") from None
        if real in seen_out:
            raise InputError(f"{where}: output folder {out} is also row {seen_out[real]}'s")
        if sid in seen_id:
            raise InputError(f"{where}: id '{sid}' is also row {seen_id[sid]}'s")
        seen_out[real], seen_id[sid] = n, n
        studies.append(Study(row=n, id=sid, a=a, b=b, out=out, flags=flags))
    _check_cross_rows(p, studies)
    return studies


def _check_cross_rows(manifest: Path, studies: list[Study]) -> None:
    """Refuse an output folder that is, holds or sits inside another row's input."""
    real = [(Path(s.out).resolve(), [Path(x).resolve() for x in (s.a, s.b)]) for s in studies]
    for s, (out, _) in zip(studies, real):
        for other, (_, ins) in zip(studies, real):
            if other is not s and any(inside(out, i) or inside(i, out) for i in ins):
                raise OutputError(
                    f"{manifest}: row {s.row}: output folder {s.out} overlaps row {other.row}'s "
                    "input; choose another folder"
                )

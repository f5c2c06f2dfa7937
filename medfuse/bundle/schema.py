"""Offline validation of MONAI bundle metadata.

``python -m monai.bundle verify_metadata`` downloads the schema named in the metadata's
``"schema"`` URL, which fails offline. medfuse ships an equivalent JSON Schema
(``metadata_schema.json`` next to this module: the fields, types and required keys of MONAI's
``meta_schema_20240725``) and validates against it with ``jsonschema``. MONAI's own command works
offline too when pointed at the shipped file (it skips the download when the file exists)::

    python -m monai.bundle verify_metadata --meta_file DIR/configs/metadata.json \\
        --filepath "$(python -c 'import medfuse.bundle.schema as s; print(s.SCHEMA_PATH)')"

Command line: ``python -m medfuse.bundle.schema METADATA.json...`` prints one line per file and
exits non-zero when one is invalid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_PATH", "load_schema", "main", "metadata_errors", "validate_metadata"]

#: the shipped schema file.
SCHEMA_PATH = Path(__file__).resolve().parent / "metadata_schema.json"


def load_schema() -> dict[str, Any]:
    """The shipped metadata schema as a dict."""
    return json.loads(SCHEMA_PATH.read_text())


def metadata_errors(meta: dict[str, Any] | str | Path) -> list[str]:
    """Every schema violation of a metadata dict (or file), as ``"<json path>: <message>"``."""
    from jsonschema import Draft201909Validator

    if not isinstance(meta, dict):
        meta = json.loads(Path(meta).read_text())
    validator = Draft201909Validator(load_schema())
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(
            validator.iter_errors(meta), key=lambda e: list(map(str, e.absolute_path))
        )
    ]


def validate_metadata(path: str | Path) -> dict[str, Any]:
    """Load and validate ``configs/metadata.json``; return it.

    Raises:
        InputError: unreadable JSON or a schema violation (the first one, with its JSON path).
    """
    from medfuse.errors import InputError

    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON file ({exc})") from None
    errors = metadata_errors(meta)
    if errors:
        raise InputError(f"{path}: invalid bundle metadata: {errors[0]}")
    return meta


def main(argv: list[str] | None = None) -> int:
    """``python -m medfuse.bundle.schema FILE...``: validate each file, one line each."""
    from medfuse.errors import InputError

    files = sys.argv[1:] if argv is None else argv
    if not files:
        print("usage: python -m medfuse.bundle.schema METADATA.json...", file=sys.stderr)
        return 2
    code = 0
    for f in files:
        try:
            validate_metadata(f)
            print(f"{f}: valid")
        except InputError as exc:
            print(f"medfuse: error: {exc}", file=sys.stderr)
            code = 3
    return code


if __name__ == "__main__":
    sys.exit(main())

"""medfuse.integrations: medfuse inside other frameworks (MONAI Label; see docs/monailabel.md)."""

from __future__ import annotations

__all__: list[str] = []

"""Fixtures for transform tests (the volumes themselves are loaded once in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ct(phantom_ct):
    """The phantom CT series (alias of ``phantom_ct``)."""
    return phantom_ct

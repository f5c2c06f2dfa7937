"""Exponential back-off shared by the DIMSE and DICOMweb transfers."""

from __future__ import annotations

import time
from collections.abc import Iterator

__all__ = ["attempts"]


def attempts(retries: int, backoff: float, cap: float = 60.0) -> Iterator[int]:
    """Yield attempt numbers 0..retries, sleeping ``backoff * 2**(k-1)`` s (at most ``cap``)
    before k.

    The caller breaks out of the loop when it is done, so no sleep follows the last success.

    Args:
        retries: extra attempts after the first (0: try once).
        backoff: seconds before the first retry; each later retry waits twice as long.
        cap: longest single wait in seconds.
    """
    for k in range(max(retries, 0) + 1):
        if k:
            time.sleep(min(backoff * 2 ** (k - 1), cap))
        yield k

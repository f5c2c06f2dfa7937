"""Process settings for heavy work: how many CPU threads torch may use.

On a shared machine an OpenMP pool sized to every core runs slower than a smaller one: with the
other cores busy, 2-thread torch measured 5-10x slower than 1-thread on the 2-core development
machines (threads waiting on each other). :func:`set_threads` sizes torch's pool to the cores this
process may run on, less the ones other processes keep busy, unless told a number.
"""

from __future__ import annotations

import os

__all__ = ["free_cores", "set_threads"]


def free_cores() -> int:
    """Cores this process may use that other processes are not using now (at least 1).

    The cores of the process's CPU affinity, less the 1-minute load average (rounded), which
    counts the runnable processes on the machine.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        busy = 0
    return max(1, min(cores, cores - busy))


def set_threads(threads: int | None = None) -> int:
    """Size torch's intra-op thread pool: ``threads``, or :func:`free_cores` when None or 0.

    Returns:
        the number of threads set.
    """
    import torch

    n = int(threads) if threads else free_cores()
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()

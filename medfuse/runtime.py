"""Process settings for heavy work: how many CPU threads torch may use.

On a shared machine an OpenMP pool sized to every core runs slower than a smaller one: with the
other cores busy, 2-thread torch measured 5-10x slower than 1-thread on the 2-core development
machines (threads waiting on each other). :func:`set_threads` sizes torch's pool to the cores this
process may run on, less the ones other processes keep busy, unless told a number.

"Busy" counts only work that competes with this process: threads that are runnable now at the
same or a higher priority (a nice value no larger than this process's). A batch job started with
``nice -n 19`` (the project's training runs) yields a core almost wholly to a normal-priority
process, so it leaves that core free; the 1-minute load average, the fallback where ``/proc`` is
not readable, counts it as busy (and lags a minute behind).
"""

from __future__ import annotations

import os

__all__ = ["free_cores", "runnable_tasks", "set_threads"]


def runnable_tasks(max_nice: int | None = None, proc: str = "/proc") -> list[int] | None:
    """Thread ids of other processes that are runnable now at a nice value up to ``max_nice``.

    Args:
        max_nice: the highest nice value counted (default: this process's own).
        proc: the procfs mount.

    Returns:
        the thread ids (this process's own threads excluded), or ``None`` where procfs cannot be
        read (not Linux).
    """
    if max_nice is None:
        max_nice = os.nice(0)
    own = os.getpid()
    try:
        pids = [e.name for e in os.scandir(proc) if e.name.isdigit() and int(e.name) != own]
    except OSError:
        return None
    found: list[int] = []
    for pid in pids:
        try:
            tids = os.listdir(f"{proc}/{pid}/task")
        except OSError:
            continue  # gone, or not ours to read
        for tid in tids:
            try:
                with open(f"{proc}/{pid}/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                    stat = f.read()
            except OSError:
                continue
            # after "pid (comm) ": state is field 3 and nice field 19 of proc(5)
            fields = stat[stat.rfind(")") + 2:].split()
            if len(fields) > 16 and fields[0] == "R" and int(fields[16]) <= max_nice:
                found.append(int(tid))
    return found


def free_cores(samples: int = 5, interval: float = 0.01) -> int:
    """Cores this process may use that other processes are not using now (at least 1).

    The cores of the process's CPU affinity, less the threads of other processes runnable at this
    process's priority or higher (:func:`runnable_tasks`; the median of ``samples`` looks
    ``interval`` seconds apart). Where procfs is not readable: less the 1-minute load average
    (rounded), which counts every runnable process whatever its priority.
    """
    import statistics
    import time

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    counts: list[int] = []
    for i in range(max(1, samples)):
        if i:
            time.sleep(interval)
        tasks = runnable_tasks()
        if tasks is None:
            break
        counts.append(len(tasks))
    if counts:
        busy = int(statistics.median_low(counts))
    else:
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

"""Thread-pool sizing (medfuse.runtime)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import REPO, cli_env


def test_free_cores_is_within_the_affinity():
    from medfuse.runtime import free_cores

    n = free_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_set_threads_sizes_torch_pool_in_a_fresh_process():
    code = (
        "import torch\n"
        "from medfuse.runtime import free_cores, set_threads\n"
        "print(set_threads(1), torch.get_num_threads())\n"
        "n = set_threads(0)\n"
        "print(n == torch.get_num_threads() and 1 <= n <= free_cores() + 1)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env(), cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "1", "True"]


def test_runnable_tasks_count_competing_threads_only():
    """A busy process at our priority is counted; the same at ``nice 19`` (a batch job that
    yields its core) is counted only when lower priorities are asked for; our own threads never."""
    import time

    from medfuse.runtime import runnable_tasks

    spin = [sys.executable, "-c", "while True: pass"]
    procs = {nice: subprocess.Popen(["nice", "-n", str(nice), *spin]) for nice in (0, 19)}
    try:
        own_nice = os.nice(0)
        # wait for a state, not a moment: both spinners seen runnable (they spin, so they soon are)
        deadline = time.time() + 120
        seen: set[int] = set()
        while not {p.pid for p in procs.values()} <= seen:
            assert time.time() < deadline, "the spinning processes were never seen runnable"
            seen |= set(runnable_tasks(max_nice=19) or [])
            time.sleep(0.05)
        for _ in range(20):  # whenever counted at our own priority, only the normal-priority one
            tasks = set(runnable_tasks() or [])
            assert procs[19].pid not in tasks or own_nice >= 19
            assert os.getpid() not in tasks
        deadline = time.time() + 120
        while procs[0].pid not in set(runnable_tasks() or []):
            assert time.time() < deadline, "the normal-priority spinner was never counted"
            time.sleep(0.05)
    finally:
        for p in procs.values():
            p.kill()
            p.wait()

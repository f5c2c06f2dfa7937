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

"""Run by tests/batch/test_ray_cancel.py in a private network namespace: a Ray cancel that lands
after a study's output is complete, while its task has not returned yet.

Usage: python ray_cancel_after_output.py MANIFEST RESULT_JSON

The Ray task is the real :func:`~medfuse.batch.backends.ray_tasks.ray_study` (a real fusion),
followed by a wait: the window in which a cancel races the task's end, held open so that the
cancel always lands in it. The batch is stopped once the task has written the study's result
next to its output (``OUT.returned``), that is, after the output is complete. The driver's result
for the study is written to RESULT_JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from medfuse.batch.backends import ray_tasks
from medfuse.batch.manifest import load_manifest

real_study = ray_tasks.ray_study


def study_then_wait(study: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """The real task, then a wait that only a cancel ends (at most 300 s)."""
    res = real_study(study, threads)
    Path(study["out"] + ".returned").write_text(json.dumps(res))
    time.sleep(300)
    return res


def main() -> None:
    manifest, result_path = sys.argv[1], Path(sys.argv[2])
    study = load_manifest(Path(manifest))[0].to_dict()
    ray_tasks.ray_study = study_then_wait  # what RayBackend.run submits
    backend = ray_tasks.RayBackend(workers=1, threads=1)
    backend.start()
    stop = threading.Event()
    results: list[dict[str, Any]] = []

    def stop_when_complete() -> None:
        flag = Path(study["out"] + ".returned")
        while not flag.exists():  # a state: the study's output is in place, the task not ended
            time.sleep(0.1)
        stop.set()

    threading.Thread(target=stop_when_complete, daemon=True).start()
    try:
        backend.run([study], results.append, stop)
    finally:
        backend.close()
    result_path.write_text(json.dumps(results))


if __name__ == "__main__":
    main()

"""A real Orthanc for the PACS tests, inside a private network namespace.

Orthanc 1.10 listens on every interface, so it never runs in the host's network: a holder process
(``unshare -n``, loopback brought up, then ``sleep``) owns a fresh namespace, and Orthanc, the
medfuse CLI and every REST read run inside it with ``nsenter --net=/proc/<holder>/ns/net``. The
namespace outlives Orthanc, so a test can stop the server and start it again on the same ports.
Every child gets ``PR_SET_PDEATHSIG`` = SIGKILL, so none outlives the test process; they are also
stopped by PID in the fixtures' teardown.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers import run_cli

__all__ = ["missing_tools", "Netns", "Orthanc", "DICOMWEB_PLUGIN"]

_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)


def _find_plugin() -> str | None:
    for path in _PLUGIN_CANDIDATES:
        if Path(path).exists():
            return path
    found = sorted(Path("/usr/lib").glob("**/libOrthancDicomWeb.so*"))
    return str(found[0]) if found else None


DICOMWEB_PLUGIN = _find_plugin()

# GET each URL in argv[2:] inside the namespace; write the bodies to argv[1]/0, 1, ...
_FETCH = """
import sys, urllib.request, pathlib
out = pathlib.Path(sys.argv[1])
for n, url in enumerate(sys.argv[2:]):
    (out / str(n)).write_bytes(urllib.request.urlopen(url, timeout=30).read())
"""
_FREE_PORTS = """
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
"""
_PROBE = """
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
"""


def missing_tools() -> str | None:
    """Why the Orthanc tests cannot run here (a missing tool), or None."""
    for tool in ("Orthanc", "unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install orthanc iproute2 util-linux)"
    if DICOMWEB_PLUGIN is None:
        return "the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the test process dies (PR_SET_PDEATHSIG)."""
    _PRCTL(1, signal.SIGKILL)


def _stop(proc: subprocess.Popen | None) -> None:
    """Terminate a child by PID, then kill it if it does not exit within 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Netns:
    """A private network namespace (loopback up) held by a sleeping child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call in the child
        )
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if line != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            _stop(self.proc)
            raise RuntimeError(f"cannot create a network namespace: {err.strip()}")
        self.prefix = ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net"]

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command inside the namespace."""
        return subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, check=False,
                              timeout=timeout)

    def free_ports(self, n: int) -> list[int]:
        """``n`` distinct TCP ports free in the namespace now."""
        return [int(p) for p in self.run(sys.executable, "-c", _FREE_PORTS, str(n)).stdout.split()]

    def close(self) -> None:
        """Stop the holder (the namespace goes with it)."""
        _stop(self.proc)


class Orthanc:
    """One Orthanc server with its own storage, DICOMweb plugin, free DICOM and HTTP ports.

    Args:
        netns: the namespace it runs in.
        workdir: holds the configuration, the database and the log.
        aet: Orthanc's DICOM AE title.
        extra: configuration entries added to (or replacing) the generated ones.
        ports: (DICOM, HTTP) ports (default: two free ones).
    """

    def __init__(self, netns: Netns, workdir: Path, aet: str = "ORTHANC",
                 extra: dict[str, Any] | None = None,
                 ports: tuple[int, int] | None = None) -> None:
        self.netns, self.workdir, self.aet = netns, workdir, aet
        self.extra = dict(extra or {})
        workdir.mkdir(parents=True, exist_ok=True)
        self.dicom_port, self.http_port = ports or netns.free_ports(2)
        self.config_path = workdir / "orthanc.json"
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self.log_path = workdir / "orthanc.log"
        self.proc: subprocess.Popen | None = None

    def config(self) -> dict[str, Any]:
        """The generated configuration (storage under workdir, no authentication)."""
        return {
            "Name": "medfuse-test",
            "StorageDirectory": str(self.workdir / "db"),
            "IndexDirectory": str(self.workdir / "db"),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "Plugins": [DICOMWEB_PLUGIN],
            "HttpThreadsCount": 4,
            "ConcurrentJobs": 1,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": "127.0.0.1"},
            **self.extra,
        }

    @property
    def address(self) -> str:
        """``127.0.0.1:<DICOM port>``."""
        return f"127.0.0.1:{self.dicom_port}"

    @property
    def url(self) -> str:
        """The REST API root."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb service root."""
        return f"{self.url}/dicom-web"

    def start(self, timeout: float = 60) -> None:
        """Start Orthanc in the namespace and wait until its REST API answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.netns.prefix, "Orthanc", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call in the child
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            if self.netns.run(sys.executable, "-c", _PROBE, f"{self.url}/system").returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s")

    def stop(self) -> None:
        """Stop Orthanc by PID (its storage stays for a restart)."""
        _stop(self.proc)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """``medfuse ARGS`` inside the namespace."""
        return run_cli(*args, prefix=self.netns.prefix)

    def fetch(self, *paths: str, scratch: Path) -> list[bytes]:
        """GET REST paths (``/instances``, ...) and return the bodies."""
        scratch.mkdir(parents=True, exist_ok=True)
        r = self.netns.run(sys.executable, "-c", _FETCH, str(scratch),
                           *(f"{self.url}{p}" for p in paths))
        assert r.returncode == 0, r.stderr
        return [(scratch / str(n)).read_bytes() for n in range(len(paths))]

    def json(self, path: str, scratch: Path) -> Any:
        """GET one REST path as JSON."""
        return json.loads(self.fetch(path, scratch=scratch)[0])

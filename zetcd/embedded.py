"""A local etcd that zetcd starts and owns when no --endpoints are given."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import trio

INSTALL_HINT = (
    "no etcd binary found: install one (Debian/Ubuntu: `apt-get install etcd-server`) and put "
    "it on PATH or pass --etcd-binary, or point zetcd at a running cluster with --endpoints"
)


# the embedded etcd allows larger transactions than etcd's default (128), for group commit
MAX_TXN_OPS = 1024


class EmbeddedEtcdError(RuntimeError):
    pass


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "zetcd" / "etcd"


def find_etcd(explicit: str | None = None) -> str:
    """The etcd binary: --etcd-binary if given (it must exist), else etcd on PATH or in the
    usual places."""
    if explicit is not None:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise EmbeddedEtcdError(f"{explicit} is not an executable: {INSTALL_HINT}")
    for candidate in (shutil.which("etcd"), "/usr/bin/etcd", "/usr/local/bin/etcd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedEtcdError(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedEtcd:
    """``async with EmbeddedEtcd(data_dir) as endpoint:`` runs etcd on loopback."""

    def __init__(self, data_dir: Path, binary: str | None = None, client_port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.binary = find_etcd(binary)
        self.client_port = client_port or _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = f"http://127.0.0.1:{self.client_port}"

    async def __aenter__(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir.parent / "etcd.log"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.binary,
            "--name", "zetcd",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"zetcd={peer}",
            "--auto-compaction-mode", "revision",
            "--auto-compaction-retention", "100000",
            "--max-txn-ops", str(MAX_TXN_OPS),
        ]  # fmt: skip
        with open(log_path, "ab") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedEtcdError(
                    f"etcd exited with status {self.proc.returncode}; see {log_path}"
                )
            if await trio.to_thread.run_sync(self._healthy):
                return self.endpoint
            await trio.sleep(0.05)
        raise EmbeddedEtcdError(f"etcd did not start within 30 s; see {log_path}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as resp:
                return b'"true"' in resp.read()
        except (OSError, ValueError):
            return False

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        with trio.move_on_after(10):
            while proc.poll() is None:
                await trio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

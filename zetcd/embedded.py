"""A local etcd that zetcd starts and owns when no --endpoints are given.

The etcd runs in its own session (process group), so a Ctrl-C at the terminal reaches zetcd
only, which stops etcd after its clients. It is always stopped with everything it started: by
``__aexit__``, by a start that fails or is cancelled, and, on Linux, by the kernel if zetcd dies
(even by SIGKILL), so that no etcd outlives zetcd holding the data dir's lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import trio

INSTALL_HINT = (
    "no etcd binary found: install one (Debian/Ubuntu: `apt-get install etcd-server`) and put "
    "it on PATH or pass --etcd-binary, or point zetcd at a running cluster with --endpoints"
)


# the embedded etcd allows larger transactions than etcd's default (128), for group commit
MAX_TXN_OPS = 1024
# etcd refuses a request of more than 1.5 MiB by default; a ZooKeeper request of at most 1 MiB
# (jute.maxbuffer) names its paths in several keys of its transaction (a create of a long path
# with an ACL of its own: the node's data and ACL keys, its parent's keys, their guards), so the
# embedded etcd takes what any of them can need
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# etcd commits its backend every 100 ms or once this many writes are pending (etcd's default:
# 10,000). etcd 3.4 copies its buffer of uncommitted writes for every transaction, and the
# buffer keeps the size of the most writes it ever held between two commits: after one burst,
# every later zetcd write cost etcd more (docs/architecture.md, "etcd 3.4's write buffer")
BACKEND_BATCH_LIMIT = 1000
# how the embedded etcd differs from etcd's defaults (bench/run.py runs its etcd with these too)
TUNING_ARGS = (
    "--auto-compaction-mode", "revision",
    "--auto-compaction-retention", "100000",
    "--max-txn-ops", str(MAX_TXN_OPS),
    "--max-request-bytes", str(MAX_REQUEST_BYTES),
    "--backend-batch-limit", str(BACKEND_BATCH_LIMIT),
)  # fmt: skip

STARTUP_TIMEOUT = 30.0
# how long etcd has to exit after SIGTERM before it gets SIGKILL
STOP_GRACE = 10.0

_PR_SET_PDEATHSIG = 1
# what etcd logs while another process holds its data dir's lock (3.4, 3.5)
_LOCKED_MARKERS = ("holds the file lock", "flocked by another process")


class EmbeddedEtcdError(RuntimeError):
    pass


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "zetcd" / "etcd"


def find_etcd(explicit: str | None = None) -> str:
    """The etcd binary: --etcd-binary if given (a path, or a name looked up on PATH), else etcd
    on PATH or in the usual places."""
    if explicit is not None:
        # a bare name is looked up on PATH, as a shell would
        found = explicit if os.sep in explicit else shutil.which(explicit)
        if found and os.path.isfile(found) and os.access(found, os.X_OK):
            return found
        raise EmbeddedEtcdError(f"{explicit} is not an executable: {INSTALL_HINT}")
    for candidate in (shutil.which("etcd"), "/usr/bin/etcd", "/usr/local/bin/etcd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedEtcdError(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_zetcd() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that has the kernel send the child SIGTERM when zetcd dies.

    The kernel sends it when the *thread* that forked exits, so the child must be forked by
    the thread running trio, which outlives the etcd it starts: hence a plain Popen, not
    trio's ``open_process`` (which forks in a worker thread)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # zetcd died before prctl
            os._exit(1)

    return preexec


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _running(proc: subprocess.Popen[bytes]) -> bool:
    """Whether etcd, or anything else in its process group (its session), still runs."""
    if proc.poll() is None:
        return True
    try:
        os.killpg(proc.pid, 0)
    except OSError:
        return False
    return True


def describe_exit(status: int) -> str:
    """``exited with status 1`` or ``was killed by SIGKILL``, for a Popen returncode."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


def _lock_holder(log: str) -> str | None:
    """etcd's words, from its log, if another process holds the data dir's lock."""
    for line in reversed(log.splitlines()):
        if any(marker in line for marker in _LOCKED_MARKERS):
            try:  # etcd 3.5 logs JSON
                record = json.loads(line)
                return f"{record['msg']}: {record.get('path', '')}"
            except (ValueError, KeyError, TypeError):  # etcd 3.4: "<time> W | etcdserver: ..."
                return line.partition(" | ")[2] or line
    return None


def _flock_holder(db: Path) -> str | None:
    """Who holds the flock etcd's database takes (bbolt locks ``member/snap/db`` for as long
    as etcd runs): ``pid N (name)``, ``another process``, or None if nobody does. A second
    etcd on the dir would wait for that lock without a word for ten seconds and more."""
    try:
        fd = os.open(db, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # a new data dir: nothing to hold
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            st = os.fstat(fd)
        except OSError:
            return None
        else:
            return None  # free: closing the file releases it at once
    finally:
        os.close(fd)
    # /proc/locks: "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                pid = fields[4]
                with contextlib.suppress(OSError):
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"pid {pid} ({name})"
                return f"pid {pid}"
    return "another process"


class EmbeddedEtcd:
    """``async with EmbeddedEtcd(data_dir) as endpoint:`` runs etcd on loopback.

    Entering starts etcd and waits until it is healthy; if that fails or is cancelled
    (SIGINT, SIGTERM), etcd is stopped before the exception propagates. :meth:`exited`
    reports an etcd that exits while zetcd uses it. The data dir is created 0700, and etcd
    logs to ``etcd.log`` beside it."""

    def __init__(self, data_dir: Path, binary: str | None = None, client_port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.binary = find_etcd(binary)
        self.client_port = client_port or _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.log_path = self.data_dir.parent / "etcd.log"
        self._stopping = False

    async def __aenter__(self) -> str:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        holder = _flock_holder(self.data_dir / "member" / "snap" / "db")
        if holder is not None:
            raise EmbeddedEtcdError(
                f"the data dir {self.data_dir} is in use by {holder}: stop it, or pass zetcd "
                "another --data-dir"
            )
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
            *TUNING_ARGS,
        ]  # fmt: skip
        with open(self.log_path, "ab") as logf:
            log_start = logf.tell()
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_zetcd(),
            )
        try:
            await self._wait_healthy(log_start)
        except BaseException:
            await self._stop()
            raise
        return self.endpoint

    async def _wait_healthy(self, log_start: int) -> None:
        assert self.proc is not None
        deadline = trio.current_time() + STARTUP_TIMEOUT
        while trio.current_time() < deadline:
            status = self.proc.poll()
            if status is not None:
                raise EmbeddedEtcdError(f"etcd {describe_exit(status)}; see {self.log_path}")
            if await trio.to_thread.run_sync(self._healthy, abandon_on_cancel=True):
                # healthy, but is it ours? A process that exited meanwhile (a wrapper that
                # left an etcd behind) is a failed start all the same
                status = self.proc.poll()
                if status is not None:
                    raise EmbeddedEtcdError(f"etcd {describe_exit(status)}; see {self.log_path}")
                return
            await trio.sleep(0.05)
        with open(self.log_path, "rb") as logf:
            logf.seek(max(log_start, logf.seek(0, os.SEEK_END) - 65536))
            cause = _lock_holder(logf.read().decode("utf-8", "replace"))
        raise EmbeddedEtcdError(
            f"etcd did not start within {STARTUP_TIMEOUT:.0f} s"
            + (f" ({cause})" if cause else "")
            + f"; see {self.log_path}"
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as resp:
                return b'"true"' in resp.read()
        except (OSError, ValueError):
            return False

    async def exited(self) -> int:
        """Wait until etcd exits unasked (not stopped by ``__aexit__``); its returncode."""
        assert self.proc is not None
        while True:
            await trio.sleep(0.5)
            status = self.proc.poll()
            if status is not None and not self._stopping:
                return status

    async def _stop(self) -> None:
        """SIGTERM to etcd's process group, SIGKILL to what is left of it after STOP_GRACE;
        reaps etcd. Runs to the end even if cancelled."""
        proc = self.proc
        if proc is None:
            return
        self._stopping = True
        with trio.CancelScope(shield=True):
            _killpg(proc.pid, signal.SIGTERM)
            with trio.move_on_after(STOP_GRACE):
                while _running(proc):
                    await trio.sleep(0.05)
            if _running(proc):
                _killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

"""The embedded etcd lives no longer than the zetcd that started it, and zetcd no longer than
its etcd: a start that fails or is interrupted stops etcd, a killed zetcd takes its etcd down,
an etcd that dies stops zetcd with an error (for a supervisor to restart it).

Each test runs ``python -m zetcd`` with a data dir of its own and a real etcd, and finds the
etcd processes through /proc: those whose command line names that data dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import ETCD_BINARY, four_letter_word, free_port, wait_until

ZETCD = [sys.executable, "-m", "zetcd"]


def _etcds(data_dir: Path) -> set[int]:
    """The live etcd processes on data_dir (a zombie's command line is empty)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        if argv[0].endswith(b"etcd") and os.fsencode(data_dir) in argv:
            pids.add(int(entry.name))
    return pids


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    wait_until(condition, timeout, f"no {what} after {timeout} s")


class Zetcd:
    """``python -m zetcd`` on a free port with ``data_dir``; stdout and stderr go to a file."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.data_dir = tmp_path / "etcd"
        self.port = free_port()
        self.output_path = tmp_path / "zetcd.out"
        with self.output_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [*ZETCD, "--zkaddr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
                 *extra],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.output_path.read_text()

    def serving(self) -> bool:
        assert self.proc.poll() is None, self.output()
        try:
            return four_letter_word("127.0.0.1", self.port, "srvr", timeout=1).startswith("Zoo")
        except OSError:
            return False

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"zetcd still runs after {timeout} s:\n{self.output()}") from None

    def stop(self) -> None:
        """Kill zetcd and any etcd on its data dir (only a failing test leaves one)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in _etcds(self.data_dir):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def zetcd(tmp_path: Path) -> Iterator[Callable[..., Zetcd]]:
    started: list[Zetcd] = []

    def start(*extra: str) -> Zetcd:
        started.append(Zetcd(tmp_path, *extra))
        return started[-1]

    yield start
    for z in started:
        z.stop()


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another etcd, already running on the data dir the test's zetcd is given: it holds the
    dir's lock, so that zetcd's etcd waits for it (and never becomes healthy)."""
    port, peer = free_port(), free_port()
    with (tmp_path / "holder.log").open("wb") as log:
        holder = subprocess.Popen(
            [ETCD_BINARY, "--data-dir", str(tmp_path / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{port}",
             "--advertise-client-urls", f"http://127.0.0.1:{port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def healthy() -> bool:
        assert holder.poll() is None, (tmp_path / "holder.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                return b'"true"' in resp.read()
        except OSError:
            return False

    try:
        _wait_for(healthy, "healthy lock holder etcd", timeout=60)
        yield holder
    finally:
        holder.terminate()
        holder.wait()


def test_etcd_exiting_during_startup_leaves_nothing_behind(
    tmp_path: Path, zetcd: Callable[..., Zetcd]
) -> None:
    """A failed start stops everything zetcd started, here the etcd that a wrapper given as
    --etcd-binary left running in the background when it failed."""
    wrapper = tmp_path / "etcd-wrapper"
    wrapper.write_text(f'#!/bin/sh\n{ETCD_BINARY} "$@" &\nexit 3\n')
    wrapper.chmod(0o755)
    z = zetcd("--etcd-binary", str(wrapper))
    assert z.wait() == 2
    assert z.output().splitlines()[-1] == (
        f"zetcd: etcd exited with status 3; see {tmp_path / 'etcd.log'}"
    )
    _wait_for(lambda: not _etcds(z.data_dir), "exit of the etcd zetcd started", timeout=20)


def test_locked_data_dir_is_a_clear_error_and_leaves_no_etcd(
    lock_holder: subprocess.Popen[bytes], zetcd: Callable[..., Zetcd]
) -> None:
    """Another etcd holds the data dir's lock: zetcd says so in one line, naming it, without
    starting an etcd of its own (that etcd would wait for the lock without a word)."""
    z = zetcd()
    assert z.wait() == 2
    assert z.output().splitlines()[-1] == (
        f"zetcd: the data dir {z.data_dir} is in use by pid {lock_holder.pid} (etcd): stop it, "
        "or pass zetcd another --data-dir"
    )
    assert _etcds(z.data_dir) == {lock_holder.pid}
    assert lock_holder.poll() is None


@pytest.fixture
def quorumless_etcd(tmp_path: Path) -> Path:
    """An --etcd-binary that runs etcd as one member of two, the other never there: it runs
    but never becomes healthy, so that zetcd waits for it."""
    wrapper = tmp_path / "quorumless-etcd"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$prev" = --initial-advertise-peer-urls ] && peer=$a; prev=$a; done\n'
        f'exec {ETCD_BINARY} "$@" --initial-cluster "zetcd=$peer,absent=http://127.0.0.1:9"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
def test_etcd_never_healthy_is_a_clear_error_and_leaves_no_etcd(
    quorumless_etcd: Path, zetcd: Callable[..., Zetcd]
) -> None:
    """An etcd that runs but never becomes healthy: after the 30 s start-up timeout zetcd
    says so in one line and stops its etcd (about 35 s)."""
    z = zetcd("--etcd-binary", str(quorumless_etcd))
    assert z.wait(90) == 2
    assert z.output().splitlines()[-1] == (
        f"zetcd: etcd did not start within 30 s; see {z.data_dir.parent / 'etcd.log'}"
    )
    _wait_for(lambda: not _etcds(z.data_dir), "exit of zetcd's etcd", 20)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_during_startup_stops_etcd_and_exits_0(
    quorumless_etcd: Path, zetcd: Callable[..., Zetcd], signum: signal.Signals
) -> None:
    """A stop while zetcd waits for its etcd to become healthy is an ordinary stop: zetcd
    stops its etcd and exits 0."""
    z = zetcd("--etcd-binary", str(quorumless_etcd))
    _wait_for(lambda: _etcds(z.data_dir), "etcd started by zetcd")
    assert z.proc.poll() is None
    z.proc.send_signal(signum)
    assert z.wait() == 0, z.output()
    assert "Traceback" not in z.output()
    _wait_for(lambda: not _etcds(z.data_dir), "exit of zetcd's etcd", 20)


def test_killed_zetcd_takes_its_etcd_down(zetcd: Callable[..., Zetcd]) -> None:
    """zetcd killed with SIGKILL: the kernel stops its etcd, which would otherwise keep the
    data dir locked and make the next start fail."""
    z = zetcd()
    _wait_for(z.serving, "zetcd serving", timeout=60)
    assert _etcds(z.data_dir)
    z.proc.kill()
    z.proc.wait()
    _wait_for(lambda: not _etcds(z.data_dir), "exit of the etcd of a killed zetcd", 20)


def test_etcd_dying_while_serving_stops_zetcd_with_an_error(
    tmp_path: Path, zetcd: Callable[..., Zetcd]
) -> None:
    """zetcd cannot serve without its etcd: it exits non-zero (for a supervisor to restart
    it), saying what happened in one line."""
    z = zetcd()
    _wait_for(z.serving, "zetcd serving", timeout=60)
    (etcd,) = _etcds(z.data_dir)
    os.kill(etcd, signal.SIGKILL)
    assert z.wait() == 2
    message = f"embedded etcd was killed by SIGKILL; see {tmp_path / 'etcd.log'}"
    assert z.output().splitlines()[-1] == f"zetcd: {message}"
    assert f"ERROR zetcd: {message}" in z.output()


def test_data_dir_is_created_private(zetcd: Callable[..., Zetcd]) -> None:
    """etcd's data dir is created 0700 (etcd warns about anything wider)."""
    z = zetcd()
    _wait_for(z.serving, "zetcd serving", timeout=60)
    assert z.data_dir.stat().st_mode & 0o777 == 0o700
    z.proc.terminate()
    assert z.wait() == 0


def test_etcd_binary_by_name_is_looked_up_on_path() -> None:
    from zetcd.embedded import EmbeddedEtcdError, find_etcd

    etcd = Path(ETCD_BINARY)
    assert find_etcd(etcd.name) == shutil.which(etcd.name)
    assert find_etcd(str(etcd)) == str(etcd)
    with pytest.raises(EmbeddedEtcdError, match="no-such-etcd is not an executable"):
        find_etcd("no-such-etcd")


def _backend_commits(endpoint: str) -> int:
    """etcd's count of backend commits, from its /metrics."""
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_disk_backend_commit_duration_seconds_count "):
                return int(float(line.split()[1]))
    raise AssertionError("etcd's /metrics has no etcd_disk_backend_commit_duration_seconds_count")


def test_embedded_etcd_commits_its_backend_every_thousand_writes(tmp_path: Path) -> None:
    """The embedded etcd runs with --backend-batch-limit (BACKEND_BATCH_LIMIT): a burst of
    writes is committed every thousand writes rather than every 100 ms, which bounds etcd 3.4's
    buffer of uncommitted writes (copied for every later transaction; docs/architecture.md).
    Twelve transactions of a thousand puts each, sent back to back, make at least twelve
    commits; with etcd's default limit (10,000) only its 100 ms ticks would commit them."""
    import trio

    from zetcd.embedded import BACKEND_BATCH_LIMIT, MAX_TXN_OPS, EmbeddedEtcd
    from zetcd.etcd import EtcdClient, encode_guarded_txn

    assert BACKEND_BATCH_LIMIT <= MAX_TXN_OPS
    batches = 12

    async def main() -> None:
        async with EmbeddedEtcd(tmp_path / "etcd") as endpoint:
            client = await EtcdClient.connect(endpoint)
            before = await trio.to_thread.run_sync(_backend_commits, endpoint)
            for b in range(batches):
                puts = [(b"/burst/%d-%d" % (b, i), b"v", 0) for i in range(BACKEND_BATCH_LIMIT)]
                await client.txn_encoded(encode_guarded_txn({}, {}, puts))
            after = await trio.to_thread.run_sync(_backend_commits, endpoint)
            await client.aclose()
        assert after - before >= batches, (before, after)

    trio.run(main)

"""The command line as the README shows it: flags, Go spellings, the embedded etcd, shutdown,
and what happens when etcd goes away and comes back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError

from tests.servers import EtcdServer, four_letter_word, free_port
from tests.zetcd_server import ZetcdServer, zetcd_refusal
from zetcd.cli import parse_endpoints, parse_hostport, translate_go_flags

ZETCD = [sys.executable, "-m", "zetcd"]


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if four_letter_word("127.0.0.1", port, "srvr", timeout=1).startswith("Zookeeper"):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("zetcd did not start")


def test_help_lists_the_readme_flags() -> None:
    out = subprocess.run([*ZETCD, "--help"], capture_output=True, text=True, check=True).stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for flag in ("--zkaddr", "--endpoints", "--data-dir", "--prefix", "--tick-time",
                 "--max-packet", "--max-client-cnxns", "--4lw-whitelist", "--container-check-interval",
                 "--super-digest", "--etcd-binary", "--etcd-max-txn-ops", "--etcd-max-request-bytes",
                 "--metrics-addr",
                 "--debug-zkbridge", "--debug-oracle", "--divergence-log",
                 "--fail-on-divergence", "--secure-zkaddr", "--zk-cert", "--zk-key",
                 "--zk-client-auth", "--zk-cacert", "--zk-x509-superuser"):  # fmt: skip
        assert flag in out, flag
        assert flag in readme, flag


def test_go_flag_spellings_are_translated() -> None:
    argv = ["-zkaddr", "127.0.0.1:1", "-endpoints=10.0.0.1:2379", "-logtostderr", "-v", "2"]
    assert translate_go_flags(argv) == [
        "--zkaddr", "127.0.0.1:1", "--endpoints=10.0.0.1:2379", "--logtostderr", "-v", "2",
    ]  # fmt: skip
    # Go's flag package also takes -flag=bool, -v=N, -h, and ours spelled with one dash
    argv = ["-logtostderr=false", "-logtostderr=true", "-v=2", "-h", "-prefix=/p/", "-x"]
    assert translate_go_flags(argv, frozenset({"--prefix"})) == [
        "--no-logtostderr", "--logtostderr", "-v", "2", "--help", "--prefix=/p/", "-x",
    ]  # fmt: skip
    assert parse_endpoints("a:1, http://b:2") == ["http://a:1", "http://b:2"]
    flags = frozenset({"--fail-on-divergence"})
    assert translate_go_flags(["-fail-on-divergence=f"], flags, flags) == [
        "--no-fail-on-divergence"
    ]
    # ":port" is every interface for --zkaddr (as Go's net.Listen), loopback elsewhere
    assert parse_hostport(":31183", 2181, empty_host="") == ("", 31183)
    assert parse_hostport(":2182", 2181) == ("127.0.0.1", 2182)


def test_go_spellings_reach_the_command() -> None:
    out = subprocess.run(
        [*ZETCD, "-v=2", "-logtostderr=true", "-prefix", "/p/", "-h"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0 and "--zkaddr" in out.stdout, out.stderr


def test_missing_etcd_binary_is_a_clear_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*ZETCD, "--zkaddr", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"),
         "--etcd-binary", str(tmp_path / "no-etcd")],
        capture_output=True, text=True, timeout=30, env={**os.environ, "PATH": "/nonexistent"},
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no etcd binary found" in lines[0] and "apt-get install etcd-server" in lines[0]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (["--zkaddr", "127.0.0.1:notaport"], "bad port"),
        (["--tick-time", "0"], "--tick-time must be positive"),
        (["--endpoints", ""], "no endpoint given"),
        (["--endpoints", "http://127.0.0.1:2379,https://127.0.0.1:2380"], "mix http:// and"),
        (["--endpoints", "ftp://127.0.0.1:2379"], "endpoints are http://host:port, https://"),
        (["--endpoints", "http://127.0.0.1:2379/v3"], "bad etcd endpoint"),
        (["--endpoints", "127.0.0.1:abc"], "bad etcd endpoint"),
        (["--endpoints", "127.0.0.1:2379,http://127.0.0.1:"], "bad etcd endpoint"),
        (["--endpoints", "127.0.0.1:99999"], "port 1-65535"),
        (["--zkaddr", ""], "--zkaddr is empty"),
        (["--tick-time", str(1 << 30)], "must not exceed 2147483647 ms"),
        (["--min-session-timeout", str(1 << 40), "--max-session-timeout", str(1 << 41)], "exceed"),
        (["--max-client-cnxns", "-1"], "--max-client-cnxns must be 0"),
        (["--prefix", ""], "--prefix must not be empty"),
        (["--max-packet", "0"], "--max-packet must be positive"),
        (["--min-session-timeout", "10000", "--max-session-timeout", "5000"], "not be larger"),
        (["--divergence-log", "x.jsonl"], "add --debug-zkbridge"),
        (["--fail-on-divergence"], "add --debug-zkbridge"),
        (["--debug-oracle", "etcd"], "add --debug-zkbridge"),
        (["--debug-zkbridge", "127.0.0.1:1"], "cannot reach ZooKeeper at 127.0.0.1:1"),
    ],
)
def test_bad_flags_are_rejected(bad: list[str], says: str) -> None:
    proc = subprocess.run([*ZETCD, *bad], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Invalid value" in proc.stderr and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _one_line_failure(args: list[str]) -> str:
    lines = zetcd_refusal(args).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_an_address_that_cannot_be_served_is_a_one_line_error(etcd: EtcdServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_failure(["--endpoints", etcd.endpoint, "--zkaddr", f"127.0.0.1:{port}"])
        assert line == f"zetcd: cannot serve on 127.0.0.1:{port}: Address already in use"
        metrics = ["--metrics-addr", f"127.0.0.1:{port}", "--zkaddr", "127.0.0.1:0"]
        line = _one_line_failure(["--endpoints", etcd.endpoint, *metrics])
        assert line == f"zetcd: --metrics-addr 127.0.0.1:{port}: Address already in use"
    line = _one_line_failure(["--endpoints", etcd.endpoint, "--zkaddr", "nohost.invalid:2181"])
    assert line.startswith("zetcd: cannot serve on nohost.invalid:2181: ")


def test_an_endpoint_that_is_not_etcd_is_a_one_line_error() -> None:
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.1)
        line = _one_line_failure(["--endpoints", f"127.0.0.1:{port}"])
    finally:
        web.kill()
        web.wait()
    assert line.endswith(f"127.0.0.1:{port} does not speak HTTP/2: not etcd's gRPC"), line


def test_an_etcd_with_authentication_is_a_one_line_error() -> None:
    """An etcd with `auth enable` refuses the requests of a zetcd without --user, and zetcd
    says so at start-up (tests/test_etcd_auth.py has zetcd with --user)."""
    with EtcdServer() as etcd:
        ctl = ["etcdctl", "--endpoints", etcd.endpoint]
        env = {**os.environ, "ETCDCTL_API": "3"}
        for args in (["user", "add", "root:secret"], ["auth", "enable"]):
            subprocess.run([*ctl, *args], check=True, capture_output=True, env=env, timeout=30)
        line = _one_line_failure(["--endpoints", etcd.endpoint, "--zkaddr", "127.0.0.1:0"])
    assert line == "zetcd: etcd refused a request: INVALID_ARGUMENT: etcdserver: user name is empty"


def test_embedded_etcd_go_flags_and_clean_sigterm(tmp_path: Path) -> None:
    """One command gives a working server (its own etcd); SIGTERM exits 0 and stops etcd."""
    port = free_port()
    proc = subprocess.Popen(
        [*ZETCD, "-zkaddr", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "etcd"), "-v", "1",
         "-logtostderr"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_port(port, proc)
        zk = KazooClient(f"127.0.0.1:{port}", timeout=10)
        zk.start(timeout=15)
        zk.create("/embedded", b"yes")
        assert zk.get("/embedded")[0] == b"yes"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        zk.stop()
        zk.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            log = proc.stdout.read().decode()
            proc.stdout.close()
    assert f"serving ZooKeeper clients on 127.0.0.1:{port}" in log
    assert "started embedded etcd" in log
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "etcd")], capture_output=True, text=True)
    assert left.stdout.split() == [], "the embedded etcd outlived zetcd"


def test_debug_logging_tells_sessions_without_hpack_noise(etcd: EtcdServer) -> None:
    with ZetcdServer(etcd.endpoint, extra_args=("-v", "2")) as zetcd:
        zk = KazooClient(zetcd.address, timeout=10)
        zk.start(timeout=15)
        session = zk.client_id[0]
        host, port = zk._connection._socket.getsockname()[:2]
        zk.stop()
        zk.close()
        closed = f"{host}:{port}: connection closed"  # this client's, not the probes'
        deadline = time.monotonic() + 10
        while closed not in zetcd.log_path.read_text():
            assert time.monotonic() < deadline, zetcd.log_path.read_text()
            time.sleep(0.1)
        log = zetcd.log_path.read_text()
    assert f"session 0x{session:x} established, timeout 10000 ms" in log, log
    assert "DEBUG zetcd" in log and "hpack" not in log, log


def test_etcd_outage_gives_connection_loss_and_recovers() -> None:
    """etcd frozen: clients see ConnectionLoss and retry, zetcd keeps running; when etcd is
    back everything works again and no data is lost."""
    with EtcdServer() as etcd, ZetcdServer(etcd.endpoint) as zetcd:
        zk = KazooClient(zetcd.address, timeout=20)
        zk.start(timeout=15)
        zk.create("/before", b"kept")
        os.kill(etcd.pid, signal.SIGSTOP)
        try:
            with pytest.raises((ConnectionLoss, SessionExpiredError)):
                zk.retry = None  # type: ignore[assignment]
                zk.create("/during", b"x")
            assert zetcd.running
        finally:
            os.kill(etcd.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:
            try:
                zk.create("/after", b"ok")
                break
            except (ConnectionLoss, SessionExpiredError):
                assert time.monotonic() < deadline, "zetcd did not recover"
                time.sleep(0.5)
        assert zk.get("/before")[0] == b"kept"
        assert zk.get("/after")[0] == b"ok"
        zk.stop()
        zk.close()
        # the log at the default verbosity says what happened to the client
        log = zetcd.log_path.read_text()
        assert "etcd unavailable" in log and "closing the connection of session 0x" in log, log


def test_a_stop_while_python_still_imports_zetcd_exits_0() -> None:
    """SIGTERM or SIGINT during the imports (about 0.3 s after the command starts, before the
    server's own signal handling) is an ordinary stop: exit 0, no traceback. The signal is sent
    from inside the import of zetcd.cli, so the test does not depend on timing."""
    for signame in ("SIGTERM", "SIGINT"):
        code = (
            "import builtins, os, signal\n"
            "from zetcd import entry\n"
            "real = builtins.__import__\n"
            "def importing(name, *args, **kwargs):\n"
            "    if name == 'zetcd.cli':\n"
            f"        os.kill(os.getpid(), signal.{signame})\n"
            "    return real(name, *args, **kwargs)\n"
            "builtins.__import__ = importing\n"
            "entry.main()\n"
            "print('served')\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, "--zkaddr", "127.0.0.1:0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, (signame, proc.stderr)
        assert "Traceback" not in proc.stderr and "served" not in proc.stdout

"""The stock Java (zkCli.sh) and C (cli_mt) clients, and a program of our own on the C client
library (tests/c/client_check.c), run against real ZooKeeper and zetcd."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.builds import built
from tests.conftest import Target
from tests.servers import EtcdServer, ZooKeeperServer
from tests.zetcd_server import ZetcdServer

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"
CLIENT_CHECK = Path(__file__).parent / "c" / "client_check.c"
# libzookeeper-mt-dev's headers and library; THREADED selects the multi-threaded API
GCC_ARGS = ("-O1", "-Wall", "-DTHREADED", "-I/usr/include/zookeeper")
GCC_LIBS = ("-lzookeeper_mt", "-lpthread")


def _run(argv: list[str], script: str, timeout: float = 90) -> str:
    env = dict(os.environ, CLIENT_JVMFLAGS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    proc = subprocess.run(
        argv, input=script.encode(), capture_output=True, timeout=timeout, env=env, check=False
    )
    return (proc.stdout + proc.stderr).decode("utf-8", "replace")


def test_java_zkcli(target: Target) -> None:
    root = f"/zkcli-{uuid.uuid4().hex[:8]}"
    script = "\n".join(
        [
            f"create {root} hello",
            f"get {root}",
            f"create -e {root}/eph e",
            f"create -s {root}/seq- s",
            f"ls {root}",
            f"set {root} world",
            f"get -s {root}",
            f"delete {root}",
            f"getAcl {root}",
            f"deleteall {root}",
            f"stat {root}",
            "quit",
        ]
    )
    out = _run([ZKCLI, "-server", target.address], script + "\n")
    assert "ConnectionLoss" not in out, out
    assert f"Created {root}" in out, out
    assert "hello" in out
    assert re.search(r"\[eph, seq-0000000001\]|\[seq-0000000001, eph\]", out), out
    assert "dataVersion = 1" in out, out
    assert f"Node not empty: {root}" in out, out
    assert "'world,'anyone" in out, out
    assert f"Node does not exist: {root}" in out, out


@pytest.mark.parametrize("kind", ["zookeeper", "zetcd"])
def test_java_zkcli_quotas(kind: str, etcd: EtcdServer) -> None:
    """zkCli's setquota writes the limits and stats nodes; listquota shows the counts the
    server keeps current; delquota removes the limit. On servers of its own: the shared ones'
    /zookeeper/quota is compared with a fresh server's elsewhere (test_crosscheck_e2e)."""
    server = ZooKeeperServer() if kind == "zookeeper" else ZetcdServer(etcd.endpoint)
    with server:
        _zkcli_quotas(server.address)


def _zkcli_quotas(address: str) -> None:
    root = f"/zkquota-{uuid.uuid4().hex[:8]}"
    script = "\n".join(
        [
            f"create {root} hello",
            f"create {root}/a 12345678",
            f"setquota -n 10 {root}",
            f"listquota {root}",
            f"create {root}/b xy",
            f"set {root} hi",
            f"delete {root}/a",
            f"listquota {root}",
            f"delquota -n {root}",
            f"listquota {root}",
            "quit",
        ]
    )
    out = _run([ZKCLI, "-server", address], script + "\n")
    assert "ConnectionLoss" not in out, out
    stats = re.findall(rf"Output stat for {root} (count=-?\d+,bytes=-?\d+)", out)
    assert stats[:2] == ["count=2,bytes=13", "count=2,bytes=4"], out
    assert re.search(rf"Output quota for {root} count=10,", out), out


def test_c_cli_mt(target: Target) -> None:
    root = f"/climt-{uuid.uuid4().hex[:8]}"
    script = "\n".join(
        [
            f"create {root}",
            f"set {root} hello",
            f"get {root}",
            f"create {root}/c",
            f"ls {root}",
            f"delete {root}/c",
            f"delete {root}",
            f"exists {root}",
            "quit",
        ]
    )
    out = _run([CLI_MT, "-h", target.address], script + "\n", timeout=30)
    assert "rc = -116" not in out and "rc = -4" not in out, out
    assert f"{root}: rc = 0" in out, out
    assert "hello" in out, out
    assert "c" in out
    assert f"Error -101 for {root}" in out, out  # exists after delete: NoNode


def _client_check() -> Path:
    """client_check.c compiled once per content (and gcc arguments) in the temp directory."""
    key = CLIENT_CHECK.read_bytes() + " ".join(GCC_ARGS + GCC_LIBS).encode()
    argv = ["gcc", *GCC_ARGS, "-o", "{out}/client_check", str(CLIENT_CHECK), *GCC_LIBS]
    return built("cclient", key, "client_check", argv) / "client_check"


def _run_client_check(address: str, root: str, *mode: str) -> str:
    proc = subprocess.run(
        [str(_client_check()), address, root, *mode],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr}"
    return proc.stdout


def test_c_client_transcript_as_zookeepers(etcd: EtcdServer) -> None:
    """client_check.c's transcript (zoo_get buffer lengths, create path buffers, create2 flags
    with containers and TTLs, Stat fields, raw child order, watches, multi results, async
    completion order, ACLs and auth, invalid paths, sync, remove_watches, chroot) is the same
    from zetcd as from ZooKeeper. On servers of the test's own: the transcript includes the
    system nodes' Stat and sequence numbers under /zookeeper, which only a fresh server has."""
    _client_check()  # compiled before any server starts
    root = f"/cclient-{uuid.uuid4().hex[:8]}"
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as zetcd:
        expected = _run_client_check(zk.address, root)
        actual = _run_client_check(zetcd.address, root)
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "zookeeper", "zetcd", lineterm=""
    )
    assert actual == expected, "\n".join(diff)
    lines = expected.splitlines()
    for line in (
        f"get {root}/d buflen=4 -> ZOK len=4 data='0123'",
        f"create {root}/longname pathbuf=6 -> ZOK '{root[:5]}'",
        f"create2_ttl {root}/ttl TTL ttl=100000 -> ZOK {root}/ttl",
        f"create2 {root}/c CONTAINER -> ZOK {root}/c",
        f"    ev[g1] CHANGED CONNECTED '{root}/w/a'",
        "  events(set a again): 0",
        "remove_watches r DATA R-get again -> ZNOWATCHER",
        "multi failing at op 2 -> ZBADVERSION",
        "  [3] type=2 err=ZRUNTIMEINCONSISTENCY",
        "issued=165 completed=165",
        "   then: state=AUTH_FAILED exists -> ZINVALIDSTATE unrecoverable=yes",
        "zoo_async 'bad' -> call ZBADARGUMENTS",
        "zookeeper_close h1 -> ZOK",
    ):
        assert line in lines, line


def test_c_client_multi_over_etcd_txn_limit(zetcd: ZetcdServer) -> None:
    """300 creates in one multi need more operations than etcd's --max-txn-ops (128) allows
    in one transaction: zetcd refuses the multi as a failed one (BadArguments for the first
    op, RuntimeInconsistency for the rest), which the C client takes without aborting, and
    creates nothing."""
    root = f"/cmulti-{uuid.uuid4().hex[:8]}"
    lines = _run_client_check(zetcd.address, root, "multi-limit", "300").splitlines()
    assert lines[1:] == [
        f"create {root} PERSISTENT vlen=0 -> ZOK {root}",
        "multi of 300 creates -> ZBADARGUMENTS",
        "  [0] err=ZBADARGUMENTS",
        "  [1..299] err=ZRUNTIMEINCONSISTENCY",
        f"exists {root} -> ZOK numChildren=0",
        "zookeeper_close h1 -> ZOK",
        "done",
    ], lines

"""The stock Java (zkCli.sh) and C (cli_mt) clients, run against real ZooKeeper and zetcd."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from tests.conftest import Target
from tests.servers import EtcdServer, ZooKeeperServer
from tests.zetcd_server import ZetcdServer

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"


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

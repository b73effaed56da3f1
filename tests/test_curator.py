"""Apache Curator 5 (Debian's libcurator-*-java) against both servers: the client Curator users
run first calls create2, createContainer and checkWatches at start-up. CuratorCheck.java checks a
few recipes on each server; CuratorRecipes.java prints a transcript of many, compared line for
line between ZooKeeper and zetcd."""

from __future__ import annotations

import difflib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.builds import built
from tests.conftest import Target
from tests.servers import EtcdServer, ZooKeeperServer
from tests.zetcd_server import ZetcdServer

CHECK_SOURCE = Path(__file__).parent / "curator" / "CuratorCheck.java"
RECIPES_SOURCE = Path(__file__).parent / "curator" / "CuratorRecipes.java"
JARS = "/usr/share/java"
CLASSPATH = ":".join(
    f"{JARS}/{j}.jar"
    for j in ("curator-client", "curator-framework", "curator-recipes", "guava", "zookeeper",
              "zookeeper-jute", "slf4j-api", "slf4j-nop")
)  # fmt: skip


def _compiled(source: Path) -> Path:
    """The directory holding ``source``'s classes, compiled once per content of the file."""
    argv = ["javac", "-nowarn", "-d", "{out}", "-cp", CLASSPATH, str(source)]
    jars = [os.stat(jar).st_mtime_ns for jar in CLASSPATH.split(":")]  # new jars: built again
    return built("curator", source.read_bytes() + repr(jars).encode(), f"{source.stem}.class", argv)


def test_curator_recipes(target: Target) -> None:
    classes = _compiled(CHECK_SOURCE)
    root = f"/curator-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Dzookeeper.sasl.client=false",
         "-cp", f"{classes}:{CLASSPATH}", "CuratorCheck", target.address, root],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for step in ("createContainers", "InterProcessMutex", "LeaderLatch", "PersistentWatcher",
                 "transaction", "all"):  # fmt: skip
        assert f"ok {step}" in out, out


# CuratorRecipes' sections, in two runs on fresh servers, with lines the ZooKeeper transcript
# must hold. Most sections need no container or TTL check during the run (an emptied lock
# container must not vanish between two lines): their servers check once an hour. "ttlnode"
# waits for TTL nodes and containers to go: its servers check every second. Not covered, as
# what Curator does there varies from run to run or with timing: session expiry and
# reconnection, bursts of concurrent changes, lock fairness, PathChildrenCache (it recreates its
# parent in the background), lock revocation, queue error modes.
RECIPE_RUNS = [
    pytest.param(
        "framework,watchers,config,curatorcache,treecache,nodecache,queue,idqueue,prioqueue,"
        "delayqueue,simplequeue,atomic,sharedcount,semaphore,semmutex,rwlock,multilock,"
        "leaderselector,barrier,doublebarrier,persistentnode,groupmember,ordering,multi,stats,"
        "acl,namespace,ephemerals",
        3_600_000,
        (
            "queue: consumed [m1, m2, multi0, multi1, m3, late]",
            "leaderselector: after close A participants [B*]",
            "rwlock: queued writer got true",
            "watchers: ev R PersistentWatchRemoved /wa/w",
            "acl: other read KeeperException.NOAUTH path=/acl/mine",
        ),
        id="recipes",
    ),
    pytest.param(
        "ttlnode",
        1000,
        (
            "ttlnode: touch child appears true children [touch]",
            "ttlnode: gone after close true",
            "ttlnode: never-used container alive true",
        ),
        id="ttl",
    ),
]


def _recipes_transcript(address: str, root: str, sections: str) -> list[str]:
    classes = _compiled(RECIPES_SOURCE)
    proc = subprocess.run(
        ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Dzookeeper.sasl.client=false",
         "-cp", f"{classes}:{CLASSPATH}", "CuratorRecipes", address, root, sections],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("sections", "check_interval_ms", "expected"), RECIPE_RUNS)
def test_curator_recipe_transcripts_match_zookeeper(
    etcd: EtcdServer, sections: str, check_interval_ms: int, expected: tuple[str, ...]
) -> None:
    """CuratorRecipes prints the same transcript on zetcd as on ZooKeeper: each on a fresh
    server, one at a time, under the same root (ZooKeeper's hash-set orders depend on paths)."""
    root = f"/recipes-{uuid.uuid4().hex[:8]}"
    jvm_opts = [f"-Dznode.container.checkIntervalMs={check_interval_ms}"]
    with ZooKeeperServer(jvm_opts=jvm_opts) as zk:
        zk_lines = _recipes_transcript(zk.address, root, sections)
    interval = ("--container-check-interval", str(check_interval_ms))
    with ZetcdServer(etcd.endpoint, extra_args=interval) as zetcd:
        zetcd_lines = _recipes_transcript(zetcd.address, root, sections)
    transcript = "\n".join(zk_lines)
    assert zk_lines[-1:] == ["done"], transcript
    assert [line for line in expected if line not in zk_lines] == [], transcript
    assert [line for line in zk_lines if ": EXC " in line] == [], transcript
    diff = "\n".join(difflib.unified_diff(zk_lines, zetcd_lines, "zookeeper", "zetcd", lineterm=""))
    assert not diff, diff

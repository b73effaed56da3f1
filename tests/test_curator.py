"""Apache Curator 5 (Debian's libcurator-*-java) against both servers: the client Curator users
run first calls create2, createContainer and checkWatches at start-up."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.conftest import Target

SOURCE = Path(__file__).parent / "curator" / "CuratorCheck.java"
JARS = "/usr/share/java"
CLASSPATH = ":".join(
    f"{JARS}/{j}.jar"
    for j in ("curator-client", "curator-framework", "curator-recipes", "guava", "zookeeper",
              "zookeeper-jute", "slf4j-api", "slf4j-nop")
)  # fmt: skip


def _compiled() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"zetcd-curator-{digest}"
    if not (out / "CuratorCheck.class").exists():
        tmp = Path(tempfile.mkdtemp(prefix="zetcd-curator-build-"))
        subprocess.run(
            ["javac", "-nowarn", "-d", str(tmp), "-cp", CLASSPATH, str(SOURCE)],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            os.replace(tmp, out)
        except OSError:  # another run built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def test_curator_recipes(target: Target) -> None:
    classes = _compiled()
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

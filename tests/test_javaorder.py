"""The Java iteration orders zetcd reproduces, checked against the JVM and ZooKeeper's own Id."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

from zetcd.emulation.javaorder import concurrent_set_order, java_hashset_clone_order

JUTE_JAR = Path("/usr/share/java/zookeeper-jute.jar")
JAVA_DIR = Path(__file__).parent / "java"


def run_java(program: str, stdin: str) -> list[list[str]]:
    """Run tests/java/<program>.java on ``stdin``; its output as cases of lines."""
    java = shutil.which("java")
    assert java is not None and JUTE_JAR.exists(), "java and ZooKeeper's jute jar are needed"
    out = subprocess.run(
        [java, "-cp", str(JUTE_JAR), str(JAVA_DIR / f"{program}.java")],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    ).stdout
    cases: list[list[str]] = [[]]
    for line in out.splitlines():
        if line:
            cases[-1].append(line)
        else:
            cases.append([])
    return cases[:-1]


def java_orders(cases: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    stdin = "".join("".join(f"{s}\t{i}\n" for s, i in case) + "\n" for case in cases)
    out = run_java("AuthSetOrder", stdin)
    return [[(line.split("\t", 1)[0], line.split("\t", 1)[1]) for line in case] for case in out]


def test_auth_id_order_matches_a_java_concurrent_hash_set() -> None:
    rng = random.Random(20261126)
    schemes = ["ip", "digest", "super", "x509", "sasl"]

    def ident() -> str:
        return "".join(rng.choice("abcxyz019:./é\U0001f600") for _ in range(rng.randint(0, 12)))

    cases = [
        [("ip", "127.0.0.1"), ("digest", "u1:zA0ezS8t5LMbyH4MJbQIOX8mNOs=")],
        [("ip", "127.0.0.1"), ("digest", "admin:x"), ("super", "")],
        [("ip", "::1"), ("ip", "::1"), ("digest", "a:b")],
    ]
    # enough distinct ids to make the table resize (at 12, 24 and 48 entries) with collisions
    cases += [
        [(rng.choice(schemes), ident()) for _ in range(rng.randint(1, 60))] for _ in range(60)
    ]
    assert java_orders(cases) == [concurrent_set_order(case) for case in cases]


def test_ephemeral_order_matches_a_cloned_java_hash_set() -> None:
    """A session's ephemerals come out of a clone of a HashSet that only ever grew."""
    rng = random.Random(7)
    cases: list[list[str]] = []
    models: list[list[str]] = []
    for _ in range(80):
        ops: list[str] = []
        held: dict[str, None] = {}
        peak = 0
        pool = [f"/app/n{i:03d}" for i in range(rng.randint(1, 70))] + ["/e", "/lock-0000000001"]
        for _ in range(rng.randint(1, 90)):
            name = rng.choice(pool)
            if name in held and rng.random() < 0.4:
                ops.append(f"-{name}")
                del held[name]
            elif name not in held:
                ops.append(f"+{name}")
                held[name] = None
                peak = max(peak, len(held))
        cases.append(ops)
        models.append(java_hashset_clone_order(held, peak))
    stdin = "".join("".join(f"{op}\n" for op in ops) + "\n" for ops in cases)
    assert run_java("HashSetCloneOrder", stdin) == models

"""The Java iteration orders zetcd reproduces, checked against the JVM and ZooKeeper's own Id."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

from zetcd.emulation.javaorder import concurrent_set_order

JUTE_JAR = Path("/usr/share/java/zookeeper-jute.jar")
PROGRAM = Path(__file__).parent / "java" / "AuthSetOrder.java"


def java_orders(cases: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    java = shutil.which("java")
    assert java is not None and JUTE_JAR.exists(), "java and ZooKeeper's jute jar are needed"
    stdin = "".join("".join(f"{s}\t{i}\n" for s, i in case) + "\n" for case in cases)
    out = subprocess.run(
        [java, "-cp", str(JUTE_JAR), str(PROGRAM)],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
        timeout=120,
    ).stdout
    orders: list[list[tuple[str, str]]] = [[]]
    for line in out.splitlines():
        if line:
            scheme, ident = line.split("\t", 1)
            orders[-1].append((scheme, ident))
        else:
            orders.append([])
    return orders[:-1]


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

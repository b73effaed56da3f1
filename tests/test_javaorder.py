"""The Java iteration orders zetcd reproduces, checked against the JVM and ZooKeeper's own Id."""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from zetcd.emulation.javaconcurrent import ConcurrentTable
from zetcd.emulation.javahashset import JavaHashSet, clone_order, copy_order, spread
from zetcd.emulation.javaorder import concurrent_set_order, java_long_hash, java_string_hash
from zetcd.emulation.javatree import long_before, string_before
from zetcd.emulation.layout import Layout
from zetcd.emulation.tree import Node, Tree

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


def colliding_names(rng: random.Random, prefix: str = "") -> list[str]:
    """Names (after ``prefix``) that crowd Java hash buckets: 32 with one hash code (blocks of
    ``Aa`` and ``BB``), and names sharing the low bits of their spread hash but not its high
    bits (so that a tree bin orders them by hash), with a few ordinary ones."""
    family = ["".join(blocks) for blocks in itertools.product(("Aa", "BB"), repeat=5)]
    shared: dict[int, list[str]] = {}
    while max((len(v) for v in shared.values()), default=0) < 40:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6))
        shared.setdefault(spread(prefix + name) & 127, []).append(name)
    crowded = max(shared.values(), key=len)
    near = shared.get((spread(prefix + crowded[0]) & 127) ^ 64, [])  # apart from 128 buckets on
    ordinary = [f"n{k}" for k in range(20)]
    return [prefix + n for n in family + crowded + near + ordinary]


def script(rng: random.Random, keys: list[Any]) -> list[str]:
    """Random adds ("+key") and removes ("-key") of ``keys``, with "list" now and then and at
    the end."""
    held: set[Any] = set()
    ops: list[str] = []
    for _ in range(rng.randint(20, 300)):
        key = rng.choice(keys)
        if key in held and rng.random() < 0.45:
            held.discard(key)
            ops.append(f"-{key}")
        else:
            held.add(key)
            ops.append(f"+{key}")
        if rng.random() < 0.06:
            ops.append("list")
    return [*ops, "list"]


def scripts(seed: int, initial: int, prefix: str = "") -> list[tuple[str, list[str]]]:
    """Scripts of colliding names, each with a start command."""
    rng = random.Random(seed)
    out = []
    for _ in range(40):
        names = colliding_names(rng, prefix)
        out.append((f"new {initial}", script(rng, rng.sample(names, rng.randint(12, len(names))))))
    return out


def java_lists(cases: list[tuple[str, list[str]]], extra: tuple[str, ...] = ()) -> list[list[str]]:
    """What SetOps prints for each case's ``list`` commands, and ``extra`` commands after
    each case's last one."""
    stdin = "".join(
        start + "\n" + "".join(f"{op}\n" for op in ops + list(extra)) for start, ops in cases
    )
    return run_java("SetOps", stdin)


def test_the_hash_set_model_matches_java_with_tree_bins() -> None:
    """JavaHashSet against java.util.HashSet: bins that reach nine names (early doubling under
    64 buckets, tree bins from 64), removals back to lists, splits on resize; and the orders
    of a clone and of a copy made from it."""
    cases = scripts(1, 16) + scripts(2, 8) + scripts(3, 1)
    expected: list[list[str]] = []
    for start, ops in cases:
        model = JavaHashSet(int(start.split()[1]))
        for op in ops:
            if op == "list":
                expected.append(list(model))
            elif op[0] == "+":
                model.add(op[1:])
            else:
                model.discard(op[1:])
        expected += [clone_order(model), copy_order(model)]
    assert java_lists(cases, ("clone", "copy")) == expected


def test_a_nodes_children_follow_java_past_eight_in_a_bucket() -> None:
    """A node's children (ZooKeeper's HashSet(8)) through Node.add_child and remove_child:
    the cheap model until a bucket would get a ninth name, the exact one from then on."""
    cases = scripts(4, 8)
    expected: list[list[str]] = []
    for _, ops in cases:
        node = Node(1, 1, (0,) * 10, b"")  # type: ignore[arg-type]
        for op in ops:
            if op == "list":
                expected.append(list(node.ordered_children()))
            elif op[0] == "+":
                node.add_child(op[1:])
            else:
                node.remove_child(op[1:])
    assert java_lists(cases) == expected


def colliding_longs(rng: random.Random) -> list[int]:
    """Longs whose Long.hashCode collide (high and low halves with one xor), some negative."""
    out = []
    for base in (0x5A5A, 0x1234):
        for k in rng.sample(range(1, 1 << 32), 40):
            out.append(((k << 32) | (k ^ base)) - (1 << 64 if k >> 31 else 0))
    return out


def test_concurrent_sets_match_java_with_tree_bins() -> None:
    """ConcurrentTable against ConcurrentHashMap.newKeySet(), of Strings (ZooKeeper's sets of
    container and TTL nodes) and of Longs (its sessions with ephemerals): early growth by
    tryPresize under 64 bins, tree bins from 64 (new keys in front), back to lists."""
    cases = [("concurrent", ops) for _, ops in scripts(6, 16, "/c/")]
    rng = random.Random(8)
    for _ in range(30):
        cases.append(("longs", script(rng, colliding_longs(rng))))
    expected: list[list[str]] = []
    for start, ops in cases:
        table: ConcurrentTable[Any] = (
            ConcurrentTable(java_string_hash, string_before)
            if start == "concurrent"
            else ConcurrentTable(java_long_hash, long_before)
        )
        for op in ops:
            if op == "list":
                expected.append([str(k) for k in table])
            else:
                key: Any = op[1:] if start == "concurrent" else int(op[1:])
                (table.add if op[0] == "+" else table.discard)(key)
    assert java_lists(cases) == expected


def test_ephemeral_order_matches_a_cloned_java_hash_set() -> None:
    """A session's ephemerals (a HashSet() per session in ZooKeeper's DataTree) through the
    tree's index: getEphemerals and closeSession list a clone of the set, dump the set."""
    cases = [(start.replace("new 8", "new 16"), ops) for start, ops in scripts(5, 16, "/app/")]
    rng = random.Random(7)
    for _ in range(40):  # ordinary paths, enough to grow the table and shrink the set
        pool = [f"/app/n{i:03d}" for i in range(rng.randint(1, 70))] + ["/e", "/lock-1"]
        ops = [f"{rng.choice('+-')}{rng.choice(pool)}" for _ in range(rng.randint(1, 90))]
        cases.append(("new 16", [*ops, "list"]))
    expected: list[list[str]] = []
    for _, ops in cases:
        tree = Tree(Layout())
        tree.sessions[1] = None  # type: ignore[assignment]  # alive: its set stays when emptied
        for op in ops:
            if op == "list":
                expected.append(tree.ephemerals_in_java_order(1))
                expected.append(dict(tree.ephemeral_sets()).get(1, []))
            elif op[0] == "+":
                tree._index(1, op[1:])
            else:
                tree._unindex(1, op[1:])
    stdin = "".join(
        start + "\n" + "".join("clone\nlist\n" if op == "list" else f"{op}\n" for op in ops)
        for start, ops in cases
    )
    assert run_java("SetOps", stdin) == expected

"""Record golden wire traffic of real ZooKeeper clients talking to a real ZooKeeper 3.8.

Starts a ZooKeeper (``tests/servers.py``), puts a :class:`~tools.record_relay.RecordingRelay`
in front of it and drives three real clients through it:

- ``kazoo``: the Python client (every call it has, watches, multi success and failure, auth,
  a ping, a dropped connection resumed, four-letter words, closeSession);
- ``zkcli``: the Java client's ``zkCli.sh``, fed commands on stdin (one connection per session,
  a dropped connection resumed with setWatches2, ``close`` and ``connect``), plus one
  single-command invocation;
- ``climt``: the C client's ``cli_mt``, fed commands on stdin, plus one ``-c`` invocation.

Each relayed connection becomes ``tests/golden/<client>-<n>.json`` (see ``record_relay``), and a
table of the opcodes, error codes and notifications each client produced is printed::

    python -m tools.record_golden                 # all clients, into tests/golden
    python -m tools.record_golden --clients kazoo --out /tmp/golden
    python -m tools.record_golden --summary-only  # just the table for existing recordings
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tests.servers import ZooKeeperServer
from tools.record_relay import Recording, RecordingRelay

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO / "tests" / "golden"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"
CLIENTS = ("kazoo", "zkcli", "climt")

OPCODES = {
    1: "create",
    2: "delete",
    3: "exists",
    4: "getData",
    5: "setData",
    6: "getACL",
    7: "setACL",
    8: "getChildren",
    9: "sync",
    11: "ping",
    12: "getChildren2",
    13: "check",
    14: "multi",
    15: "create2",
    16: "reconfig",
    17: "checkWatches",
    18: "removeWatches",
    19: "createContainer",
    20: "deleteContainer",
    21: "createTTL",
    22: "multiRead",
    100: "auth",
    101: "setWatches",
    102: "sasl",
    103: "getEphemerals",
    104: "getAllChildrenNumber",
    105: "setWatches2",
    106: "addWatch",
    107: "whoAmI",
    -10: "createSession",
    -11: "closeSession",
    -1: "error",
}
EVENT_TYPES = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged", 4: "NodeChildrenChanged"}

STEP_TIMEOUT = 20.0


# -- waiting on the relay ----------------------------------------------------------------


def _pending(rec: Recording) -> int:
    """Requests of a framed connection still waiting for their reply."""
    frames = rec.frames
    if not frames or frames[0]["dir"] != "c2s":
        return 0
    outstanding: Counter[int] = Counter()
    for frame in frames[2:]:
        body = bytes.fromhex(frame["hex"])
        if len(body) < 4:
            continue
        (xid,) = struct.unpack_from(">i", body)
        if frame["dir"] == "c2s":
            outstanding[xid] += 1
        elif frame["dir"] == "s2c" and xid != -1 and outstanding[xid] > 0:
            outstanding[xid] -= 1
    return sum(outstanding.values())


def _frame_count(relay: RecordingRelay) -> int:
    return sum(len(rec.frames) for rec in relay.snapshot())


def wait_quiet(relay: RecordingRelay, before: int, quiet: float = 0.25) -> None:
    """Wait until new frames arrived after ``before``, all requests are answered, and the wire
    has been silent for ``quiet`` seconds."""
    deadline = time.monotonic() + STEP_TIMEOUT
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        snap = relay.snapshot()
        count = sum(len(rec.frames) for rec in snap)
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        elif count > before and sum(map(_pending, snap)) == 0 and now - last_change >= quiet:
            return
        time.sleep(0.02)
    raise TimeoutError(f"no quiet wire after {STEP_TIMEOUT}s (frames {before} -> {last_count})")


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _has_opcode(relay: RecordingRelay, client: str, number: int, opcode: int) -> bool:
    for rec in relay.snapshot():
        if rec.client == client and rec.number == number:
            for frame in rec.frames[1:]:
                if frame["dir"] == "c2s":
                    body = bytes.fromhex(frame["hex"])
                    if len(body) >= 8 and struct.unpack_from(">i", body, 4)[0] == opcode:
                        return True
    return False


def _connections(relay: RecordingRelay, client: str) -> int:
    return sum(1 for rec in relay.snapshot() if rec.client == client)


# -- interactive command-line clients ------------------------------------------------------


class LineClient:
    """A command-line client fed one command at a time on stdin; output goes to a log."""

    def __init__(self, argv: Sequence[str], relay: RecordingRelay, log: Path, env: dict[str, str]):
        self.relay = relay
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def send(self, line: str, *, wire: bool = True) -> None:
        """Type one command; with ``wire`` wait for the traffic it causes to settle."""
        assert self.proc.stdin is not None
        before = _frame_count(self.relay)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        if wire:
            wait_quiet(self.relay, before)
        else:
            time.sleep(0.3)

    def finish(self, timeout: float = 30.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


def _java_env() -> dict[str, str]:
    env = dict(os.environ)
    # Fast JVM start for a short-lived client; zkCli has no slf4j binding on its class path, so
    # it only prints slf4j's "NOP logger" notice and no log lines.
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
    return env


# -- the three clients ----------------------------------------------------------------------


def record_kazoo(relay: RecordingRelay) -> None:
    from kazoo.client import KazooClient, KazooState
    from kazoo.exceptions import (
        BadVersionError,
        KazooException,
        NoChildrenForEphemeralsError,
        NoNodeError,
        NotEmptyError,
    )
    from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

    relay.client_name = "kazoo"
    events: list[object] = []
    connected = threading.Event()

    def listener(state: str) -> None:
        if state == KazooState.CONNECTED:
            connected.set()
        else:
            connected.clear()

    client = KazooClient(hosts=relay.address, timeout=4.0)
    client.add_listener(listener)
    client.start(timeout=STEP_TIMEOUT)
    try:
        base = "/kazoo"
        client.create(base, b"root")
        client.create(f"{base}/c2", b"two", include_data=True)
        client.create(f"{base}/eph", b"", ephemeral=True)
        sequential = client.create(f"{base}/seq-", b"s", sequence=True)
        client.create(f"{base}/eseq-", b"", ephemeral=True, sequence=True)
        client.exists(f"{base}/w", watch=events.append)
        client.create(f"{base}/w", b"v0")
        client.get(f"{base}/w", watch=events.append)
        client.exists(f"{base}/w", watch=events.append)
        client.set(f"{base}/w", b"v1")
        client.get_children(base, watch=events.append)
        client.create(f"{base}/kid", b"")
        client.get_children(base, include_data=True)
        client.get_acls(f"{base}/c2")
        client.set_acls(f"{base}/c2", OPEN_ACL_UNSAFE, version=0)
        client.sync(base)
        client.delete(sequential, version=0)
        failing: list[Callable[[], object]] = [
            lambda: client.set(f"{base}/w", b"x", version=99),
            lambda: client.get(f"{base}/missing"),
            lambda: client.delete(base),
            lambda: client.create(f"{base}/eph/child"),
        ]
        for call in failing:
            with contextlib.suppress(
                BadVersionError, NoNodeError, NotEmptyError, NoChildrenForEphemeralsError
            ):
                call()
        tx = client.transaction()
        tx.create(f"{base}/tx", b"t")
        tx.set_data(f"{base}/w", b"v2")
        tx.check(f"{base}/w", 2)
        tx.delete(f"{base}/kid")
        tx.commit()
        tx = client.transaction()
        tx.create(f"{base}/tx2", b"t")
        tx.check(f"{base}/w", 99)
        tx.delete(f"{base}/tx")
        tx.commit()
        client.add_auth("digest", "user:pw")
        client.create(f"{base}/secret", b"s", acl=[make_digest_acl("user", "pw", all=True)])
        client.get(f"{base}/secret")
        with contextlib.suppress(KazooException):
            client.reconfig("server.5=127.0.0.1:1234:1235;2181", leaving=None, new_members=None)
        client.server_version()  # a separate connection sending "envi"
        client.command(b"ruok")  # and one sending "ruok"
        # Wait for an idle-time ping (kazoo pings after about a third of the session timeout).
        wait_for("a kazoo ping", lambda: _has_opcode(relay, "kazoo", 1, 11))
        # Outstanding watches, then a dropped connection: kazoo resumes the session on a new
        # connection and re-sends its auth (kazoo 2.11 has no setWatches: the watches are lost).
        client.exists(f"{base}/later", watch=events.append)
        client.get(f"{base}/w", watch=events.append)
        client.get_children(f"{base}/tx", watch=events.append)
        connections = _connections(relay, "kazoo")
        relay.drop_connections()
        wait_for("kazoo to reconnect", lambda: _connections(relay, "kazoo") > connections)
        connected.wait(STEP_TIMEOUT)
        client.create(f"{base}/later", b"")
        client.set(f"{base}/w", b"v3")
        client.delete(f"{base}/later")
    finally:
        client.stop()
        client.close()
    relay.wait_idle()


def record_zkcli(relay: RecordingRelay, logs: Path) -> None:
    relay.client_name = "zkcli"
    env = _java_env()
    # One single-command invocation: connect, one request (an error reply), exit with status 1.
    one = subprocess.run(
        [ZKCLI, "-server", relay.address, "get", "/zkcli-missing"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=60,
    )
    (logs / "zkcli-single.log").write_bytes(one.stdout + one.stderr)
    relay.wait_idle()
    cli = LineClient([ZKCLI, "-server", relay.address], relay, logs / "zkcli.log", env)
    for line in [
        "create /zk",
        "create /zk/a data",
        "create -e /zk/eph e",
        "create -s /zk/seq- s",
        "create -e -s /zk/eseq- s",
        "create -c /zk/cont",
        "create -c /zk/cont/kid k",
        "create -t 60000 /zk/ttl t",
        "create /zk/a again",
        "get -s /zk/a",
        "get -w /zk/a",
        "stat -w /zk/a",
        "set /zk/a data2",
        "set -s -v 1 /zk/a data3",
        "set -v 99 /zk/a bad",
        "ls /zk",
        "ls -s /zk",
        "ls -w /zk",
        "create /zk/b b",
        "ls -R /zk",
        "stat /zk/missing",
        "get /zk/missing",
        "getAcl /zk/a",
        "setAcl /zk/a world:anyone:cdrwa",
        "setAcl -v 5 /zk/a world:anyone:cdrwa",
        "addauth digest user:pw",
        "create /zk/secret s auth:user:pw:cdrwa",
        "getAcl -s /zk/secret",
        "whoami",
        "sync /zk",
        "getEphemerals",
        "getEphemerals /zk",
        "getAllChildrenNumber /zk",
        "get -w /zk/b",
        "removewatches /zk/b -d",
        "removewatches /zk/b",
        "addWatch /zk/a",
        "addWatch -m PERSISTENT_RECURSIVE /zk",
        "ls -w /zk/cont",
        "delete -v 0 /zk/b",
        "delete /zk",
        "deleteall /zk/cont",
        "config",
        "reconfig -add server.5=127.0.0.1:1234:1235;2181",
        "setquota -n 10 /zk",
        "listquota /zk",
        "delquota /zk",
    ]:
        cli.send(line)
    # Drop the connection: the Java client resumes its session on a new one and re-arms its
    # watches (persistent ones included) with setWatches2.
    connections = _connections(relay, "zkcli")
    relay.drop_connections()
    wait_for("zkCli to reconnect", lambda: _connections(relay, "zkcli") > connections)
    number = max(rec.number for rec in relay.snapshot() if rec.client == "zkcli")
    wait_for("zkCli setWatches2", lambda: _has_opcode(relay, "zkcli", number, 105))
    wait_quiet(relay, 0)
    for line in ["set /zk/a after", "create /zk/c c", "close"]:
        cli.send(line)
    cli.send(f"connect {relay.address}")
    cli.send("ls /")
    code = cli.finish()
    if code != 0:
        raise RuntimeError(f"zkCli exited with {code}; see {logs / 'zkcli.log'}")
    relay.wait_idle()


def record_climt(relay: RecordingRelay, logs: Path) -> None:
    relay.client_name = "climt"
    one = subprocess.run(
        [CLI_MT, "-h", relay.address, "-c", "create /climt-single"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    (logs / "climt-single.log").write_bytes(one.stdout + one.stderr)
    relay.wait_idle()
    cli = LineClient([CLI_MT, "-h", relay.address], relay, logs / "climt.log", dict(os.environ))
    wait_for("cli_mt to connect", lambda: _connections(relay, "climt") > 1)
    wait_quiet(relay, 0)
    for line in [
        "create /cm",
        "create2 /cm/a",
        "create +e /cm/eph",
        "create +s /cm/seq-",
        "create2 +es /cm/eseq-",
        "create +c /cm/cont",
        "create +t=60000 /cm/ttl",
        "create /cm",
        "set /cm/a data",
        "get /cm/a",
        "set /cm/a data2",
        "ls /cm",
        "ls2 /cm",
        "exists /cm/a",
        "wexists /cm/later",
        "create /cm/later",
        "sync /cm",
        "get /cm/missing",
        "delete /cm",
        "delete /cm/later",
        "addauth digest user:pw",
        "config",
        "reconfig -add 5=127.0.0.1:1234:1235;2181",
        "aget /cm/a",
        "wexists /cm/after",
        "get /cm/a",
    ]:
        cli.send(line)
    cli.send("myid", wire=False)
    # Dropped connection: the C client resumes its session and re-arms watches (setWatches).
    connections = _connections(relay, "climt")
    relay.drop_connections()
    wait_for("cli_mt to reconnect", lambda: _connections(relay, "climt") > connections)
    number = max(rec.number for rec in relay.snapshot() if rec.client == "climt")
    wait_for("cli_mt setWatches", lambda: _has_opcode(relay, "climt", number, 101))
    wait_quiet(relay, 0)
    for line in ["create /cm/after", "set /cm/a data3"]:
        cli.send(line)
    cli.send("quit")
    code = cli.finish()
    if code != 0:
        raise RuntimeError(f"cli_mt exited with {code}; see {logs / 'climt.log'}")
    relay.wait_idle()


# -- the coverage summary --------------------------------------------------------------------


def _op_name(op: int) -> str:
    return f"{op} {OPCODES.get(op, '?')}"


class _Reader:
    """Just enough jute to walk multi bodies for the summary (the real codec is zetcd.proto)."""

    def __init__(self, body: bytes, offset: int) -> None:
        self.body = body
        self.offset = offset

    def read_int(self) -> int:
        (value,) = struct.unpack_from(">i", self.body, self.offset)
        self.offset += 4
        return int(value)

    def skip(self, n: int) -> None:
        self.offset += n

    def buffer(self) -> None:
        self.skip(max(self.read_int(), 0))

    def acls(self) -> None:
        for _ in range(max(self.read_int(), 0)):
            self.skip(4)
            self.buffer()
            self.buffer()


_STAT_SIZE = 68


def _multi_ops(body: bytes) -> list[int]:
    """The op types inside a multi request body (after the RequestHeader)."""
    reader = _Reader(body, 8)
    ops = []
    while reader.offset + 9 <= len(body):
        op_type, done, _err = struct.unpack_from(">i?i", body, reader.offset)
        reader.skip(9)
        if done:
            break
        ops.append(op_type)
        reader.buffer()  # every op starts with its path
        if op_type in (1, 15, 19, 21):
            reader.buffer()
            reader.acls()
            reader.skip(4 + (8 if op_type == 21 else 0))
        elif op_type == 5:
            reader.buffer()
            reader.skip(4)
        elif op_type in (2, 13):
            reader.skip(4)
        elif op_type in (4, 8):
            reader.skip(1)
        else:
            break
    return ops


def _multi_result(body: bytes) -> str:
    reader = _Reader(body, 16)
    results = []
    while reader.offset + 9 <= len(body):
        op_type, done, _err = struct.unpack_from(">i?i", body, reader.offset)
        reader.skip(9)
        if done:
            break
        if op_type == -1:
            results.append(f"error({reader.read_int()})")
            continue
        results.append(OPCODES.get(op_type, str(op_type)))
        if op_type in (1, 19, 21):
            reader.buffer()
        elif op_type == 15:
            reader.buffer()
            reader.skip(_STAT_SIZE)
        elif op_type == 5:
            reader.skip(_STAT_SIZE)
        elif op_type not in (2, 13):
            break
    return ", ".join(results) if results else "?"


def coverage(recordings: Iterable[dict[str, object]]) -> dict[str, dict[str, Counter[str]]]:
    """Per client: opcodes sent, error codes replied, notifications, specials."""
    table: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for rec in recordings:
        client = str(rec["client"])
        frames = rec["frames"]
        assert isinstance(frames, list)
        row = table[client]
        row["connections"]["total"] += 1
        if frames and frames[0]["dir"] == "c2s-raw":
            row["4lw"][bytes.fromhex(frames[0]["hex"])[:4].decode()] += 1
            continue
        requests: dict[int, int] = {}
        for index, frame in enumerate(frames):
            body = bytes.fromhex(frame["hex"])
            if index == 0 and frame["dir"] == "c2s":
                row["connect"][
                    f"{len(body)}-byte" + (" resume" if body[16:24] != bytes(8) else "")
                ] += 1
                continue
            if index == 1 and frame["dir"] == "s2c":
                continue
            if frame["dir"] == "c2s" and len(body) >= 8:
                xid, op = struct.unpack_from(">ii", body)
                requests[xid] = op
                row["opcodes"][_op_name(op)] += 1
                if op == 14:
                    row["multi ops"].update(_op_name(o) for o in _multi_ops(body))
            elif frame["dir"] == "s2c" and len(body) >= 16:
                xid, _zxid, err = struct.unpack_from(">iqi", body)
                if xid == -1:
                    (event,) = struct.unpack_from(">i", body, 16)
                    row["notifications"][EVENT_TYPES.get(event, str(event))] += 1
                elif err:
                    row["errors"][f"{_op_name(requests.get(xid, 0))}: {err}"] += 1
                elif requests.get(xid) == 14:
                    row["multi results"][_multi_result(body)] += 1
    return table


def format_coverage(table: dict[str, dict[str, Counter[str]]]) -> str:
    lines = []
    for client in sorted(table):
        lines.append(f"== {client}")
        for key in ("connections", "connect", "4lw", "opcodes", "multi ops", "multi results"):
            if table[client].get(key):
                items = sorted(table[client][key].items(), key=lambda kv: _sort_key(kv[0]))
                lines.append(f"  {key:14} " + ", ".join(f"{k} x{v}" for k, v in items))
        for key in ("errors", "notifications"):
            if table[client].get(key):
                items = sorted(table[client][key].items())
                lines.append(f"  {key:14} " + ", ".join(f"{k} x{v}" for k, v in items))
    return "\n".join(lines)


def _sort_key(label: str) -> tuple[int, str]:
    head = label.split(" ", 1)[0]
    try:
        return (int(head), label)
    except ValueError:
        return (1 << 30, label)


def load_recordings(directory: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR)
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args(argv)
    out: Path = args.out
    if not args.summary_only:
        out.mkdir(parents=True, exist_ok=True)
        for client in args.clients:
            for old in out.glob(f"{client}-*.json"):
                old.unlink()
        logs = Path(os.environ.get("TMPDIR", "/tmp")) / "zetcd-record-golden"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        with (
            ZooKeeperServer() as zookeeper,
            RecordingRelay((zookeeper.host, zookeeper.port), out) as relay,
        ):
            print(f"ZooKeeper {zookeeper.address}, relay {relay.address}", file=sys.stderr)
            for client in args.clients:
                started = time.monotonic()
                if client == "kazoo":
                    record_kazoo(relay)
                elif client == "zkcli":
                    record_zkcli(relay, logs)
                else:
                    record_climt(relay, logs)
                print(f"{client}: {time.monotonic() - started:.1f}s", file=sys.stderr)
        print(f"client output in {logs}", file=sys.stderr)
    recordings = [r for r in load_recordings(out) if r["client"] in args.clients]
    size = sum(p.stat().st_size for p in out.glob("*.json"))
    print(format_coverage(coverage(recordings)))
    print(f"{len(recordings)} recordings, {size} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

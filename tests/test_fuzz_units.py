"""zetcd-fuzz's parts that need no real server: steps as data (JSON, reprs), what goes on the
wire, the client's outcomes against a scripted server, event and reply comparison, signatures,
coverage, snippets, and the strategies' promise never to crash ZooKeeper."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz.ops as ops_module
from fuzz import report
from fuzz import strategies as fs
from fuzz.campaign import Campaign, Config, Found
from fuzz.client import CLOSED, REPLY, TIMEOUT, UNDECODABLE, Connection
from fuzz.compare import CANDIDATE, ORACLE, compare_events, signature
from fuzz.coverage import ERROR_FAMILIES, TARGET_OPCODES, Coverage
from fuzz.driver import Driver, StepResult, _creates_ttl_crash
from fuzz.ops import (
    AddWatch,
    Auth,
    Check,
    Close,
    Create,
    Delete,
    DeleteContainer,
    Drop,
    Exists,
    Expire,
    GetACL,
    GetAllChildrenNumber,
    GetChildren,
    GetData,
    GetEphemerals,
    Mangled,
    Multi,
    Open,
    Ping,
    Pipeline,
    QuotaStats,
    Reconfig,
    Recreate,
    RemoveWatches,
    Resume,
    SetACL,
    SetData,
    Step,
    Sync,
    Unknown,
    WhoAmI,
    fails_prep_unchecked,
    multi_body,
    op_from_json,
    step_from_json,
    step_to_json,
    wire,
)
from fuzz.replay import snippet
from oracle.diff import FieldDiff
from oracle.records import WATCH_EXTRA, WATCH_MISSING, WATCH_ORDER, Divergence
from zetcd.proto.codec import (
    decode,
    decode_connect_request,
    encode,
    encode_connect_response,
)
from zetcd.proto.connection import ServerProtocol
from zetcd.proto.constants import TTL_MODES, CreateMode, Err, EventType, OpCode
from zetcd.proto.errors import ProtocolError
from zetcd.proto.framing import NEED_DATA, FrameReader, frame
from zetcd.proto.records import (
    ConnectRequest,
    ConnectResponse,
    GetDataResponse,
    MultiOp,
    MultiRequest,
    ReplyHeader,
    Stat,
    WatcherEvent,
)

EVERY_OP: list[Any] = [
    Open(40000, None),
    Close(),
    Drop(),
    Resume(4000, 2, True),
    Expire(),
    Create("/a/q", None, ((1, "digest", "u1:x"), (31, "world", "anyone")), 3, OpCode.CREATE2),
    Create("/t", b"\x00\xff", (), 5, OpCode.CREATE_TTL, 2**40 - 1),
    Delete("/a", 3),
    SetData("/a", b"x", -1),
    Check("/a", -2),
    Exists("/a\x00b", True),
    GetData("/\U0001f600", True),
    GetChildren("/", True, True),
    Sync("a"),
    GetACL("/a"),
    SetACL("/a", None, 1),
    Multi((Create("/m"), Delete("/m"), SetData("/a"), Check("/a", 0), GetData("/a"))),
    Multi((GetData("/a"), GetChildren("/a", False, True)), read=True),
    Auth("digest", b"u1:p1"),
    AddWatch("/a", 1),
    RemoveWatches("/a", 5, True),
    GetEphemerals("/"),
    GetAllChildrenNumber("/a"),
    QuotaStats(),
    WhoAmI(),
    Ping(),
    Reconfig(),
    DeleteContainer("/a"),
    Recreate(0x7FFFFFFF),
    Unknown(999),
    Mangled(Multi((Create("/m"),)), 2),
    Mangled(GetData("/a"), -3),
    Pipeline((SetData("/a", b"1"), SetACL("/a", None), Exists("/a", True))),
]


def full(rel: str) -> str:
    return "/fz" + rel if rel.startswith("/") else rel


# --- steps as data ------------------------------------------------------------------------


@pytest.mark.parametrize("op", EVERY_OP, ids=lambda op: type(op).__name__)
def test_steps_round_trip_through_json_and_repr(op: Any) -> None:
    step = Step(3, op)
    assert step_from_json(json.loads(json.dumps(step_to_json(step)))) == step
    namespace = {name: getattr(ops_module, name) for name in ops_module.OP_TYPES}
    namespace.update(Step=Step, OpCode=OpCode)
    assert eval(repr(step), namespace) == step


def test_every_op_type_is_covered_here() -> None:
    assert {type(op).__name__ for op in EVERY_OP} == set(ops_module.OP_TYPES)
    with pytest.raises(ValueError, match="unknown op type"):
        op_from_json({"$type": "Nope"})


def test_a_multi_of_writes_is_the_codecs_encoding() -> None:
    ops = (Create("/m", b"d", flags=2), Delete("/m", 1), SetData("/a", None, 0), Check("/a"))
    record = Multi(ops).request_body(full)
    assert multi_body(ops, full) == encode(record)
    assert decode(MultiRequest, multi_body(ops, full)) == record


def test_a_mixed_multi_goes_out_although_the_codec_refuses_it() -> None:
    ops = (Create("/m"), GetData("/a"))
    record, raw = wire(Multi(ops), full)
    assert record == MultiRequest(()) and raw is not None
    with pytest.raises(ProtocolError, match="mixes read and write"):
        decode(MultiRequest, raw)
    assert Multi(ops).request_body(full) == MultiRequest(
        (
            MultiOp(OpCode.CREATE, Create("/m").request_body(full)),
            MultiOp(4, GetData("/a").request_body(full)),
        )
    )


def test_mangled_bodies_are_cut_or_extended() -> None:
    whole = encode(GetData("/a").request_body(full))
    assert wire(Mangled(GetData("/a"), 3), full)[1] == whole[:-3]
    assert wire(Mangled(GetData("/a"), -2), full)[1] == whole + b"\x00\x00"
    assert wire(GetData("/a"), full) == (GetData("/a").request_body(full), None)


def test_paths_are_relative_to_the_examples_tree() -> None:
    driver = Driver({CANDIDATE: "127.0.0.1:1", ORACLE: "127.0.0.1:1"}, "/fz-x-1")
    assert driver.full("/") == "/fz-x-1/t"
    assert driver.full("/a/b") == "/fz-x-1/t/a/b"
    assert driver.full("//a") == "/fz-x-1/t//a"
    assert driver.full("a") == "a" and driver.full("") == ""
    assert driver.relative("/fz-x-1/t") == "/"
    assert driver.relative("/fz-x-1/t/a0000000001") == "/a0000000001"
    assert driver.relative("/fz-x-1/t0000000002") is None
    assert driver.relative(None) is None


def test_requests_that_crash_zookeeper_are_recognized() -> None:
    crash = Create("/t", flags=0, opcode=OpCode.CREATE_TTL, ttl=-1)
    assert _creates_ttl_crash(crash)
    assert _creates_ttl_crash(Multi((Create("/a"), crash)))
    assert _creates_ttl_crash(Mangled(crash, -3))
    assert not _creates_ttl_crash(Create("/t", flags=5, opcode=OpCode.CREATE_TTL, ttl=-1))
    assert not _creates_ttl_crash(Create("/t", flags=0, opcode=OpCode.CREATE_TTL, ttl=10))


@settings(max_examples=200, suppress_health_check=list(HealthCheck), database=None)
@given(st.data())
def test_strategies_never_build_a_request_that_crashes_zookeeper(data: st.DataObject) -> None:
    paths = st.sampled_from(["/a", "/a/b", "a"])
    create = data.draw(fs.creates(paths))
    multi = data.draw(fs.multi_ops(paths))
    other = data.draw(fs.odd_ops(paths))
    assert not any(_creates_ttl_crash(op) for op in (create, Multi(multi), other))
    if create.opcode == OpCode.CREATE_TTL and create.flags in TTL_MODES:
        assert create.ttl in (3_600_000, 2**40 - 1, 0, 2**40)


def test_a_multi_that_fails_unchecked_in_zookeepers_prep_is_recognized() -> None:
    ttl_flags = Create("/b", flags=CreateMode.PERSISTENT_WITH_TTL)
    assert fails_prep_unchecked(Multi((Delete("/a"), ttl_flags)))
    assert fails_prep_unchecked(Multi((Create("/c", opcode=OpCode.CREATE2, flags=6),)))
    assert not fails_prep_unchecked(Multi((Create("/b", flags=5, opcode=OpCode.CREATE_TTL),)))
    assert not fails_prep_unchecked(Multi((ttl_flags,), read=True))
    assert not fails_prep_unchecked(ttl_flags)


@settings(max_examples=300, suppress_health_check=list(HealthCheck), database=None)
@given(st.data())
def test_pipelines_end_at_a_multi_that_fails_unchecked(data: st.DataObject) -> None:
    """ZooKeeper lets a write pipelined behind such a multi see the changes of its earlier ops
    until the multi's error transaction is applied: the fuzzer never sends one behind it."""
    ops = data.draw(fs.pipeline_ops(st.sampled_from(["/a", "/a/b", "b"])))
    assert not any(fails_prep_unchecked(op) for op in ops[:-1])


# --- the client against a scripted server ----------------------------------------------------


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[socket.socket, ServerProtocol], None]], str]]:
    """A one-connection server on loopback that runs ``script(sock, protocol)``."""
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []

    def serve(script: Callable[[socket.socket, ServerProtocol], None]) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def main() -> None:
            sock, _ = listener.accept()
            with sock:
                script(sock, ServerProtocol())

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        threads.append(thread)
        return f"127.0.0.1:{listener.getsockname()[1]}"

    yield serve
    for thread in threads:
        thread.join(5)
    for listener in listeners:
        listener.close()


def _next(sock: socket.socket, proto: ServerProtocol) -> Any:
    while (ev := proto.next_event()) is NEED_DATA:
        proto.receive_data(sock.recv(65536))
    return ev


STAT = Stat(1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1)
CONNECT = ConnectRequest(0, 0, 30000, 0, bytes(16), False)


def test_client_outcomes_reply_undecodable_timeout(scripted: Any) -> None:
    def script(sock: socket.socket, proto: ServerProtocol) -> None:
        _next(sock, proto)
        sock.sendall(proto.send_connect_response(ConnectResponse(0, 30000, 7, bytes(16), False)))
        req = _next(sock, proto)  # answered, after a notification
        event = WatcherEvent(EventType.NODE_DATA_CHANGED, 3, "/a")
        sock.sendall(proto.send_notification(event))
        sock.sendall(
            proto.send_reply(ReplyHeader(req.header.xid, 5, 0), GetDataResponse(b"x", STAT))
        )
        req = _next(sock, proto)  # answered with a body an error reply must not have
        sock.sendall(frame(encode(ReplyHeader(req.header.xid, 5, -5)) + bytes(9)))
        _next(sock, proto)  # never answered
        sock.recv(1)

    with Connection(scripted(script), timeout=1.0) as conn:
        assert conn.connect(CONNECT) is not None
        out = conn.call(1, OpCode.GET_DATA, GetData("/a").request_body(full))
        assert out.kind == REPLY and out.reply is not None and out.reply.header.zxid == 5
        assert [(e.event.type, e.event.path, e.replies_before) for e in conn.take_events()] == [
            (EventType.NODE_DATA_CHANGED, "/a", 0)
        ]
        assert conn.last_zxid == 5
        out = conn.call(2, OpCode.GET_DATA, GetData("/a").request_body(full))
        assert out.kind == UNDECODABLE and "9 bytes" in out.detail
        assert conn.call(3, OpCode.GET_DATA, GetData("/a").request_body(full)).kind == TIMEOUT
        assert conn.closed


def test_client_outcome_closed(scripted: Any) -> None:
    def script(sock: socket.socket, proto: ServerProtocol) -> None:
        _next(sock, proto)
        sock.sendall(proto.send_connect_response(ConnectResponse(0, 30000, 7, bytes(16), False)))
        _next(sock, proto)

    with Connection(scripted(script), timeout=2.0) as conn:
        conn.connect(CONNECT)
        assert conn.call(1, OpCode.GET_DATA, GetData("/a").request_body(full)).kind == CLOSED
        assert conn.call(2, OpCode.GET_DATA, GetData("/a").request_body(full)).kind == CLOSED


class _LateCloser:
    """A ZooKeeper-protocol server on loopback for the driver: a new session per connection (a
    resume is refused), pings answered, anything else answered Unimplemented; then it closes the
    connection, after answering ``pings`` more pings (never, with None)."""

    def __init__(self, pings: int | None) -> None:
        self.pings = pings
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                sock, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _frames(self, sock: socket.socket) -> Iterator[bytes]:
        reader = FrameReader(1 << 20)
        while True:
            while (body := reader.next_frame()) is None:
                data = sock.recv(65536)
                if not data:
                    return
                reader.feed(data)
            yield bytes(body)

    def _serve(self, sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            frames = self._frames(sock)
            connect = decode_connect_request(next(frames))
            sid = 0 if connect.sessionId else 1 + threading.get_ident() % 1000
            response = ConnectResponse(0, connect.timeOut, sid, bytes(16), False)
            sock.sendall(frame(encode_connect_response(response)))
            closing, left = False, 0  # after Unimplemented: pings still to answer
            for body in frames:
                xid, opcode = struct.unpack(">ii", body[:8])
                if opcode != OpCode.PING:
                    sock.sendall(frame(encode(ReplyHeader(xid, 0, Err.UNIMPLEMENTED))))
                    closing, left = self.pings is not None, self.pings or 0
                else:
                    sock.sendall(frame(encode(ReplyHeader(xid, 0, 0))))
                    left -= 1
                if closing and left <= 0:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.mark.timeout(30)
def test_a_connection_closed_a_moment_late_is_not_left_open() -> None:
    """ZooKeeper sometimes answers the ping that follows Unimplemented before it closes the
    connection; a connection that stays open is still a divergence."""
    prompt, late, never = _LateCloser(0), _LateCloser(1), _LateCloser(None)
    drivers = [
        Driver({CANDIDATE: prompt.address, ORACLE: other.address}, "/fz") for other in (late, never)
    ]
    try:
        assert not drivers[0].run(Step(0, Open())).divergences
        result = drivers[0].run(Step(0, Unknown(999)))
        assert not result.divergences, result.divergences
        assert [ex.op for ex in result.exchanges] == ["opcode999", "resume(auto)"]

        assert not drivers[1].run(Step(0, Open())).divergences
        result = drivers[1].run(Step(0, Unknown(999)))
        assert [signature(d) for d in result.divergences] == [
            "opcode999/lifecycle/the connection was closed by the candidate only"
        ]
    finally:
        for driver in drivers:
            driver.teardown()
        for server in (prompt, late, never):
            server.close()


# --- comparison, signatures, coverage ------------------------------------------------------


def test_events_are_compared_as_lists_in_arrival_order() -> None:
    a = ("", EventType.NODE_CREATED, 3, "/t/a")
    b = ("", EventType.NODE_CHILDREN_CHANGED, 3, "/t")
    sids = {CANDIDATE: 1, ORACLE: 2}

    def kind(c: list[Any], o: list[Any]) -> str | None:
        d = compare_events(slot=0, events={CANDIDATE: c, ORACLE: o}, sids=sids, strip="/t")
        return None if d is None else d.kind

    assert kind([a, b], [a, b]) is None
    assert kind([a], [a, b]) == WATCH_MISSING
    assert kind([a, b, b], [a, b]) == WATCH_EXTRA
    assert kind([b, a], [a, b]) == WATCH_ORDER
    d = compare_events(slot=0, events={CANDIDATE: [a, b], ORACLE: [a]}, sids=sids, strip="/t")
    assert d is not None and signature(d) == "watch/watch.extra/NODE_CHILDREN_CHANGED"
    assert d.candidate is not None and d.candidate.raw == [
        "NODE_CREATED /a",
        "NODE_CHILDREN_CHANGED /",
    ]


def test_signatures_name_op_kind_and_first_field() -> None:
    d = Divergence(
        kind="field",
        op="getData",
        diff=(FieldDiff("body.results[3].err", "exact", 0, -101), FieldDiff("zxid", "zxid", 1, 2)),
    )
    assert signature(d) == "getData/field/body.results[].err"
    d = Divergence(kind="lifecycle", op="expire", detail="session s3: did not expire within 15 s")
    assert signature(d) == "expire/lifecycle/did not expire within N s"
    request = Multi((Delete("/a"), Create("/b", opcode=OpCode.CREATE_TTL, ttl=9))).request_body(
        full
    )
    d = Divergence(
        kind="error",
        op="multi",
        request=request,
        diff=(FieldDiff("body.results[1].err", "exact", -8, 0),),
    )
    assert signature(d) == "multi/error/body.results[createTTL].err"


def test_coverage_counts_opcodes_modes_and_error_families() -> None:
    assert "sasl" not in TARGET_OPCODES and "unknown opcode" in TARGET_OPCODES
    assert len(TARGET_OPCODES) == len(set(TARGET_OPCODES))
    cov = Coverage()
    result = StepResult(Step(0, Multi((Create("/a", flags=4), GetData("/a")))))
    result.errors = [Err.OK, Err.NO_NODE, Err.RUNTIME_INCONSISTENCY]
    cov.record(result)
    cov.record(StepResult(Step(1, Unknown(999)), errors=[Err.UNIMPLEMENTED]))
    cov.record(StepResult(Step(1, Exists("/a")), skipped="session s1 is not connected"))
    assert cov.opcodes == {"multi": 1, "create": 1, "getData": 1, "unknown opcode": 1}
    assert cov.modes == {"create CONTAINER": 1}
    families = cov.family_coverage()
    assert families["multi"] == (["RUNTIME_INCONSISTENCY"], [])
    assert families["node existence"] == (["NO_NODE"], ["NODE_EXISTS"])
    assert set(families) == set(ERROR_FAMILIES)
    assert cov.to_json()["skipped"] == 1


def test_tour_and_generated_coverage_are_kept_apart_and_added_up(tmp_path: Path) -> None:
    campaign = Campaign(Config(zetcd="127.0.0.1:1", zookeeper="127.0.0.1:2", out=tmp_path))
    campaign.tour_coverage.record(StepResult(Step(0, Delete("/a")), errors=[Err.NOT_EMPTY]))
    campaign.coverage.examples = 1
    campaign.coverage.record(StepResult(Step(0, Reconfig()), errors=[Err.RECONFIG_DISABLED]))
    campaign.coverage.record(StepResult(Step(0, Delete("/b")), errors=[Err.NO_NODE]))
    total = campaign.total_coverage()
    assert (total.examples, total.steps) == (1, 3)
    assert total.opcodes == {"delete": 2, "reconfig": 1}
    assert total.family_coverage()["tree shape"] == (["NOT_EMPTY"], ["NO_CHILDREN_FOR_EPHEMERALS"])
    assert campaign.coverage.family_coverage()["tree shape"][0] == []
    summary = campaign.summary()
    assert summary["coverage"]["steps"] == 3 and summary["coverage"]["examples"] == 1
    assert summary["coverage_tour"]["errors"] == {"NOT_EMPTY": 1}
    assert "NOT_EMPTY" not in summary["coverage_generated"]["errors"]
    text = report.markdown(campaign)
    assert "coverage tour (fuzz/tour.py): 1 steps, run first" in text
    assert "| delete | 1 | 1 |" in text and "| reconfig | 0 | 1 |" in text
    assert "| tree shape | NOT_EMPTY (1) | - | NO_CHILDREN_FOR_EPHEMERALS |" in text
    assert "families exercised (tour 1, generated 2)" in text


def test_a_snippet_is_a_pytest_module_that_holds_the_steps(tmp_path: Path) -> None:
    steps = [
        Step(0, Open()),
        Step(0, Create("/a", opcode=OpCode.CREATE2)),
        Step(0, Create("/e", flags=CreateMode.EPHEMERAL)),
        Step(0, Mangled(Multi((Delete("/a"),)), 1)),
    ]
    found = Found(
        signature="create2/field/body.stat.cversion",
        divergence=Divergence(kind="field", op="create2"),
        steps=steps,
        results=[],
        steps_before_shrinking=9,
        steps_after_hypothesis=5,
        reproduced=True,
    )
    text = snippet(found, tmp_path / "case.json")
    namespace: dict[str, Any] = {}
    exec(compile(text, "snippet.py", "exec"), namespace)
    assert namespace["STEPS"] == steps
    assert "def test_fuzz_create2_field_body_stat_cversion(zookeeper, zetcd):" in text

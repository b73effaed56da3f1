"""Golden wire recordings of real clients and a real ZooKeeper 3.8, decoded and re-encoded.

``tests/golden/<client>-<n>.json`` hold every frame body of one connection, both ways, as
recorded by ``tools/record_relay.py`` (re-record with ``python -m tools.record_golden``). Each
frame must decode with ``zetcd.proto.codec`` and encode back to the identical bytes: this pins
null-versus-empty, optional trailing fields (readOnly), multi layouts and every record real
clients and the server actually send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KazooClientFactory
from tests.servers import ZooKeeperServer
from tools.record_relay import RecordingRelay
from zetcd.proto import codec
from zetcd.proto.codec import REQUEST_HEADER
from zetcd.proto.constants import FOUR_LETTER_WORDS
from zetcd.proto.records import WatcherEvent

GOLDEN_DIR = Path(__file__).parent / "golden"
RECORDINGS = sorted(GOLDEN_DIR.glob("*.json"))

# Replies to these xids answer a request whose opcode the xid implies.
SPECIAL_XID_OPCODES = {-2: 11, -4: 100, -8: 101}
WATCH_XID = -1


@dataclass
class RoundTrip:
    """What one frame decoded to, for the assertion message."""

    index: int
    direction: str
    body: bytes
    decoded: Any = None
    opcode: int | None = None

    def describe(self) -> str:
        op = "" if self.opcode is None else f" (opcode {self.opcode})"
        return (
            f"frame {self.index} {self.direction}{op}\n"
            f"  hex     {self.body.hex()}\n"
            f"  decoded {self.decoded!r}"
        )


def round_trip_frames(frames: list[dict[str, str]]) -> tuple[int, list[str]]:
    """Decode and re-encode every framed body; return (frames checked, problems found)."""
    checked = 0
    problems: list[str] = []
    opcodes: dict[int, int] = {}
    if frames and frames[0]["dir"] == "c2s-raw":
        word = bytes.fromhex(frames[0]["hex"])[:4].decode("ascii", "replace")
        if word not in FOUR_LETTER_WORDS:
            problems.append(f"unknown four-letter word {word!r}")
    seen_connect = {"c2s": False, "s2c": False}
    for index, frame in enumerate(frames):
        direction = frame["dir"]
        if direction.endswith("-raw"):
            continue
        body = bytes.fromhex(frame["hex"])
        trip = RoundTrip(index, direction, body)
        checked += 1
        try:
            if not seen_connect[direction]:
                seen_connect[direction] = True
                if direction == "c2s":
                    trip.decoded = codec.decode_connect_request(body)
                    again = codec.encode_connect_request(trip.decoded)
                else:
                    trip.decoded = codec.decode_connect_response(body)
                    again = codec.encode_connect_response(trip.decoded)
            elif direction == "c2s":
                xid, trip.opcode = REQUEST_HEADER.unpack_from(body)
                opcodes[xid] = trip.opcode
                request, record = codec.decode_request(body)
                trip.decoded = (request, record)
                again = codec.encode_request(request, record)
            else:
                xid = codec.decode_reply_header(body).xid
                if xid != WATCH_XID:
                    trip.opcode = SPECIAL_XID_OPCODES.get(xid, opcodes.get(xid))
                    if trip.opcode is None:
                        raise LookupError(f"reply to xid {xid}, which no request used")
                reply, record = codec.decode_response(trip.opcode or 0, body)
                trip.decoded = (reply, record)
                again = codec.encode_reply(reply, record)
                if xid == WATCH_XID:
                    if not isinstance(record, WatcherEvent):
                        raise TypeError(f"notification decoded to {record!r}")
                    if codec.encode_notification(record) != body:
                        raise ValueError("encode_notification differs")
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}\n{trip.describe()}")
            continue
        if again != body:
            problems.append(f"re-encoded differs\n{trip.describe()}\n  again   {again.hex()}")
    return checked, problems


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_recording_round_trips(path: Path) -> None:
    recording = json.loads(path.read_text())
    assert recording["client"] == path.stem.rsplit("-", 1)[0]
    frames = recording["frames"]
    assert frames, "empty recording"
    checked, problems = round_trip_frames(frames)
    if problems:
        pytest.fail(
            f"{path.name}: {len(problems)} frame(s) failed\n" + "\n".join(problems), pytrace=False
        )
    raw = [f for f in frames if f["dir"].endswith("-raw")]
    assert checked + len(raw) == len(frames)


def test_recordings_cover_the_clients() -> None:
    clients = {p.stem.rsplit("-", 1)[0] for p in RECORDINGS}
    assert {"kazoo", "zkcli", "climt"} <= clients


def test_relay_records_a_live_session(
    zookeeper: ZooKeeperServer,
    chroot: str,
    kazoo_client_factory: KazooClientFactory,
    tmp_path: Path,
) -> None:
    with RecordingRelay((zookeeper.host, zookeeper.port), tmp_path, client_name="live") as relay:
        client = kazoo_client_factory(relay.address, chroot)
        client.create("/n", b"")
        client.set("/n", b"x" * 70000)  # a frame larger than one recv()
        assert client.get("/n")[0] == b"x" * 70000
        assert client.command(b"ruok") == "imok"
        client.stop()
        assert relay.wait_idle()
    session = json.loads((tmp_path / "live-1.json").read_text())
    assert session["client"] == "live"
    directions = [f["dir"] for f in session["frames"]]
    assert directions[:2] == ["c2s", "s2c"]
    assert directions.count("c2s") == directions.count("s2c")
    assert round_trip_frames(session["frames"]) == (len(directions), [])
    four = json.loads((tmp_path / "live-2.json").read_text())["frames"]
    assert four == [
        {"dir": "c2s-raw", "hex": b"ruok".hex()},
        {"dir": "s2c-raw", "hex": b"imok".hex()},
    ]

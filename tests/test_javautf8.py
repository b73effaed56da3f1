"""zetcd/proto/javautf8.py against OpenJDK 17 itself: every byte string here also goes through
``new String(bytes, StandardCharsets.UTF_8)`` (tests/java/Utf8Decode.java, compiled once per
run and fed everything in one batch) and the two must give the same UTF-16 code units. Then
against ZooKeeper 3.8: ``sync`` echoes its path unchecked, so the bytes it sends back are
the server's decode of ours, re-encoded one UTF-16 unit at a time (CESU-8 style)."""

from __future__ import annotations

import itertools
import random
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.builds import built
from tests.conftest import Target
from tests.rawclient import RawClient
from zetcd.proto.constants import OpCode
from zetcd.proto.javautf8 import decode

SOURCE = Path(__file__).parent / "java" / "Utf8Decode.java"

# the bytes where UTF-8's rules change: ASCII, continuation ranges (80-8F, 90-9F, A0-BF, as
# they matter after E0, ED, F0 and F4), never-valid leads, and every kind of lead
ALPHABET = bytes.fromhex(
    "00 41 7F 80 8F 90 9F A0 BF C0 C1 C2 C3 DF E0 E1 EC ED EE EF F0 F1 F3 F4 F5 F7 F8 FB FC FE FF"
)

JavaDecode = Callable[[list[bytes]], list[str]]


def _compiled() -> Path:
    javac = shutil.which("javac")
    assert javac is not None, "javac is needed (openjdk-17-jdk-headless)"
    argv = [javac, "-nowarn", "-d", "{out}", str(SOURCE)]
    return built("utf8decode", SOURCE.read_bytes(), "Utf8Decode.class", argv)


@pytest.fixture(scope="module")
def java_decode() -> JavaDecode:
    """Java's decode of many byte strings at once: each as its UTF-16 code units in hex."""
    classes = _compiled()
    java = shutil.which("java")
    assert java is not None, "java is needed (openjdk-17-jdk-headless)"

    def run(inputs: list[bytes]) -> list[str]:
        stdin = "".join(raw.hex() + "\n" for raw in inputs)
        proc = subprocess.run(
            [java, "-XX:+UseSerialGC", "-cp", str(classes), "Utf8Decode"],
            input=stdin, capture_output=True, text=True, encoding="ascii", timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.split("\n")
        assert lines[-1] == "" and len(lines) == len(inputs) + 1, proc.stderr
        return lines[:-1]

    return run


def _code_units(s: str) -> str:
    return s.encode("utf-16-be", "surrogatepass").hex()


def _compare(java_decode: JavaDecode, inputs: list[bytes]) -> None:
    expected = java_decode(inputs)
    mismatches = [
        f"{raw.hex(' ')}: java {want or '(empty)'}, zetcd {got or '(empty)'}"
        for raw, want in zip(inputs, expected, strict=True)
        if (got := _code_units(decode(raw))) != want
    ]
    assert not mismatches, f"{len(mismatches)} differ, e.g.:\n" + "\n".join(mismatches[:40])


def _all_strings(max_len: int) -> Iterable[bytes]:
    for n in range(1, max_len + 1):
        for combo in itertools.product(ALPHABET, repeat=n):
            yield bytes(combo)


def test_every_short_string_decodes_as_java_does(java_decode: JavaDecode) -> None:
    inputs = list(_all_strings(4))
    assert len(inputs) == sum(len(ALPHABET) ** n for n in range(1, 5))
    _compare(java_decode, inputs)


def _random_piece(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return bytes([rng.randrange(0x20, 0x7F)])
    if kind == 1:  # a valid 2-, 3- or 4-byte character
        return chr(rng.choice((rng.randrange(0x80, 0x800), rng.randrange(0x800, 0xD800),
                               rng.randrange(0xE000, 0x10000), rng.randrange(0x10000, 0x110000)))
                   ).encode()  # fmt: skip
    if kind == 2:  # CESU-8: a surrogate pair as two 3-byte sequences, or a lone surrogate
        c = rng.randrange(0x10000, 0x110000) - 0x10000
        pair = chr(0xD800 | c >> 10) + chr(0xDC00 | c & 0x3FF)
        return (pair if rng.random() < 0.7 else rng.choice(pair)).encode("utf-8", "surrogatepass")
    if kind == 3:  # a valid sequence cut short or with a byte changed
        raw = bytearray(chr(rng.randrange(0x80, 0x110000)).encode("utf-8", "surrogatepass"))
        if rng.random() < 0.5:
            return bytes(raw[: rng.randrange(1, len(raw))])
        raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if kind == 4:  # overlong forms
        c = rng.randrange(0x80)
        return rng.choice((bytes([0xC0 | c >> 6, 0x80 | c & 0x3F]),
                           bytes([0xE0, 0x80 | c >> 6, 0x80 | c & 0x3F]),
                           bytes([0xF0, 0x80, 0x80 | c >> 6, 0x80 | c & 0x3F])))  # fmt: skip
    if kind == 5:
        return bytes([rng.choice(ALPHABET)])
    return bytes([rng.randrange(256)])


def _random_strings(seed: int, mixed: int, noise: int) -> list[bytes]:
    rng = random.Random(seed)
    inputs = [
        b"".join(_random_piece(rng) for _ in range(rng.randrange(2, 40))) for _ in range(mixed)
    ]
    inputs += [bytes(rng.randrange(256) for _ in range(rng.randrange(5, 60))) for _ in range(noise)]
    return inputs


def test_random_longer_strings_decode_as_java_does(java_decode: JavaDecode) -> None:
    _compare(java_decode, _random_strings(20240611, 5000, 2000))


def _sync_frame(xid: int, path: bytes) -> bytes:
    body = struct.pack(">iii", xid, OpCode.SYNC, len(path)) + path
    return struct.pack(">i", len(body)) + body


def test_sync_echoes_the_same_decode(target: Target) -> None:
    """Every string of up to three bytes and some random ones, as sync paths: ZooKeeper's
    echo is its decode of them, and zetcd's must be the same."""
    inputs = [*_all_strings(3), *_random_strings(7, 1000, 300)]
    with RawClient(target.address, timeout=30) as client:
        client.connect()

        def send() -> None:  # all at once, beside the reading (or both sides' buffers fill)
            frames = b"".join(_sync_frame(xid, raw) for xid, raw in enumerate(inputs, 1))
            client.send_raw(frames)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        mismatches = []
        for xid, raw in enumerate(inputs, 1):
            body = client.raw_reply()
            assert struct.unpack_from(">iqi", body)[::2] == (xid, 0), (raw.hex(), body.hex())
            (n,) = struct.unpack_from(">i", body, 16)
            echoed = body[20 : 20 + n]
            ours = decode(raw).encode("utf-8", "surrogatepass")
            if echoed != ours:
                mismatches.append(
                    f"{raw.hex(' ')}: {target.kind} {echoed.hex(' ')}, ours {ours.hex(' ')}"
                )
        sender.join()
    assert not mismatches, f"{len(mismatches)} differ, e.g.:\n" + "\n".join(mismatches[:40])


def test_known_cases() -> None:
    assert decode(b"") == ""
    assert decode(b"/a/b") == "/a/b"
    assert decode("é€".encode()) == "é€"
    assert decode("\U0001f600".encode()) == "\ud83d\ude00"
    assert decode(b"\xed\xa0\xbd") == "\ufffd"  # Python's "replace" gives three
    assert decode(b"\xed\xa0A") == "\ufffdA"
    assert decode(b"\xed\xa0") == "\ufffd"
    assert decode(b"\xf0\x9f\x98") == "\ufffd"
    assert decode(b"\xf0\x9fA") == "\ufffdA"
    assert decode(b"\xe0\x80\x80") == "\ufffd" * 3
    assert decode(b"\xf4\x90\x80\x80") == "\ufffd" * 4
    assert decode("\ud83d\ude00".encode("utf-8", "surrogatepass")) == "\ufffd\ufffd"  # CESU-8

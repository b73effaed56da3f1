"""Jute binary encoding: primitives, a bounds-checked reader, writer helpers, and the
schema-driven encoder/decoder compiler.

Wire rules (``BinaryInputArchive``/``BinaryOutputArchive``): big-endian ``int`` (4 bytes)
and ``long`` (8 bytes); ``boolean`` is one byte (``DataInput.readBoolean``: any nonzero
byte is true; we write 0/1); ``buffer`` and ``ustring`` are an int length then the bytes,
length -1 meaning null; ``vector`` is an int count (-1 = null) then the items; a nested
record is its fields inline. Null and empty are different on the wire and are kept apart
here (``None`` vs ``b""``/``""``/``()``).

Malformed input is read as ZooKeeper's ``BinaryInputArchive`` reads it where Java reads it
at all: a vector count below -1 is an empty vector (a -2 re-encodes as 0), invalid UTF-8 in
a ustring becomes U+FFFD as ``new String(bytes, UTF_8)`` makes it. The rest raises
:class:`ProtocolError`: truncation, a buffer or ustring length below -1 or beyond the
remaining bytes, and a vector count that the remaining bytes cannot hold.

A record class declares ``SCHEMA``: its fields in ``zookeeper.jute`` order with their jute
types. :func:`compile_record` turns a schema into one decode and one encode function:
runs of fixed-width fields become a single precompiled :class:`struct.Struct`, so e.g.
``Stat`` decodes with one ``unpack_from`` and encodes with one ``pack``.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias, TypeVar, cast

from .errors import EncodeError, ProtocolError
from .javautf8 import decode as java_decode
from .javautf8 import java_string as java_string  # re-exported

T = TypeVar("T")

INT: Final = struct.Struct(">i")
LONG: Final = struct.Struct(">q")
BOOL: Final = struct.Struct(">?")
NULL_LENGTH: Final = b"\xff\xff\xff\xff"

_unpack_int = INT.unpack_from
_pack_int = INT.pack

# ---------------------------------------------------------------------------------------
# Jute types as they appear in a schema.

INT_T: Final = "int"
LONG_T: Final = "long"
BOOL_T: Final = "boolean"
BUFFER_T: Final = "buffer"
USTRING_T: Final = "ustring"
# Not a jute type: a trailing boolean that may be absent (ConnectRequest/ConnectResponse
# readOnly, which 3.4+ peers append after the jute record). Absent decodes to None.
OPTIONAL_BOOL_T: Final = "boolean?"

_FIXED_FORMATS: Final = {INT_T: "i", LONG_T: "q", BOOL_T: "?"}
_MIN_SIZES: Final = {INT_T: 4, LONG_T: 8, BOOL_T: 1, BUFFER_T: 4, USTRING_T: 4}


@dataclass(frozen=True, slots=True)
class Vector:
    """``vector<elem>``."""

    elem: JuteType


JuteType: TypeAlias = "str | type | Vector"
"""A primitive name above, a record class (nested record), or a :class:`Vector`."""

Schema: TypeAlias = "tuple[tuple[str, JuteType], ...]"

Decoder: TypeAlias = "Callable[[Reader], Any]"
Encoder: TypeAlias = "Callable[[bytearray, Any], None]"

# ---------------------------------------------------------------------------------------
# Reading.


class Reader:
    """A cursor over one frame body. Every read is bounds-checked."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.buf: bytes = buf if type(buf) is bytes else bytes(buf)
        self.pos = pos

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def expect_end(self) -> None:
        """Raise unless every byte was consumed."""
        extra = len(self.buf) - self.pos
        if extra:
            raise ProtocolError(f"{extra} trailing bytes after the record")

    def read_struct(self, st: struct.Struct) -> tuple[Any, ...]:
        pos = self.pos
        try:
            values = st.unpack_from(self.buf, pos)
        except struct.error:
            raise ProtocolError(f"truncated: need {st.size} bytes at offset {pos}") from None
        self.pos = pos + st.size
        return values

    def read_int(self) -> int:
        pos = self.pos
        try:
            value: int = _unpack_int(self.buf, pos)[0]
        except struct.error:
            raise ProtocolError(f"truncated int at offset {pos}") from None
        self.pos = pos + 4
        return value

    def read_long(self) -> int:
        pos = self.pos
        try:
            value: int = LONG.unpack_from(self.buf, pos)[0]
        except struct.error:
            raise ProtocolError(f"truncated long at offset {pos}") from None
        self.pos = pos + 8
        return value

    def read_bool(self) -> bool:
        pos = self.pos
        if pos >= len(self.buf):
            raise ProtocolError(f"truncated boolean at offset {pos}")
        self.pos = pos + 1
        return self.buf[pos] != 0

    def _length(self, what: str) -> tuple[int, int]:
        """Read a buffer/ustring length; return (start, end) of its bytes, or (start, -1)
        for null. The cursor is left after the length."""
        buf = self.buf
        pos = self.pos
        try:
            (n,) = _unpack_int(buf, pos)
        except struct.error:
            raise ProtocolError(f"truncated {what} length at offset {pos}") from None
        start = pos + 4
        end = start + n
        if n < 0 or end > len(buf):
            if n == -1:
                self.pos = start
                return start, -1
            if n < 0:
                raise ProtocolError(f"negative {what} length {n}")
            raise ProtocolError(f"{what} length {n} exceeds the {len(buf) - start} bytes left")
        self.pos = end
        return start, end

    def read_buffer(self) -> bytes | None:
        start, end = self._length("buffer")
        if end < 0:
            return None
        return self.buf[start:end]

    def read_ustring(self) -> str | None:
        """Decoded as Java's ``new String(bytes, UTF_8)`` does (see :func:`decode_ustring`)."""
        start, end = self._length("ustring")
        if end < 0:
            return None
        return decode_ustring(self.buf[start:end])

    def read_vector(
        self, read_item: Callable[[Reader], T], min_item_size: int = 1
    ) -> tuple[T, ...] | None:
        """Read a vector whose items each take at least ``min_item_size`` bytes."""
        n = self.read_int()
        if n == -1:
            return None
        if n < 0:  # BinaryInputArchive's index is done at once: an empty vector, not null
            return ()
        if n * min_item_size > len(self.buf) - self.pos:
            raise ProtocolError(f"vector of {n} items cannot fit in {self.remaining()} bytes")
        return tuple([read_item(self) for _ in range(n)])


# ---------------------------------------------------------------------------------------
# Strings. A ustring field holds a Java string, UTF-16: a str decoded from the wire keeps every
# character outside the BMP as its two surrogates, as ZooKeeper would. Encoding writes each
# surrogate as its own 3-byte sequence (CESU-8), which is what jute's writer does with a Java
# string; a str holding a character outside the BMP itself (written by a client program, not
# decoded) is sent as 4-byte UTF-8, as the C client and kazoo send it.


def decode_ustring(raw: bytes) -> str:
    """``new String(raw, UTF_8)`` (javautf8.py): malformed bytes become U+FFFD by Java's rules
    (the CESU-8 form of a surrogate, which Java clients write for characters outside the
    BMP, one U+FFFD per surrogate), which ZooKeeper's path rules then reject; a 4-byte
    sequence becomes a surrogate pair."""
    return java_decode(raw)  # its own ASCII fast path first


_PAIR_OR_LONE: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _join_pair(m: re.Match[str]) -> str:
    g = m.group()
    if len(g) == 1:
        return "?"
    return chr(0x10000 + ((ord(g[0]) - 0xD800) << 10) + (ord(g[1]) - 0xDC00))


def java_utf8(s: str) -> bytes:
    """``s.getBytes(UTF_8)`` of a Java string (what ZooKeeper's text outputs write): a
    surrogate pair as one 4-byte sequence, a lone surrogate as ``?``."""
    if s.isascii():
        return s.encode()
    return _PAIR_OR_LONE.sub(_join_pair, s).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------
# Writing: helpers appending to a bytearray.


def write_int(out: bytearray, value: int) -> None:
    out += _pack_int(value)


def write_long(out: bytearray, value: int) -> None:
    out += LONG.pack(value)


def write_bool(out: bytearray, value: bool) -> None:
    out.append(1 if value else 0)


def write_buffer(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += NULL_LENGTH
    else:
        out += _pack_int(len(value))
        out += value


def write_ustring(out: bytearray, value: str | None) -> None:
    if value is None:
        out += NULL_LENGTH
    else:
        raw = value.encode("utf-8", "surrogatepass")
        out += _pack_int(len(raw))
        out += raw


def write_vector(
    out: bytearray, items: Sequence[T] | None, write_item: Callable[[bytearray, T], None]
) -> None:
    if items is None:
        out += NULL_LENGTH
        return
    out += _pack_int(len(items))
    for item in items:
        write_item(out, item)


# ---------------------------------------------------------------------------------------
# Schema-driven codecs. Registries are keyed by record class; hand-tuned functions for
# hot records replace some compiled ones (see fastpaths.py) and are tested against them.

DECODERS: dict[type, Decoder] = {}
ENCODERS: dict[type, Encoder] = {}
MIN_SIZES: dict[type, int] = {}


def _item_codec(jt: JuteType) -> tuple[Decoder, Encoder, int]:
    """Decoder, encoder and minimum wire size of one vector item."""
    if jt == INT_T:
        return Reader.read_int, write_int, 4
    if jt == LONG_T:
        return Reader.read_long, write_long, 8
    if jt == BOOL_T:
        return Reader.read_bool, write_bool, 1
    if jt == BUFFER_T:
        return Reader.read_buffer, write_buffer, 4
    if jt == USTRING_T:
        return Reader.read_ustring, write_ustring, 4
    if isinstance(jt, Vector):
        dec, enc, size = _item_codec(jt.elem)
        return (
            lambda r: r.read_vector(dec, size),
            lambda out, v: write_vector(out, v, enc),
            4,
        )
    if isinstance(jt, type) and jt in DECODERS:
        cls = jt
        return (lambda r: DECODERS[cls](r)), (lambda out, v: ENCODERS[cls](out, v)), MIN_SIZES[cls]
    raise TypeError(f"not a jute type (or a record not compiled yet): {jt!r}")


def _fixed_run(names: list[str], fmts: list[str]) -> tuple[Decoder, Encoder]:
    st = struct.Struct(">" + "".join(fmts))
    getter = operator.attrgetter(*names)
    pack = st.pack

    def dec(r: Reader) -> tuple[Any, ...]:
        return r.read_struct(st)

    if len(names) == 1:

        def enc(out: bytearray, rec: Any) -> None:
            out += pack(getter(rec))

    else:

        def enc(out: bytearray, rec: Any) -> None:
            out += pack(*getter(rec))

    return dec, enc


def fast_constructor(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for a frozen, slotted dataclass that skips its slow
    ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``, which makes
    ``Stat(...)`` about 5x slower than a plain slotted class. Decoders build records
    from trusted, already-typed values, so they construct a mutable twin of ``cls``
    (same base, same slots, so the same memory layout) and retag it as ``cls``; the
    result is an ordinary ``cls`` instance, frozen from then on. Falls back to ``cls``
    itself for anything that is not a frozen slotted dataclass.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        return cls
    twin = dataclasses.make_dataclass(
        f"_Mutable{cls.__name__}",
        [(f.name, f.type) for f in dataclasses.fields(cast(Any, cls))],
        bases=cls.__bases__,
        slots=True,
        eq=False,
        repr=False,
    )
    if twin.__dict__["__slots__"] != cls.__dict__["__slots__"]:  # pragma: no cover - layout guard
        return cls

    def construct(*values: Any) -> T:
        obj = twin(*values)
        obj.__class__ = cls
        return obj  # type: ignore[no-any-return]

    return construct


CONSTRUCTORS: dict[type, Callable[..., Any]] = {}


def constructor(cls: type[T]) -> Callable[..., T]:
    """The fast positional constructor registered for a compiled record class."""
    return CONSTRUCTORS[cls]


def compile_record(cls: type, schema: Schema) -> None:
    """Compile ``schema`` into a decoder and an encoder for ``cls`` and register them.

    ``cls`` must take its fields positionally in schema order (a dataclass does).
    """
    if tuple(name for name, _ in schema) != tuple(f.name for f in dataclasses.fields(cls)):
        raise TypeError(f"{cls.__name__}: SCHEMA does not list the dataclass fields in order")
    steps: list[tuple[bool, Decoder]] = []  # (is_fixed_run, decoder)
    encoders: list[Encoder] = []
    run_names: list[str] = []
    run_fmts: list[str] = []
    min_size = 0

    def flush() -> None:
        if run_names:
            dec, enc = _fixed_run(run_names, run_fmts)
            steps.append((True, dec))
            encoders.append(enc)
            run_names.clear()
            run_fmts.clear()

    for index, (name, jt) in enumerate(schema):
        if isinstance(jt, str) and jt in _FIXED_FORMATS:
            run_names.append(name)
            run_fmts.append(_FIXED_FORMATS[jt])
            min_size += _MIN_SIZES[jt]
            continue
        flush()
        if jt == OPTIONAL_BOOL_T:
            if index != len(schema) - 1:
                raise TypeError(f"{cls.__name__}.{name}: an optional boolean must come last")
            steps.append((False, _read_optional_bool))
            encoders.append(_optional_bool_writer(name))
            continue
        item_dec, item_enc, size = _item_codec(jt)
        min_size += size
        steps.append((False, item_dec))
        getter = operator.attrgetter(name)
        encoders.append(_field_writer(getter, item_enc))
    flush()

    plan = tuple(steps)
    make = CONSTRUCTORS[cls] = fast_constructor(cls)
    decode: Decoder
    if len(plan) == 1 and plan[0][0]:
        read_all = plan[0][1]

        def decode_fixed(r: Reader) -> Any:
            return make(*read_all(r))

        decode = decode_fixed
    else:

        def decode_mixed(r: Reader) -> Any:
            values: list[Any] = []
            for fixed, dec in plan:
                if fixed:
                    values.extend(dec(r))
                else:
                    values.append(dec(r))
            return make(*values)

        decode = decode_mixed

    enc_plan = tuple(encoders)

    def encode(out: bytearray, rec: Any) -> None:
        for enc in enc_plan:
            enc(out, rec)

    DECODERS[cls] = decode
    ENCODERS[cls] = encode
    MIN_SIZES[cls] = min_size


def _field_writer(getter: Callable[[Any], Any], item_enc: Encoder) -> Encoder:
    def enc(out: bytearray, rec: Any) -> None:
        item_enc(out, getter(rec))

    return enc


def _read_optional_bool(r: Reader) -> bool | None:
    if r.pos >= len(r.buf):
        return None
    return r.read_bool()


def _optional_bool_writer(name: str) -> Encoder:
    getter = operator.attrgetter(name)

    def enc(out: bytearray, rec: Any) -> None:
        value = getter(rec)
        if value is not None:
            write_bool(out, value)

    return enc


# ---------------------------------------------------------------------------------------
# Entry point for encoding any registered record.

_ENCODE_FAILURES: Final = (struct.error, TypeError, AttributeError, UnicodeEncodeError, KeyError)


def encode_record(out: bytearray, rec: object) -> None:
    """Append the encoding of ``rec`` (any registered record) to ``out``.

    Raises :class:`EncodeError` for an unregistered type or values that do not fit their
    jute types.
    """
    try:
        enc = ENCODERS[type(rec)]
    except KeyError:
        raise EncodeError(f"not an encodable record: {type(rec).__name__}") from None
    try:
        enc(out, rec)
    except EncodeError:
        raise
    except _ENCODE_FAILURES as e:
        raise EncodeError(f"cannot encode {rec!r}: {e}") from e

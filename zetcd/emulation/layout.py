"""How the ZooKeeper tree is laid out in etcd, and how values are encoded.

Theory of operation
-------------------
A zxid is ``etcd revision << 8 | position``: one etcd transaction may carry up to 256 ZooKeeper
transactions (group commit), each with its own zxid, in order. Every key lives under one prefix P
(``--prefix``, default ``/zetcd/``). A znode at path X owns up to four keys, each written only by
the operations that change what it holds, so that etcd's own per-key revisions carry the Stat's
zxids:

=============  ===========================================  =====================================
key            value                                        Stat fields it gives
=============  ===========================================  =====================================
P d X          version, czxid mode, times, owner, data,     czxid (create_revision, cpos), mzxid
               cpos, mpos                                   (mod_revision, mpos), version, ctime,
                                                            mtime, ephemeralOwner, dataLength
P c X          ppos                                         pzxid (mod_revision, ppos), cversion
                                                            (etcd version - 1 + adjustment)
P a X          aversion, ACL list                           aversion
P x X          cversion adjustment (only when needed)       (see below)
P q X          a quota stats node's data, as ZooKeeper      dataLength (the data getData returns)
               rewrites it in place (only when it has)
=============  ===========================================  =====================================

A node created by a plain create (not re-created inside a transaction) is written lazily: only
its ``d`` key, flagged FLAG_LAZY_CHILDREN, plus its ``a`` key when its ACL is not the open one
(world:anyone, all permissions) at aversion 0. Until its children first change it has no ``c``
key: its pzxid is then its czxid and its cversion 0, and once a child change creates the key,
its etcd version is the cversion itself (for other nodes, the version minus one). A missing ``a`` key means the
open ACL at aversion 0. One key instead of three per create halves etcd's work for a create.

Creating or deleting a child puts the parent's ``c`` key with no compare, so concurrent creates
under one parent never conflict: etcd's version counter counts them. A transaction can put a key
only once, so when one transaction changes a parent's children k times the ``x`` key records the
k - 1 that etcd's counter did not see (written with a compare, since it is read-modify-write).

Sessions are ``P s/<id as 16 hex digits>`` attached to the session's lease. ``P !log`` carries
the exact ZooKeeper-level event sequence of a transaction with several ops or a multi (etcd shows
only each key's final state), with, for an event whose node or parent has another ACL by the
end of the transaction, the ACL ZooKeeper checks the event's watchers against (encode_log);
``P !zx`` says how many zxids a transaction spent, when more than one.

A quota's ``zookeeper_stats`` node holds counts that ZooKeeper rewrites in place on every write
under the quota, keeping the node's version and mzxid (quotas.py). Rewriting its ``d`` key would
move the mzxid, so the counts go in its ``q`` key, which stands for the node's data while it
exists; a transaction that writes the ``d`` key deletes it. ``P !quota`` holds the set of quota'd
paths (ZooKeeper's PathTrie, as a JSON list of component lists) and is put by every transaction
that creates or deletes a limits or stats node, so that a transaction planned with per-key
guards can pin, with one compare, that no quota appeared or went since its plan.

``P !fence`` is put by every transaction a zetcd commits, so even a transaction whose
writes all failed spends a revision (and its zxids), as ZooKeeper's error txns do. Its mod
revision is therefore the revision of the last transaction a zetcd committed on the prefix, and
a transaction guarded by "``!fence`` is still at the mod revision this zetcd's mirror has" can
only commit if no zetcd committed since the mirror's view: it needs no per-key compares on node
keys (session records change without it: their compares stay). The batcher uses that fence while
it wins, and the per-key compares after it loses one (another zetcd is writing too), so that
zetcds sharing a prefix still commit writes to different nodes side by side. Every zetcd sharing
a prefix must put the fence: a zetcd that sees a node key written without it stops using the
fence (``Tree.unfenced``; docs/architecture.md, "The fence"). The fence's value is the time
(ctime/mtime) of the transaction that put it, 16 decimal digits (encode_fence), so that a
transaction planned with per-key guards can pin, with etcd's byte-wise value compare, that no
later-timed transaction of another zetcd committed before it: times never go back in zxid order.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from zetcd.proto.records import ACL, OPEN_ACL_UNSAFE, Id

KIND_DATA = ord("d")
KIND_CHILDREN = ord("c")
KIND_ACL = ord("a")
KIND_ADJUST = ord("x")
KIND_QUOTA_STATS = ord("q")
KIND_SESSION = ord("s")
KIND_SPECIAL = ord("!")

# czxid modes stored in the data value
CZXID_FROM_CREATE = 0  # etcd create_revision of the data key
CZXID_FROM_MOD = -1  # this put's mod_revision (node re-created inside one transaction)
CZXID_ZERO = -2  # a node that exists from the start (/, /zookeeper, ...): ZooKeeper says 0

# node kinds
NODE_PLAIN = 0
NODE_CONTAINER = 1
NODE_TTL = 2

# ephemeralOwner values ZooKeeper uses for its extended node types
CONTAINER_OWNER = -(1 << 63)
TTL_OWNER_BASE = -(1 << 56)  # 0xFF00000000000000 as a signed long


def is_extended_owner(owner: int) -> bool:
    """A container or TTL node."""
    return owner == CONTAINER_OWNER or (owner >> 56) == -1


def ttl_of(owner: int) -> int:
    """The TTL in ms of a TTL node's ephemeralOwner (0 for anything else)."""
    return owner & 0xFFFFFFFFFF if (owner >> 56) == -1 and owner != CONTAINER_OWNER else 0


def is_session_owner(owner: int) -> bool:
    """An ephemeralOwner that names a session (not 0, a container or a TTL node)."""
    return owner != 0 and owner != CONTAINER_OWNER and (owner >> 56) != -1


# flags
FLAG_MZXID_ZERO = 1  # bootstrap node never modified: mzxid 0
FLAG_PZXID_ZERO = 2  # bootstrap node whose children never changed: pzxid 0
FLAG_NULL_DATA = 4  # the data is null (not empty): getData returns a null buffer
FLAG_LAZY_CHILDREN = 8  # created without its children key (see the module docstring)

# the ACL a node without an ``a`` key has
OPEN_ACL = OPEN_ACL_UNSAFE

# version czxid ctime mtime owner kind flags ttl cpos mpos
_DATA_HEAD = struct.Struct(">iqqqqBBqBB")
_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_ACL_HEAD = struct.Struct(">iH")
_ACL_HEAD_WIDE = struct.Struct(">iI")
_USHORT = struct.Struct(">H")
_UINT = struct.Struct(">I")


@dataclass(slots=True)  # one per write and per mirrored data change: frozen __init__ is slower
class DataValue:
    version: int
    czxid_mode: int
    ctime: int
    mtime: int
    owner: int
    kind: int
    flags: int
    ttl: int
    cpos: int  # position in its transaction of the op that created the node
    mpos: int  # position of the op that last wrote the data
    data: bytes

    def encode(self) -> bytes:
        return (
            _DATA_HEAD.pack(
                self.version,
                self.czxid_mode,
                self.ctime,
                self.mtime,
                self.owner,
                self.kind,
                self.flags,
                self.ttl,
                self.cpos,
                self.mpos,
            )
            + self.data
        )


# a data value's fields before the data: version czxid_mode ctime mtime owner kind flags ttl
# cpos mpos
DataHead = tuple[int, int, int, int, int, int, int, int, int, int]
DATA_HEAD_SIZE = _DATA_HEAD.size


def decode_data_head(raw: bytes) -> DataHead:
    """The fields of a data value before its data (which is ``raw[DATA_HEAD_SIZE:]``)."""
    return _DATA_HEAD.unpack_from(raw)


def encode_children_value(ppos: int) -> bytes:
    """The children key holds the position of the op that last changed the child set."""
    return bytes((ppos,))


def decode_children_value(raw: bytes) -> int:
    return raw[0] if raw else 0


# zxid = etcd revision << ZXID_SHIFT | position of the op in its transaction: one etcd
# transaction can carry up to 2**ZXID_SHIFT ZooKeeper transactions (group commit), each with
# its own zxid, in order.
ZXID_SHIFT = 8
MAX_POSITIONS = 1 << ZXID_SHIFT


def zxid(revision: int, pos: int = 0) -> int:
    return (revision << ZXID_SHIFT) | pos


def revision_of(zxid_: int) -> int:
    return zxid_ >> ZXID_SHIFT


def encode_acl_value(aversion: int, acl: tuple[ACL, ...]) -> bytes:
    """aversion, the entry count, then each entry: perms, scheme and id with their lengths
    (16-bit; when a scheme or id is 64 KiB or longer, which ZooKeeper allows, the count is
    stored as its bitwise complement and every length takes 32 bits)."""
    parts = [
        (
            a.perms,
            (a.id.scheme or "").encode("utf-8", "surrogatepass"),
            (a.id.id or "").encode("utf-8", "surrogatepass"),
        )
        for a in acl
    ]
    wide = any(len(scheme) >= 0xFFFF or len(ident) >= 0xFFFF for _, scheme, ident in parts)
    head, length = (_ACL_HEAD_WIDE, _UINT) if wide else (_ACL_HEAD, _USHORT)
    out = bytearray(_INT.pack(aversion))
    out += _INT.pack(~len(acl) if wide else len(acl))
    for perms, scheme, ident in parts:
        out += head.pack(perms, len(scheme))
        out += scheme
        out += length.pack(len(ident))
        out += ident
    return bytes(out)


def decode_acl_value(raw: bytes) -> tuple[int, tuple[ACL, ...]]:
    (aversion,) = _INT.unpack_from(raw, 0)
    (count,) = _INT.unpack_from(raw, 4)
    head, length = (_ACL_HEAD, _USHORT) if count >= 0 else (_ACL_HEAD_WIDE, _UINT)
    pos = 8
    acl = []
    for _ in range(count if count >= 0 else ~count):
        perms, slen = head.unpack_from(raw, pos)
        pos += head.size
        scheme = raw[pos : pos + slen].decode("utf-8", "surrogatepass")
        pos += slen
        (ilen,) = length.unpack_from(raw, pos)
        pos += length.size
        ident = raw[pos : pos + ilen].decode("utf-8", "surrogatepass")
        pos += ilen
        acl.append(ACL(perms, Id(scheme, ident)))
    return aversion, tuple(acl)


def encode_adjust_value(cadj: int) -> bytes:
    return _LONG.pack(cadj)


def encode_fence(time_ms: int) -> bytes:
    """The fence's value: its transaction's time, fixed-width so bytes compare as numbers."""
    return b"%016d" % time_ms


def decode_fence(raw: bytes) -> int:
    """A fence value's time; 0 for one that holds none (put empty by zetcds before 2026-12)."""
    return int(raw) if raw.isdigit() else 0


def decode_adjust_value(raw: bytes) -> int:
    return int(_LONG.unpack_from(raw)[0])


@dataclass(frozen=True, slots=True)
class SessionValue:
    """The session record: what any zetcd needs to resume the session. Auth ids are not in
    it: as in ZooKeeper they belong to the connection, and a resumed session sends them again."""

    passwd: bytes
    timeout: int
    # the connection that holds the session now (a token its zetcd made up): when another
    # zetcd resumes the session it writes its own, and the first closes its connection
    owner: str = ""

    def encode(self) -> bytes:
        obj: dict[str, object] = {"p": self.passwd.hex(), "t": self.timeout}
        if self.owner:
            obj["o"] = self.owner
        return json.dumps(obj, separators=(",", ":")).encode()


# the owner of a session whose end is under way in several transactions (its ephemerals did not
# fit one): no resumption may claim it (SessionStore.claim), as ZooKeeper's one-transaction
# expiry or close leaves no moment to resume in
CLOSING = "!closing"


def closing_value(value: SessionValue) -> bytes:
    """The record of a session whose end is under way: from its password alone, which never
    changes, so that a mirror behind a timeout renegotiation still knows it exactly."""
    return SessionValue(value.passwd, 0, CLOSING).encode()


def decode_session_value(raw: bytes) -> SessionValue:
    obj = json.loads(raw)  # records of older versions also hold "a" (auth ids): ignored
    return SessionValue(bytes.fromhex(obj["p"]), int(obj["t"]), str(obj.get("o", "")))


class Layout:
    """Key names under one prefix."""

    __slots__ = ("fence", "log", "plen", "positions", "prefix", "quotas", "session_prefix")

    def __init__(self, prefix: bytes = b"/zetcd/") -> None:
        self.prefix = prefix
        self.plen = len(prefix)
        self.log = prefix + b"!log"
        self.positions = prefix + b"!zx"  # how many zxids a transaction spent, when > 1
        self.fence = prefix + b"!fence"  # put by every transaction (see above)
        self.quotas = prefix + b"!quota"  # the quota'd paths (see above)
        self.session_prefix = prefix + b"s/"

    def data(self, path: str) -> bytes:
        return self.prefix + b"d" + path.encode("utf-8", "surrogatepass")

    def children(self, path: str) -> bytes:
        return self.prefix + b"c" + path.encode("utf-8", "surrogatepass")

    def acl(self, path: str) -> bytes:
        return self.prefix + b"a" + path.encode("utf-8", "surrogatepass")

    def adjust(self, path: str) -> bytes:
        return self.prefix + b"x" + path.encode("utf-8", "surrogatepass")

    def quota_stats(self, path: str) -> bytes:
        return self.prefix + b"q" + path.encode("utf-8", "surrogatepass")

    def session(self, session_id: int) -> bytes:
        return self.session_prefix + b"%016x" % (session_id & 0xFFFFFFFFFFFFFFFF)

    def split(self, key: bytes) -> tuple[int, str]:
        """(kind byte, path or session hex) of a key under the prefix."""
        kind = key[self.plen]
        if kind == KIND_SESSION:
            return kind, key[self.plen + 2 :].decode()
        return kind, key[self.plen + 1 :].decode("utf-8", "surrogatepass")


# (index of a change in the !log, path) -> the ACL its watch events are checked against
EventAcls = dict[tuple[int, str], tuple[ACL, ...]]


def encode_log(
    changes: list[tuple[str, str]],
    acls: dict[int, tuple[tuple[ACL, ...] | None, tuple[ACL, ...] | None]] | None = None,
    owners: dict[int, int] | None = None,
) -> bytes:
    """The ``!log`` value: a JSON list of the changes as ``[kind, path]``. A change whose watch
    events are checked against an ACL other than the one its node (or its parent, for a child
    event) has after the transaction, because the transaction set or replaced it later or the
    node is gone by then, is ``[kind, path, its ACL or null, its parent's ACL or null]`` (each
    ACL a list of ``[perms, scheme, id]``); ``acls`` maps the index of such a change to them.
    A create of a node with an ephemeralOwner that the transaction deletes again names it
    fifth (``owners``, by index; the ACLs then null if not named)."""
    if not acls and not owners:
        return json.dumps(changes, separators=(",", ":")).encode()
    out: list[list[object]] = []
    for i, (kind, path) in enumerate(changes):
        entry: list[object] = [kind, path]
        if acls and i in acls:
            entry.extend(_acl_json(acl) for acl in acls[i])
        if owners and i in owners:
            entry.extend((None, None) if len(entry) == 2 else ())
            entry.append(owners[i])
        out.append(entry)
    return json.dumps(out, separators=(",", ":")).encode()


def _acl_json(acl: tuple[ACL, ...] | None) -> list[list[object]] | None:
    return None if acl is None else [[a.perms, a.id.scheme, a.id.id] for a in acl]


def decode_log(raw: bytes) -> tuple[list[tuple[str, str]], EventAcls, dict[int, int]]:
    """The changes of a ``!log`` value, the ACLs it names for their events and the owners it
    names for creates (encode_log)."""
    changes: list[tuple[str, str]] = []
    acls: EventAcls = {}
    owners: dict[int, int] = {}
    for i, entry in enumerate(json.loads(raw)):
        kind, path = entry[0], entry[1]
        changes.append((kind, path))
        if len(entry) > 2:
            if entry[2] is not None:
                acls[i, path] = tuple(ACL(p, Id(s, n)) for p, s, n in entry[2])
            if entry[3] is not None:
                parent = path.rpartition("/")[0] or "/"
                acls[i, parent] = tuple(ACL(p, Id(s, n)) for p, s, n in entry[3])
            if len(entry) > 4:
                owners[i] = entry[4]
    return changes, acls, owners


def encode_quotas(quotas: frozenset[tuple[str, ...]]) -> bytes:
    return json.dumps(sorted(quotas), separators=(",", ":")).encode()


def decode_quotas(raw: bytes) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(parts) for parts in json.loads(raw)) if raw else frozenset()


def session_id_from_hex(text: str) -> int:
    sid = int(text, 16)
    return sid - (1 << 64) if sid >= 1 << 63 else sid

"""Hypothesis strategies for paths, data, versions, ACLs and ops.

Paths come from a three-letter alphabet under the example's tree, mostly names already seen
(the machine's ``paths`` bundle: what was tried or created, sequential names included) and
their children, so that collisions, deep trees and sequential siblings actually happen; one
draw in sixteen is an odd path that exercises validation (trailing slash, empty or dot
segments, NUL, control and non-BMP characters, a relative name).

Everything drawn here is plain data; :mod:`fuzz.ops` turns it into requests.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle

from fuzz.ops import (
    WORLD,
    AclSpec,
    AddWatch,
    Auth,
    Check,
    Create,
    Delete,
    DeleteContainer,
    Exists,
    GetACL,
    GetAllChildrenNumber,
    GetChildren,
    GetData,
    GetEphemerals,
    Mangled,
    Multi,
    Ping,
    QuotaStats,
    Reconfig,
    Recreate,
    RemoveWatches,
    Resume,
    SetACL,
    SetData,
    Sync,
    Unknown,
    WhoAmI,
    digest_id,
    fails_prep_unchecked,
)
from zetcd.proto.constants import TTL_MODES, OpCode


def weighted(*choices: tuple[Any, int]) -> st.SearchStrategy[Any]:
    """``sampled_from`` with integer weights; the first choice is what shrinking goes for."""
    return st.sampled_from([value for value, weight in choices for _ in range(weight)])


LETTERS = st.sampled_from(("a", "b", "c"))
SEED_PATHS = ("/a", "/")  # the last is the newest: what simple draws pick
ODD_PATHS = (
    "/a/",
    "//a",
    "/a//b",
    "/./a",
    "/a/..",
    "/a\x00b",
    "/a\x01",
    "/\u0085",
    "/\U0001f600",
    "/\u00e9",
    "a",
)
DATA = weighted((b"", 3), (b"x", 3), (b"data", 2), (None, 1), (b"\x00\xff", 1))
VERSIONS = weighted((-1, 4), (0, 3), (1, 2), (2, 1), (-2, 1))
WATCH = weighted((True, 3), (False, 1))  # reads mostly leave a watch behind
SET_WATCHES = weighted((2, 2), (1, 2), (0, 1))  # after a resume: setWatches2, setWatches, none
NEVER_MATCHING_VERSIONS = st.sampled_from((-2, 1_000_000))

ODD_ACLS: tuple[AclSpec | None, ...] = (
    ((1, "world", "anyone"),),  # read only
    ((15, "world", "anyone"),),  # everything but ADMIN
    ((23, "world", "anyone"),),  # everything but DELETE
    ((31, "digest", digest_id("u1", "p1")),),
    ((1, "world", "anyone"), (31, "digest", digest_id("u1", "p1"))),
    ((31, "auth", ""),),
    ((31, "ip", "127.0.0.1"),),
    ((31, "ip", "10.0.0.0/8"),),
    ((31, "world", "nobody"),),  # InvalidACL
    ((31, "foo", "bar"),),  # InvalidACL
    ((31, "x509", "CN=a"),),  # InvalidACL: no x509 provider without a secure client port
    ((31, "digest", None),),  # a null id: MarshallingError (the provider's isValid throws)
    ((1, "world", "anyone"), (31, "world", None)),  # MarshallingError too
    ((31, None, "x"),),  # a null scheme: InvalidACL
    ((0, "world", "anyone"),),
    (WORLD[0], WORLD[0]),
    (),
    None,
)
ACLS = weighted((WORLD, 3 * len(ODD_ACLS)), *((acl, 1) for acl in ODD_ACLS))

MODES = weighted((0, 8), (1, 4), (2, 4), (3, 3), (4, 1), (5, 1), (6, 1), (7, 1), (-1, 1))
CREATE_OPCODES = weighted(
    (OpCode.CREATE, 5), (OpCode.CREATE2, 3), (OpCode.CREATE_CONTAINER, 2), (OpCode.CREATE_TTL, 2)
)
# Valid TTLs are far longer than any campaign (see fuzz/driver.py); 0 and 2**40 are refused.
TTLS = weighted((3_600_000, 4), (2**40 - 1, 1), (0, 1), (2**40, 1))


@st.composite
def paths_from(draw: st.DrawFn, bundle: Bundle[str], children: int = 3, parents: int = 0) -> str:
    """A name from ``bundle``; out of sixteen draws, ``children`` are a child of one,
    ``parents`` its parent, and one is an odd path."""
    k = draw(st.integers(0, 15))
    if k == 15:
        return draw(st.sampled_from(ODD_PATHS))
    base = draw(bundle)
    if k >= 15 - children:
        return ("" if base == "/" else base) + "/" + draw(LETTERS)
    if k >= 15 - children - parents:
        return base.rsplit("/", 1)[0] or "/"
    return base


@st.composite
def creates(draw: st.DrawFn, paths: st.SearchStrategy[str], *, in_multi: bool = False) -> Create:
    path = draw(paths)
    opcode = draw(CREATE_OPCODES)
    if opcode == OpCode.CREATE_TTL:
        flags = draw(weighted((5, 4), (6, 4), (0, 1), (1, 1), (4, 1)))
        # never a non-TTL mode with ttl < 0: that request crashes ZooKeeper 3.8
        ttl = draw(TTLS if flags in TTL_MODES else st.sampled_from((3_600_000, 0)))
    else:
        flags = draw(
            weighted((0, 12), (1, 6), (2, 6), (3, 4), (4, 4), (5, 1), (6, 1), (7, 1), (-1, 1))
            if in_multi
            else MODES
        )
        ttl = -1
    acl = WORLD if in_multi else draw(ACLS)
    return Create(path, draw(DATA), acl, flags, opcode, ttl)


def multi_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[Any, ...]]:
    write = st.one_of(
        creates(paths, in_multi=True),
        creates(paths, in_multi=True),
        st.builds(Delete, paths, VERSIONS),
        st.builds(SetData, paths, DATA, VERSIONS),
        st.builds(Check, paths, VERSIONS),
    )
    odd_read = st.builds(GetData, paths, st.just(False))
    op = st.one_of(*([write] * 15), odd_read)  # a read op in a multi fails the whole multi
    return st.lists(op, max_size=4).map(tuple)


def pipeline_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Requests for one session to send back to back (fuzz.ops.Pipeline): mostly writes,
    which zetcd then commits in one etcd transaction, with watching reads and syncs between
    them, and sometimes a setACL last (an ACL that changes after changes the same transaction
    made). Never a request after a setACL: ZooKeeper checks one against the node's old ACL or
    its new one depending on whether the setACL was applied yet; nor after a multi that fails
    unchecked in its PrepRequestProcessor, whose ops' changes a write behind it may see until
    it is applied (fails_prep_unchecked; both in docs/differences.md)."""
    write = st.one_of(
        creates(paths),
        st.builds(Delete, paths, VERSIONS),
        st.builds(SetData, paths, DATA, VERSIONS),
        st.builds(Multi, multi_ops(paths)),
    )
    read = st.one_of(
        st.builds(GetData, paths, WATCH),
        st.builds(Exists, paths, WATCH),
        st.builds(GetChildren, paths, WATCH, st.booleans()),
        st.builds(Sync, paths),
    )
    # three writes to a read (a flatmap: hypothesis would warn about the repr of one_of's)
    op = weighted((True, 3), (False, 1)).flatmap(lambda w: write if w else read)
    last = st.one_of(st.just(()), st.builds(SetACL, paths, ACLS, VERSIONS).map(lambda a: (a,)))
    return st.tuples(st.lists(op, min_size=2, max_size=5), last).map(
        lambda drawn: _up_to_an_unchecked_failure((*drawn[0], *drawn[1]))
    )


def _up_to_an_unchecked_failure(ops: tuple[Any, ...]) -> tuple[Any, ...]:
    """The pipeline, ending at its first multi that may fail unchecked (fails_prep_unchecked)."""
    for i, op in enumerate(ops):
        if fails_prep_unchecked(op):
            return ops[: i + 1]
    return ops


def multi_read_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[Any, ...]]:
    read = st.one_of(
        st.builds(GetData, paths, st.just(False)),
        st.builds(GetChildren, paths, st.just(False)),
    )
    odd_write = st.builds(SetData, paths, DATA, VERSIONS)  # refused in a multiRead
    op = st.one_of(*([read] * 15), odd_write)
    return st.lists(op, max_size=4).map(tuple)


def watch_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(AddWatch, paths, st.sampled_from((0, 1, 2))),
        st.builds(RemoveWatches, paths, st.sampled_from((1, 2, 3, 4, 5, 9)), st.booleans()),
    )


def session_info_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(GetEphemerals, paths),
        st.builds(GetAllChildrenNumber, paths),
        st.just(QuotaStats()),
        st.just(WhoAmI()),
        st.builds(
            Auth,
            st.sampled_from(("digest", "digest", "digest", "ip", "foo")),
            st.sampled_from((b"u1:p1", b"u2:p2", b"nocolon", b"127.0.0.1")),
        ),
    )


def odd_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    mangleable = st.one_of(
        creates(paths),
        st.builds(SetData, paths, DATA, VERSIONS),
        st.builds(GetData, paths, st.booleans()),
        st.builds(Delete, paths, VERSIONS),
        st.builds(Multi, multi_ops(paths)),
    )
    return st.one_of(
        takeovers(),
        st.just(Reconfig()),
        st.builds(DeleteContainer, paths),
        st.builds(Unknown, st.sampled_from((999, 10, 0, -5))),
        st.builds(Mangled, mangleable, st.sampled_from((1, 2, 4, -3))),
        st.builds(Recreate, st.sampled_from((30000, 60000, 0x7FFFFFFF))),
        st.builds(Mangled, st.builds(Recreate), st.sampled_from((1, 4, -3))),
        st.builds(Check, paths, NEVER_MATCHING_VERSIONS),
    )


def session_request_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Requests about the session or that change nothing: sync, ping, auth, whoAmI, ..."""
    return st.one_of(
        st.builds(Sync, paths),
        st.just(Ping()),
        session_info_ops(paths),
    )


def acl_ops(paths: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.builds(SetACL, paths, ACLS, VERSIONS), st.builds(GetACL, paths))


def takeovers() -> st.SearchStrategy[Any]:
    """A resume while the session's connection is still open, with the right password or not."""
    return st.builds(Resume, st.just(30000), st.just(0), st.booleans())

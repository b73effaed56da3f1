"""The coverage tour: a fixed sequence of steps every campaign runs before generating any.

Hypothesis decides what a campaign generates, and how much of it fits in the time budget
depends on the machine and on the example database, so a generated campaign may or may not
get, say, NotEmpty from ZooKeeper. The tour makes the coverage figures independent of that:
it sends every opcode of :data:`fuzz.coverage.TARGET_OPCODES` and provokes every error code of
:data:`fuzz.coverage.ERROR_FAMILIES`, in one short example (three sessions, a few seconds).

It is an example like any other, not a probe: the campaign runs it through the same
:class:`~fuzz.driver.Driver`, so every step goes to both servers and every answer and watch
event is compared; a divergence in the tour is shrunk, replayed and reported like one
hypothesis found. tests/test_fuzz_tour.py checks against the suite's servers that the tour
still reaches every target.

Each comment names what the step is there for: the opcode (when it is the tour's only one),
and the error code ZooKeeper answers. Paths are relative to the example's tree.
"""

from __future__ import annotations

from fuzz.ops import (
    WORLD,
    AclSpec,
    AddWatch,
    Auth,
    Check,
    Close,
    Create,
    Delete,
    DeleteContainer,
    Drop,
    Exists,
    GetACL,
    GetAllChildrenNumber,
    GetChildren,
    GetData,
    GetEphemerals,
    Mangled,
    Multi,
    Open,
    Ping,
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
)
from zetcd.proto.constants import CreateMode, OpCode

READ_ONLY: AclSpec = ((1, "world", "anyone"),)
AUTH: AclSpec = ((31, "auth", ""),)

TOUR: tuple[Step, ...] = (
    # Three sessions: s0 writes, s1 watches, s2 authenticates and is dropped and resumed.
    Step(0, Open()),
    Step(1, Open()),
    Step(2, Open()),
    # Node existence, and watches of every kind firing.
    Step(0, Create("/a", b"x")),  # create: OK
    Step(0, Create("/a", b"y")),  # NODE_EXISTS
    Step(1, Exists("/a/b", True)),  # exists: NO_NODE, leaves an exist watch
    Step(1, GetData("/a", True)),
    Step(2, GetData("/a", True)),  # s2's data watch, re-registered by its resumes below
    Step(1, GetChildren("/a", True)),
    Step(0, Create("/a/b", b"", WORLD, CreateMode.PERSISTENT, OpCode.CREATE2)),  # create2
    Step(1, GetChildren("/a", True, v2=True)),  # getChildren2
    Step(0, SetData("/a/b", b"z")),  # a child's setData fires nothing on its parent
    Step(0, SetData("/a", b"z", 7)),  # setData: BAD_VERSION
    Step(0, SetData("/a", b"z", 0)),  # fires s1's and s2's data watches
    # Tree shape.
    Step(0, Delete("/a")),  # delete: NOT_EMPTY
    Step(0, Create("/e", b"", WORLD, CreateMode.EPHEMERAL)),
    Step(0, Create("/e/c")),  # NO_CHILDREN_FOR_EPHEMERALS
    Step(0, GetEphemerals("/")),  # getEphemerals
    Step(0, GetAllChildrenNumber("/")),  # getAllChildrenNumber
    # Access control.
    Step(0, Create("/r", b"", READ_ONLY)),
    Step(0, SetData("/r", b"x")),  # NO_AUTH
    Step(0, Create("/i", b"", ((31, "world", "nobody"),))),  # INVALID_ACL
    Step(0, SetACL("/a", WORLD, 0)),  # setACL
    Step(0, GetACL("/a")),  # getACL
    Step(2, Auth("digest", b"u1:p1")),  # auth
    Step(2, WhoAmI()),  # whoAmI
    Step(2, Create("/d", b"", AUTH)),
    Step(1, GetData("/d")),  # NO_AUTH: s1 is not u1
    Step(1, Auth("foo", b"x")),  # AUTH_FAILED: both close the connection, s1 resumes
    # Bad arguments, TTLs and containers.
    Step(0, Create("/a/")),  # BAD_ARGUMENTS: an invalid path
    Step(0, Create("/t", b"", WORLD, CreateMode.PERSISTENT_WITH_TTL, OpCode.CREATE_TTL, 3_600_000)),
    Step(0, Create("/u", b"", WORLD, CreateMode.PERSISTENT_WITH_TTL, OpCode.CREATE_TTL, 0)),
    Step(0, Create("/c", b"", WORLD, CreateMode.CONTAINER, OpCode.CREATE_CONTAINER)),
    Step(0, DeleteContainer("/c")),  # deleteContainer
    # Malformed requests.
    Step(0, Multi((GetData("/a"), SetData("/a", b"")), read=True)),  # MARSHALLING_ERROR
    Step(0, Mangled(GetData("/a"), 2)),  # a truncated body
    Step(0, Mangled(Recreate(), 1)),  # createSession with a short body: MARSHALLING_ERROR
    Step(0, Recreate()),  # createSession inside the session: the ConnectResponse again
    # Unsupported.
    Step(0, Reconfig()),  # reconfig: RECONFIG_DISABLED
    Step(1, Unknown(999)),  # UNIMPLEMENTED: both close the connection, s1 resumes
    # Multi: the first op succeeds, the second fails, the third is RUNTIME_INCONSISTENCY.
    Step(0, Multi((Create("/m"), Check("/a", 7), SetData("/a/b", b"")))),  # multi, check
    Step(0, Multi((GetData("/a"), GetChildren("/a"), GetData("/m")), read=True)),  # multiRead
    Step(0, Check("/a", 7)),  # a standalone check (one that fails: docs/differences.md)
    # Watches (s1 lost its own with its connection): recursive, checked, removed; NO_WATCHER.
    Step(1, AddWatch("/a", 1)),  # addWatch
    Step(1, GetChildren("/a", True)),
    Step(1, RemoveWatches("/a", 1, check_only=True)),  # checkWatches
    Step(0, Create("/a/b/c")),  # the recursive watch fires, the child watch does not
    Step(1, RemoveWatches("/a", 1)),  # removeWatches
    Step(1, RemoveWatches("/a", 1)),  # NO_WATCHER
    # Session life cycle: s2 is dropped and resumed twice, re-registering its watches.
    Step(2, Exists("/a/x", True)),
    Step(2, Drop()),
    Step(0, Create("/a/x")),  # s2 is not connected: the event waits for setWatches
    Step(2, Resume(set_watches=2)),  # setWatches2
    Step(2, Drop()),
    Step(0, SetData("/a", b"w")),
    Step(2, Resume(set_watches=1)),  # setWatches: s2's data watch on /a fires
    Step(2, Sync("/a")),  # sync
    Step(2, Ping()),  # ping
    Step(2, Close()),  # closeSession
    Step(0, Delete("/a/b/c", 0)),
    Step(0, Delete("/a/b")),
    Step(0, QuotaStats()),  # what the tree's quota counted for all of the above
)

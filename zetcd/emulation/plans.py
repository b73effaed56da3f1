"""ZooKeeper write rules, applied to a Scratch: create, delete, setData, setACL, check, multi.

Each ``_op`` function follows the order of checks of ZooKeeper 3.8's PrepRequestProcessor (so the
same bad request gets the same error), applies the change to the scratch, and returns a function
that builds the response once the commit's zxid is known. A failure raises OpError; its position
in the transaction still spends a zxid, as a ZooKeeper error txn does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zetcd.emulation import acls
from zetcd.emulation import layout as L
from zetcd.emulation.errors import OpError, ServerCrash
from zetcd.emulation.javahashset import copy_order, fill_order
from zetcd.emulation.paths import is_valid_path
from zetcd.emulation.scratch import NodeState, Scratch, resolve_stat
from zetcd.emulation.tree import SessionEntry, Tree
from zetcd.proto.constants import TTL_MODES, CreateMode, Err, OpCode, Perm
from zetcd.proto.opcodes import TXN_OPS
from zetcd.proto.records import (
    Create2Response,
    CreateRequest,
    CreateResponse,
    ErrorResponse,
    MultiResponse,
    MultiResult,
    SetACLResponse,
    SetDataResponse,
)

CONTAINER_OWNER = L.CONTAINER_OWNER
TTL_OWNER_BASE = L.TTL_OWNER_BASE
MAX_TTL = (1 << 40) - 1  # EphemeralType.TTL.maxValue()
# plain ints: int & IntFlag goes through the enum's Python-level __rand__
READ, WRITE, CREATE, DELETE, ADMIN = (
    int(p) for p in (Perm.READ, Perm.WRITE, Perm.CREATE, Perm.DELETE, Perm.ADMIN)
)

Builder = Callable[[int], object]  # the commit's base zxid -> response record (or None)
Apply = Callable[[Scratch], Builder]


@dataclass(frozen=True, slots=True)
class Ctx:
    """Who asks (the time of a write is its transaction's: Scratch.now). Session 0 is the
    server itself (etcd never grants lease 0, so no client session has that id): its writes
    skip checkSession."""

    session_id: int
    auth: tuple[tuple[str, str], ...] = ()
    ttl_enabled: bool = True
    owner: str = ""  # the connection's token (SessionValue.owner); "" checks no owner
    x509: bool = False  # the x509 provider is registered (Options.x509)


def _split_parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


def _check_session(sc: Scratch, ctx: Ctx) -> None:
    """ZooKeeper's checkSession, which every client write passes first (a create, after its
    TTL checks): a session whose record the mirror no longer has has expired (its record
    reaches the mirror before its first request), and a live one's record is pinned, so no
    write of a session commits after etcd deleted its record on the lease's expiry. Without
    this, the writes of an expiring session's in-flight requests would commit after the
    session's clean-up had started, which ZooKeeper never lets happen."""
    session_id = ctx.session_id
    if session_id:
        entry = sc.tree.sessions.get(session_id)
        if entry is None or entry.value.owner == L.CLOSING:
            raise OpError(Err.SESSION_EXPIRED)
        _check_owner(entry, ctx.owner)
        sc.guard_session(session_id)


def _check_owner(entry: SessionEntry, owner: str) -> None:
    """ZooKeeper's session owner check: a request from a connection that no longer holds its
    session (resumed on another connection, here or on another zetcd) gets SessionMoved. The
    guard on the record's mod revision makes a resumption that commits first fail the write,
    which is then planned again and refused here."""
    held_by = entry.value.owner
    if owner and held_by and held_by != owner:
        raise OpError(Err.SESSION_MOVED)


def _check_version(current: int, expected: int) -> None:
    if expected != -1 and expected != current:
        raise OpError(Err.BAD_VERSION)


# ---------------------------------------------------------------------------- single ops
SEQUENTIAL_MODES = frozenset(
    (
        CreateMode.PERSISTENT_SEQUENTIAL,
        CreateMode.EPHEMERAL_SEQUENTIAL,
        CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL,
    )
)
EPHEMERAL_MODES = frozenset((CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL))
CREATE_MODES = frozenset(int(m) for m in CreateMode)  # plain ints: cheaper than CreateMode(x)


def multi_create_opcode(flags: int) -> int:
    """Inside a multi ZooKeeper 3.8 rebuilds each create from its flags, whatever its opcode:
    container flags make a createContainer, TTL flags a createTTL, anything else a plain create
    (a create2 request included, so its result has no Stat)."""
    if flags == CreateMode.CONTAINER:
        return OpCode.CREATE_CONTAINER
    if flags in TTL_MODES:
        return OpCode.CREATE_TTL
    return OpCode.CREATE


def _create(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    path: str | None = req.path  # type: ignore[attr-defined]
    ttl: int = getattr(req, "ttl", -1)
    mode: int = req.flags  # type: ignore[attr-defined]
    if mode not in CREATE_MODES:
        raise OpError(Err.BAD_ARGUMENTS)
    is_ttl = mode in TTL_MODES
    if is_ttl and not ctx.ttl_enabled:
        raise OpError(Err.UNIMPLEMENTED)
    # EphemeralType.validateTTL: TTL modes need 1..2^40-1, other modes a negative ttl. (A
    # createTTL with a non-TTL mode passes this on ZooKeeper 3.8.0 and crashes the server; here
    # it is BadArguments.)
    if (is_ttl and not 0 < ttl <= MAX_TTL) or (
        not is_ttl and (ttl >= 0 or opcode == OpCode.CREATE_TTL)
    ):
        raise OpError(Err.BAD_ARGUMENTS)
    _check_session(sc, ctx)
    if path is None:  # path.lastIndexOf throws: MarshallingError
        raise OpError(Err.MARSHALLING_ERROR)
    if path.rfind("/") == -1 or "\0" in path:
        raise OpError(Err.BAD_ARGUMENTS)
    acl = acls.fixup(req.acl, ctx.auth, ctx.x509)  # type: ignore[attr-defined]
    parent = sc.node(path[: path.rfind("/")] or "/")
    if not parent.exists:
        raise OpError(Err.NO_NODE)
    sc.guard_acl(parent)
    acls.check(parent.acl, CREATE, ctx.auth)
    if mode in SEQUENTIAL_MODES:
        sc.guard_children(parent)
        path = f"{path}{parent.stored_cversion:010d}"
    if not is_valid_path(path):
        raise OpError(Err.BAD_ARGUMENTS)
    st = sc.node(path)
    if st.exists:
        raise OpError(Err.NODE_EXISTS)
    if L.is_session_owner(parent.owner):
        raise OpError(Err.NO_CHILDREN_FOR_EPHEMERALS)
    # the opcode, not the flags, decides the node's type (DataTree.processTxn)
    if opcode == OpCode.CREATE_CONTAINER:
        owner = CONTAINER_OWNER
    elif opcode == OpCode.CREATE_TTL:
        owner = TTL_OWNER_BASE | ttl
    elif mode in EPHEMERAL_MODES:
        owner = ctx.session_id  # alive at commit (_check_session), so its clean-up finds it
        if not owner:  # the server itself has no session to own an ephemeral
            raise OpError(Err.SESSION_EXPIRED)
    else:
        owner = 0
    sc.create(st, parent, req.data, acl, owner, L.NODE_PLAIN, 0, sc.now)  # type: ignore[attr-defined]
    final_path = path
    if opcode == OpCode.CREATE:
        return lambda base: CreateResponse(final_path)
    stat = st.stat(client_data=True)
    return lambda base: Create2Response(final_path, resolve_stat(stat, base))


_SPECIAL = frozenset(("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"))


def _delete(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    _check_session(sc, ctx)
    path: str | None = req.path  # type: ignore[attr-defined]
    if path is None:  # path.lastIndexOf throws: MarshallingError
        raise OpError(Err.MARSHALLING_ERROR)
    if path.rfind("/") == -1 or "\0" in path or path in _SPECIAL:
        raise OpError(Err.BAD_ARGUMENTS)
    parent = sc.node(path[: path.rfind("/")] or "/")
    if not parent.exists:
        raise OpError(Err.NO_NODE)
    sc.guard_acl(parent)
    acls.check(parent.acl, DELETE, ctx.auth)
    st = sc.node(path)
    if not st.exists:
        raise OpError(Err.NO_NODE)
    version: int = req.version  # type: ignore[attr-defined]
    if version != -1:
        sc.guard_data(st)
    _check_version(st.version, version)
    sc.guard_children(st)
    if st.nchildren:
        raise OpError(Err.NOT_EMPTY)
    sc.delete(st, parent)
    return _no_body


def _existing(sc: Scratch, ctx: Ctx, path: str | None, perm: int) -> NodeState:
    """validatePath, the node exists, checkACL(node, perm): in that order. (A path the tree
    or the plan holds is valid: only valid paths are ever created.)"""
    if path is None:
        raise OpError(Err.BAD_ARGUMENTS)
    st = sc.states.get(path)
    if st is None:
        if path not in sc.tree.nodes and not is_valid_path(path):
            raise OpError(Err.BAD_ARGUMENTS)
        st = sc.node(path)
    if not st.exists:
        raise OpError(Err.NO_NODE)
    sc.guard_acl(st)
    acls.check(st.acl, perm, ctx.auth)
    return st


def _set_data(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    _check_session(sc, ctx)
    st = _existing(sc, ctx, req.path, WRITE)  # type: ignore[attr-defined]
    sc.guard_data(st)
    _check_version(st.version, req.version)  # type: ignore[attr-defined]
    sc.guard_children(st)  # the reply's Stat carries cversion/numChildren/pzxid
    sc.set_data(st, req.data, sc.now)  # type: ignore[attr-defined]
    stat = st.stat()
    return lambda base: SetDataResponse(resolve_stat(stat, base))


def _set_acl(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    _check_session(sc, ctx)
    path = req.path  # type: ignore[attr-defined]
    if not is_valid_path(path):
        raise OpError(Err.BAD_ARGUMENTS)
    acl = acls.fixup(req.acl, ctx.auth, ctx.x509)  # type: ignore[attr-defined]
    st = _existing(sc, ctx, path, ADMIN)
    _check_version(st.aversion, req.version)  # type: ignore[attr-defined]
    sc.guard_data(st)
    sc.guard_children(st)
    sc.set_acl(st, acl)
    stat = st.stat()
    return lambda base: SetACLResponse(resolve_stat(stat, base))


def _check(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    _check_session(sc, ctx)
    st = _existing(sc, ctx, req.path, READ)  # type: ignore[attr-defined]
    sc.guard_data(st)
    _check_version(st.version, req.version)  # type: ignore[attr-defined]
    return _no_body


def _reconfig(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    """A standalone server with reconfig disabled (ZooKeeper's default): an error txn."""
    raise OpError(Err.RECONFIG_DISABLED)


def _delete_container(sc: Scratch, ctx: Ctx, opcode: int, req: object) -> Builder:
    """Server-internal on ZooKeeper: a client's deleteContainer reads its path from the whole
    buffer, header included, whose NUL bytes make it BadArguments (still an error txn)."""
    raise OpError(Err.BAD_ARGUMENTS)


OPS: dict[int, Callable[[Scratch, Ctx, int, object], Builder]] = {
    OpCode.CREATE: _create,
    OpCode.CREATE2: _create,
    OpCode.CREATE_CONTAINER: _create,
    OpCode.CREATE_TTL: _create,
    OpCode.DELETE: _delete,
    OpCode.SET_DATA: _set_data,
    OpCode.SET_ACL: _set_acl,
    OpCode.CHECK: _check,
    OpCode.DELETE_CONTAINER: _delete_container,
    OpCode.RECONFIG: _reconfig,
}
# a plan for each request ZooKeeper makes one txn of, and for nothing else
assert OPS.keys() == TXN_OPS

MULTI_OPS = frozenset(
    (
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.SET_DATA,
        OpCode.CHECK,
    )
)

_CREATES = frozenset((OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL))
# a container or TTL create inside a multi reports a create2 result (path and Stat)
_CREATES_WITH_STAT = frozenset((OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL))


# ---------------------------------------------------------------------------- writes
# Each returns an Apply for the batcher (batcher.py): applied to the shared scratch of a
# transaction, it raises OpError or returns how to build the response from the commit's base
# zxid.


def write(ctx: Ctx, opcode: int, req: object) -> Apply:
    """One write request."""
    op = OPS[opcode]
    return lambda sc: op(sc, ctx, opcode, req)


def error_write(code: int) -> Apply:
    """A write that fails before it is even read (a malformed body) still spends a zxid."""

    def apply(sc: Scratch) -> Builder:
        raise OpError(code)

    return apply


def spend_zxid() -> Apply:
    """A write that changes nothing and still spends a zxid: the txn of a createSession sent
    inside an established session (ZooKeeper checks nothing for it)."""
    return lambda sc: _no_body


def delete_container(ctx: Ctx, path: str) -> Apply:
    """The container manager's deleteContainer: NotEmpty if it gained a child meanwhile,
    BadVersion if the path now holds a normal node (PrepRequestProcessor's rules)."""

    def apply(sc: Scratch) -> Builder:
        parent = sc.node(path[: path.rfind("/")] or "/")
        st = sc.node(path)
        if not st.exists or not parent.exists:
            raise OpError(Err.NO_NODE)
        sc.guard_children(st)
        sc.guard_data(st)
        if st.nchildren:
            raise OpError(Err.NOT_EMPTY)
        if not L.is_extended_owner(st.owner):
            raise OpError(Err.BAD_VERSION)
        sc.delete(st, parent)
        return _no_body

    return apply


def container_candidates(tree: Tree, now: int) -> list[str]:
    """ContainerManager.getCandidates: empty containers that once had a child (stored
    cversion > 0), and childless TTL nodes not modified for longer than their TTL, in the
    order ZooKeeper deletes them: it adds the containers, then the TTL nodes, each in the
    order of a copy of the DataTree's set of them (getContainers, getTtls: a new HashSet sized
    for what the set holds), to a new HashSet<String> and deletes in its order."""
    out = []
    for path in copy_order(tree.containers):
        node = tree.nodes.get(path)
        # stored cversion > 0: (visible + n) / 2
        if node is not None and not node.children and node.cversion > 0:
            out.append(path)
    for path in copy_order(tree.ttls):
        node = tree.nodes.get(path)
        if node is not None and not node.children:
            ttl = L.ttl_of(node.owner)
            if ttl and now - node.mtime > ttl:
                out.append(path)
    return fill_order(out, 16)


class Multi:
    """A multi: all ops in order on the scratch; all or nothing. A failed multi reports
    ZooKeeper's per-op results (0 before the failing op, its code, RuntimeInconsistency after)
    with header err 0, changes nothing, and still spends a zxid. Commit it alone (exclusive)."""

    __slots__ = ("ctx", "ops")

    def __init__(self, ctx: Ctx, ops: tuple[object, ...]) -> None:
        self.ctx = ctx
        self.ops = ops

    def __call__(self, sc: Scratch) -> Builder:
        ctx, ops = self.ctx, self.ops
        builders: list[tuple[int, Builder]] = []
        for i, op in enumerate(ops):
            optype: int = op.type  # type: ignore[attr-defined]
            request = op.request  # type: ignore[attr-defined]
            try:
                if optype in _CREATES:
                    rebuilt = multi_create_opcode(request.flags)
                    if rebuilt == OpCode.CREATE_TTL and optype != OpCode.CREATE_TTL:
                        # Op.create made a createTTL op of a CreateRequest: ZooKeeper 3.8's
                        # PrepRequestProcessor casts it to CreateTTLRequest and fails the whole
                        # multi, a zxid spent (when an earlier op failed, it never gets here)
                        raise ServerCrash()
                    if optype == OpCode.CREATE_TTL and rebuilt != OpCode.CREATE_TTL:
                        # Op.create(..., ttl) ignores the ttl of a mode that has none
                        request = CreateRequest(
                            request.path, request.data, request.acl, request.flags
                        )
                    optype = rebuilt
                if optype not in MULTI_OPS:
                    raise OpError(Err.BAD_ARGUMENTS)
                result_type = OpCode.CREATE2 if optype in _CREATES_WITH_STAT else optype
                builders.append((result_type, OPS[optype](sc, ctx, optype, request)))
            except ServerCrash:  # not a KeeperException: the whole multi fails, no results
                sc.discard_writes()
                raise
            except OpError as e:
                sc.discard_writes()
                return self._failed(i, e.code)
        sc.needs_log = True
        return lambda base: MultiResponse(tuple(MultiResult(t, 0, b(base)) for t, b in builders))

    def refused(self) -> Builder:
        """The multi cannot be one etcd transaction (more operations or bytes than etcd takes
        in one): it fails as a multi whose first op failed, BadArguments, so that every client
        library sees a failed multi (a bare error in the reply header would make the C client
        abort, and an empty result list would pass there for success)."""
        return self._failed(0, Err.BAD_ARGUMENTS)

    def _failed(self, at: int, code: int) -> Builder:
        codes = [
            0 if j < at else code if j == at else Err.RUNTIME_INCONSISTENCY
            for j in range(len(self.ops))
        ]
        results = tuple(MultiResult(-1, c, ErrorResponse(c)) for c in codes)
        return lambda base: MultiResponse(results)


# what end_session's write answers when the session had more ephemerals than one etcd
# transaction can delete: submit it again for the rest
MORE_EPHEMERALS = object()


def end_session(session_id: int, closing: bool, owner: str = "") -> Apply:
    """Delete a session's ephemerals, bumping each parent's cversion and pzxid.

    ``closing`` (closeSession, or an expiry): also delete the session record, unless the
    record names another connection than ``owner`` (SessionMoved). Otherwise (the lease
    expired) the record must still be gone at commit, so a clean-up can never touch a live
    session, and running it twice is harmless.

    When the transaction reaches etcd's limits (``Scratch.limits``) before every ephemeral is
    deleted, the write answers MORE_EPHEMERALS, and, closing, marks the record as closing
    (layout.CLOSING, which no resumption may claim): the caller submits it again with that
    owner until it answers something else: the lease of the record it deleted (an int), or
    None when there was none.
    """

    def apply(sc: Scratch) -> Builder:
        entry = sc.tree.sessions.get(session_id) if closing else None
        if entry is not None and entry.value.owner != L.CLOSING:  # else anyone finishes it
            _check_owner(entry, owner)
        more = False
        deleted = 0
        for path in sc.tree.ephemerals_in_java_order(session_id):  # ZooKeeper's deletion order
            st = sc.node(path)
            if st.exists:
                if deleted and sc.at_limit():
                    more = True
                    break
                sc.guard_data(st)
                sc.delete(st, sc.node(path[: path.rfind("/")] or "/"))
                deleted += 1
        sc.guard_session(session_id)
        if more:
            if entry is not None and entry.value.owner != L.CLOSING:
                key = sc.tree.layout.session(session_id)
                sc.txn.put(key, L.closing_value(entry.value), entry.lease)
            return _more_ephemerals
        if closing:
            sc.txn.delete(sc.tree.layout.session(session_id))
            if entry is not None:  # the lease it held, as the tree has it when guarded
                lease = entry.lease
                return lambda base: lease
        return _no_body

    return apply


def _no_body(base: int) -> None:
    return None


def _more_ephemerals(base: int) -> object:
    return MORE_EPHEMERALS

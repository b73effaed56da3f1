"""Requests answered from the mirror alone, without an etcd round trip.

Reads do not validate paths (ZooKeeper's FinalRequestProcessor does not either): a path no node
can have simply finds no node. A watch is armed in the same step as the read, so no change can
slip between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from zetcd.emulation import acls
from zetcd.emulation.acls import digest_id
from zetcd.emulation.javaorder import concurrent_set_order, java_string_hash
from zetcd.emulation.tree import Node
from zetcd.emulation.watches import STANDARD, WatchTable
from zetcd.proto.constants import AddWatchMode, Err, EventType, OpCode, Perm, WatcherType
from zetcd.proto.javautf8 import decode_code_points
from zetcd.proto.jute import constructor, java_string
from zetcd.proto.records import (
    ClientInfo,
    ErrorResponse,
    ExistsResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    MultiResponse,
    MultiResult,
    WhoAmIResponse,
)

if TYPE_CHECKING:
    from zetcd.emulation.backend import EtcdSession

Result = tuple[int, Any]


# plain ints: IntFlag arithmetic is slow on the read path
READ = int(Perm.READ)
ADMIN = int(Perm.ADMIN)
NO_NODE = int(Err.NO_NODE)
NO_AUTH = int(Err.NO_AUTH)

# records built on every read skip the frozen dataclasses' slow __init__
_GetDataResponse = constructor(GetDataResponse)
_ExistsResponse = constructor(ExistsResponse)
_GetChildrenResponse = constructor(GetChildrenResponse)
_GetChildren2Response = constructor(GetChildren2Response)


def _root_alias(path: str) -> str:
    """ZooKeeper's DataTree keeps the root under "" too (DataTree.getNode)."""
    return "/" if path == "" else path


def _node(s: EtcdSession, path: str | None, perm: int) -> tuple[int, Node | None]:
    """Look a node up for a read ("" is the root), with checkACL(node, perm). A null path
    throws in ZooKeeper's lookup (a ConcurrentHashMap refuses null keys): MarshallingError."""
    if path is None:
        return Err.MARSHALLING_ERROR, None
    node = s.mirror.tree.nodes.get(_root_alias(path))
    if node is None:
        return NO_NODE, None
    if perm and not acls.allowed(node.acl, perm, s.auth_ids):
        return NO_AUTH, None
    return 0, node


def _exists(s: EtcdSession, req: Any) -> Result:
    path = req.path
    if path is None:
        return Err.MARSHALLING_ERROR, None
    if "\0" in path:
        return Err.BAD_ARGUMENTS, None
    if req.watch:
        s.mirror.watches.data.add(path, s)
    err, node = _node(s, path, 0)
    return (err, None) if node is None else (0, _ExistsResponse(node.stat()))


def _get_data(s: EtcdSession, req: Any) -> Result:
    err, node = _node(s, req.path, READ)
    if node is None:
        return err, None
    if req.watch:
        s.mirror.watches.data.add(req.path, s)
    return 0, _GetDataResponse(node.client_data, node.stat())


def _get_children(s: EtcdSession, req: Any) -> Result:
    err, node = _node(s, req.path, READ)
    if node is None:
        return err, None
    if req.watch:
        s.mirror.watches.child.add(req.path, s)
    return 0, _GetChildrenResponse(node.ordered_children())


def _get_children2(s: EtcdSession, req: Any) -> Result:
    err, node = _node(s, req.path, READ)
    if node is None:
        return err, None
    if req.watch:
        s.mirror.watches.child.add(req.path, s)
    return 0, _GetChildren2Response(node.ordered_children(), node.stat())


def _get_acl(s: EtcdSession, req: Any) -> Result:
    err, node = _node(s, req.path, READ | ADMIN)
    if node is None:
        return err, None
    acl = node.acl if acls.allowed(node.acl, ADMIN, s.auth_ids) else acls.masked(node.acl)
    return 0, GetACLResponse(acl, node.stat())


def _ping(s: EtcdSession, req: Any) -> Result:
    return 0, None


def auth_fails(s: EtcdSession, req: Any) -> bool:
    """Whether addAuth fails: a scheme without a provider, digest without data, x509 without
    the provider, a client certificate, or one still valid (ZooKeeper checks its trust again:
    one expired since the handshake fails)."""
    if req.scheme == "digest":
        return req.auth is None
    if req.scheme == "x509":
        cert = s.outbox.certificate
        return not (s.backend.options.x509 and cert is not None and cert.valid(time.time()))
    return bool(req.scheme != "ip")


def _auth(s: EtcdSession, req: Any) -> Result:
    """addAuth: digest adds ``user:hash``; ip adds the client's address; x509 (with its
    provider) adds the client certificate's id again, whatever the data; others fail."""
    if auth_fails(s, req):
        return Err.AUTH_FAILED, None
    if req.scheme == "x509":
        assert s.outbox.certificate is not None
        s.add_x509(s.outbox.certificate.x509_id)
        return 0, None
    if req.scheme == "digest":
        # new String(auth, UTF_8) (U+FFFD by Java's rules: javautf8.py), hashed as
        # getBytes(UTF_8), kept as a (UTF-16) Java string
        ident = ("digest", java_string(digest_id(decode_code_points(req.auth))))
    else:
        ident = ("ip", s.outbox.peer_host)
    s.add_auth(ident)
    if ident[0] == "digest" and ident[1] == s.backend.options.super_digest:
        s.add_auth(("super", ""))
    return 0, None


def _set_watches(s: EtcdSession, req: Any) -> Result:
    """Re-arm watches after a reconnect, firing at once what changed since relativeZxid
    (DataTree.setWatches). setWatches2 adds persistent and persistent-recursive watches."""
    rel = req.relativeZxid
    nodes = s.mirror.tree.nodes
    watches = s.mirror.watches
    # a watch set on "" itself is never triggered. A null list or path throws in ZooKeeper's
    # loop: MarshallingError, after what the entries before it did
    for path in _entries(req.dataWatches):
        if path is None:
            return Err.MARSHALLING_ERROR, None
        node = nodes.get(_root_alias(path))
        if node is None:
            s.notify(EventType.NODE_DELETED, path)
        elif node.mzxid > rel:
            s.notify(EventType.NODE_DATA_CHANGED, path)
        else:
            watches.data.add(path, s)
    for path in _entries(req.existWatches):
        if path is None:
            return Err.MARSHALLING_ERROR, None
        if _root_alias(path) in nodes:
            s.notify(EventType.NODE_CREATED, path)
        else:
            watches.data.add(path, s)
    for path in _entries(req.childWatches):
        if path is None:
            return Err.MARSHALLING_ERROR, None
        node = nodes.get(_root_alias(path))
        if node is None:
            s.notify(EventType.NODE_DELETED, path)
        elif node.pzxid > rel:
            s.notify(EventType.NODE_CHILDREN_CHANGED, path)
        else:
            watches.child.add(path, s)
    # setWatches (101) has no persistent lists: ZooKeeper passes empty ones
    for recursive, paths in (
        (False, getattr(req, "persistentWatches", ())),
        (True, getattr(req, "persistentRecursiveWatches", ())),
    ):
        if paths is None:
            return Err.MARSHALLING_ERROR, None
        for path in paths:
            if path is None:
                # added as addWatch adds it: the connection's first one is kept
                if not _null_path_watch(s, recursive):
                    return Err.MARSHALLING_ERROR, None
            else:
                watches.add_persistent(path, s, recursive=recursive)
    return 0, None


def _entries(paths: tuple[str | None, ...] | None) -> tuple[str | None, ...]:
    """A jute vector's entries; a null vector reads as one null entry."""
    return (None,) if paths is None else paths


def _tables(s: EtcdSession, kind: int) -> tuple[WatchTable, ...] | None:
    w = s.mirror.watches
    if kind == WatcherType.CHILDREN:
        return (w.child,)
    if kind == WatcherType.DATA:
        return (w.data,)
    if kind == WatcherType.ANY:
        return (w.child, w.data)
    return None  # WatcherType.fromInt in 3.8.0 knows 1-3 only: MarshallingError


def _check_watches(s: EtcdSession, req: Any) -> Result:
    """NoWatcher unless the path is watched; as in ZooKeeper 3.8.0 any session's watch counts.

    ZooKeeper walks the path with its PathParentIterator, which fails on a null path and on a
    path without a '/' (other than ""): MarshallingError. For "" it yields no path at all:
    NoWatcher, even with a watch on "" (which removeWatches does remove)."""
    tables = _tables(s, req.type)
    path = req.path
    if tables is None or path is None or (path and "/" not in path):
        return Err.MARSHALLING_ERROR, None
    if not path:
        return Err.NO_WATCHER, None
    # While the table of the type checked holds a recursive watch (each type counts its own:
    # removeWatches of one type, or a standard watch over a recursive one, leaves them apart;
    # one on a null path counts in both), ZooKeeper's walk goes on to the path's parents
    # unless a watch is on the path itself, and a relative path then reaches a name without
    # a '/': it throws (for both types, children are walked first, then data).
    watches = s.mirror.watches
    relative = not path.startswith("/")
    found = False
    for t in tables:
        if t.watched(path):
            found = True
        elif relative and (t.recursive or watches.null_recursive()):
            return Err.MARSHALLING_ERROR, None
    return (0, None) if found else (Err.NO_WATCHER, None)


def _remove_watches(s: EtcdSession, req: Any) -> Result:
    tables = _tables(s, req.type)
    if tables is None or (req.path is None and s in s.mirror.watches.null_paths):
        return Err.MARSHALLING_ERROR, None
    removed = [t.remove(req.path, s) for t in tables]
    return (0, None) if any(removed) else (Err.NO_WATCHER, None)


def _add_watch(s: EtcdSession, req: Any) -> Result:
    if req.mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
        return Err.MARSHALLING_ERROR, None
    recursive = req.mode == AddWatchMode.PERSISTENT_RECURSIVE
    if req.path is None:
        if not _null_path_watch(s, recursive):
            return Err.MARSHALLING_ERROR, None
        return 0, ErrorResponse(0)
    s.mirror.watches.add_persistent(req.path, s, recursive=recursive)
    return 0, ErrorResponse(0)


def _null_path_watch(s: EtcdSession, recursive: bool) -> bool:
    """A persistent watch on a null path (addWatch, setWatches2): ZooKeeper 3.8 keeps a
    connection's first one (no event can reach it) and throws on the next one, or on removing
    watches from a null path, after it: MarshallingError (False). It also throws when the
    connection has a persistent watch on a path whose String.hashCode() is 0 ("" among them):
    its table of watch modes compares the null-path key with that one, whose hash is the same.
    """
    null_paths = s.mirror.watches.null_paths
    if s in null_paths or _persistent_on_hash_zero(s):
        return False
    if not s.stale:  # a closing connection takes no more watches (WatchTable.add)
        null_paths[s] = recursive
    return True


def _persistent_on_hash_zero(s: EtcdSession) -> bool:
    """Has the session a persistent watch (recursive or not) on a path hashing to 0 in Java?"""
    table = s.mirror.watches.data
    return any(
        table.by_path.get(path, {}).get(s, STANDARD) != STANDARD and java_string_hash(path) == 0
        for path in table.by_watcher.get(s, ())
    )


_JAVA_TRIM = "".join(map(chr, range(33)))  # String.trim() strips every char <= ' '


def _get_ephemerals(s: EtcdSession, req: Any) -> Result:
    prefix = req.prefixPath
    mine = s.mirror.tree.ephemerals_in_java_order(s.session_id)
    # StringUtils.isBlank(prefix) || "/".equals(prefix.trim()): all of them (both by Java's
    # trim, which strips the control characters and keeps Unicode's other spaces)
    trimmed = None if prefix is None else prefix.strip(_JAVA_TRIM)
    everything = not trimmed or trimmed == "/"
    found = mine if everything else [p for p in mine if p.startswith(prefix)]
    return 0, GetEphemeralsResponse(tuple(found))


def _get_all_children_number(s: EtcdSession, req: Any) -> Result:
    err, node = _node(s, req.path, READ)
    if node is None:
        return err, None
    path = req.path
    nodes = s.mirror.tree.nodes  # the root's key is "/"
    # ZooKeeper's DataTree keeps the root under both "" and "/": for "/" it counts every node
    # but those two; for "" every key that starts with "/", the root's "/" alias included
    if path == "/":
        return 0, GetAllChildrenNumberResponse(len(nodes) - 1)
    if path == "":
        return 0, GetAllChildrenNumberResponse(len(nodes))
    prefix = path + "/"
    return 0, GetAllChildrenNumberResponse(sum(1 for p in nodes if p.startswith(prefix)))


def _who_am_i(s: EtcdSession, req: Any) -> Result:
    ids = concurrent_set_order(s.auth_ids)  # ZooKeeper's iteration order of the connection's ids
    # the digest provider names the user before the ':', the others their whole id; "super"
    # has no provider, so no user
    infos = [
        ClientInfo(
            scheme,
            ident.split(":", 1)[0] if scheme == "digest" else "" if scheme == "super" else ident,
        )
        for scheme, ident in ids
    ]
    return 0, WhoAmIResponse(tuple(infos))


_MULTI_READ = {OpCode.GET_DATA: _get_data, OpCode.GET_CHILDREN: _get_children}


def _multi_read(s: EtcdSession, req: Any) -> Result:
    if any(op.type not in _MULTI_READ for op in req.ops):
        # ZooKeeper fails the whole request, still writing the (empty) result list
        return Err.MARSHALLING_ERROR, MultiResponse(())
    results: list[MultiResult] = []
    for op in req.ops:
        # ZooKeeper runs each op as Op.getData(path) / Op.getChildren(path): never a watch
        err, resp = _MULTI_READ[op.type](s, replace(op.request, watch=False))
        if err == Err.MARSHALLING_ERROR:  # a null path throws: the results so far, then -5
            return err, MultiResponse(tuple(results))
        results.append(
            MultiResult(op.type, 0, resp) if err == 0 else MultiResult(-1, err, ErrorResponse(err))
        )
    return 0, MultiResponse(tuple(results))


READS: dict[int, Callable[[EtcdSession, Any], Result]] = {
    OpCode.EXISTS: _exists,
    OpCode.GET_DATA: _get_data,
    OpCode.GET_CHILDREN: _get_children,
    OpCode.GET_CHILDREN2: _get_children2,
    OpCode.GET_ACL: _get_acl,
    OpCode.PING: _ping,
    OpCode.AUTH: _auth,
    OpCode.SET_WATCHES: _set_watches,
    OpCode.SET_WATCHES2: _set_watches,
    OpCode.CHECK_WATCHES: _check_watches,
    OpCode.REMOVE_WATCHES: _remove_watches,
    OpCode.ADD_WATCH: _add_watch,
    OpCode.GET_EPHEMERALS: _get_ephemerals,
    OpCode.GET_ALL_CHILDREN_NUMBER: _get_all_children_number,
    OpCode.WHO_AM_I: _who_am_i,
    OpCode.MULTI_READ: _multi_read,
}

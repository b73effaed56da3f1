"""The opcode table: one row per opcode a client may send, driving decoding, encoding and
dispatch.

Each row names the request record the client sends after the RequestHeader and the
response record the server sends after a ReplyHeader whose err is 0 (``None``: no body).
Rows are checked against ``zookeeper.jute``, ``ZooKeeper.java``/``ClientCnxn.java`` (what
the client writes and reads) and ``FinalRequestProcessor.java``/``ZooKeeperServer.java``
(what the server reads and writes):

- ping (11), auth (100) and closeSession (-11) replies are a bare header; whoAmI (107)
  has no request body.
- addWatch (106) answers ``ErrorResponse(0)`` (FinalRequestProcessor: ``rsp = new
  ErrorResponse(0)``; ZooKeeper.addWatch reads an ErrorResponse), 4 bytes: a 3.8 server
  was recorded sending them (tests/golden/zkcli-2.json).
- check (13) alone: FinalRequestProcessor builds ``SetDataResponse(rc.stat)`` with a null
  stat (DataTree sets no stat for a check), which cannot serialize, so a 3.8 server never
  sends a body; no client library sends a standalone check. Response: none.
- reconfig (16) answers a GetDataResponse (the new config and the config node's stat).
- deleteContainer (20) is server-internal but a client can send it; its request record is
  the hand-written ``DeleteContainerRequest`` (a path).
- sasl (102): GetSASLRequest in, SetSASLResponse out (both one buffer ``token``).
- createSession (-10) sent inside an established session: PrepRequestProcessor reads one int
  (``CreateSessionTxn``; a shorter body is a MarshallingError, a longer one's rest is ignored)
  and the answer is the session's ConnectResponse again as a bare frame, without a reply
  header (``finishSessionInit``), so the table names no response record: the server writes
  a reply whose body is a ConnectResponse that way.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import records as r
from .constants import OpCode


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One opcode: its number, ZooKeeper's name for it, and its body records."""

    code: int
    name: str
    request: type[r.Record] | None
    response: type[r.Record] | None


def _table(*rows: OpSpec) -> dict[int, OpSpec]:
    return {row.code: row for row in rows}


OPS: dict[int, OpSpec] = _table(
    OpSpec(OpCode.CREATE, "create", r.CreateRequest, r.CreateResponse),
    OpSpec(OpCode.DELETE, "delete", r.DeleteRequest, None),
    OpSpec(OpCode.EXISTS, "exists", r.ExistsRequest, r.ExistsResponse),
    OpSpec(OpCode.GET_DATA, "getData", r.GetDataRequest, r.GetDataResponse),
    OpSpec(OpCode.SET_DATA, "setData", r.SetDataRequest, r.SetDataResponse),
    OpSpec(OpCode.GET_ACL, "getACL", r.GetACLRequest, r.GetACLResponse),
    OpSpec(OpCode.SET_ACL, "setACL", r.SetACLRequest, r.SetACLResponse),
    OpSpec(OpCode.GET_CHILDREN, "getChildren", r.GetChildrenRequest, r.GetChildrenResponse),
    OpSpec(OpCode.SYNC, "sync", r.SyncRequest, r.SyncResponse),
    OpSpec(OpCode.PING, "ping", None, None),
    OpSpec(OpCode.GET_CHILDREN2, "getChildren2", r.GetChildren2Request, r.GetChildren2Response),
    OpSpec(OpCode.CHECK, "check", r.CheckVersionRequest, None),
    OpSpec(OpCode.MULTI, "multi", r.MultiRequest, r.MultiResponse),
    OpSpec(OpCode.CREATE2, "create2", r.CreateRequest, r.Create2Response),
    OpSpec(OpCode.RECONFIG, "reconfig", r.ReconfigRequest, r.GetDataResponse),
    OpSpec(OpCode.CHECK_WATCHES, "checkWatches", r.CheckWatchesRequest, None),
    OpSpec(OpCode.REMOVE_WATCHES, "removeWatches", r.RemoveWatchesRequest, None),
    OpSpec(OpCode.CREATE_CONTAINER, "createContainer", r.CreateRequest, r.Create2Response),
    OpSpec(OpCode.DELETE_CONTAINER, "deleteContainer", r.DeleteContainerRequest, None),
    OpSpec(OpCode.CREATE_TTL, "createTTL", r.CreateTTLRequest, r.Create2Response),
    OpSpec(OpCode.MULTI_READ, "multiRead", r.MultiRequest, r.MultiResponse),
    OpSpec(OpCode.AUTH, "auth", r.AuthPacket, None),
    OpSpec(OpCode.SET_WATCHES, "setWatches", r.SetWatches, None),
    OpSpec(OpCode.SASL, "sasl", r.GetSASLRequest, r.SetSASLResponse),
    OpSpec(OpCode.GET_EPHEMERALS, "getEphemerals", r.GetEphemeralsRequest, r.GetEphemeralsResponse),
    OpSpec(
        OpCode.GET_ALL_CHILDREN_NUMBER,
        "getAllChildrenNumber",
        r.GetAllChildrenNumberRequest,
        r.GetAllChildrenNumberResponse,
    ),
    OpSpec(OpCode.SET_WATCHES2, "setWatches2", r.SetWatches2, None),
    OpSpec(OpCode.ADD_WATCH, "addWatch", r.AddWatchRequest, r.ErrorResponse),
    OpSpec(OpCode.WHO_AM_I, "whoAmI", None, r.WhoAmIResponse),
    OpSpec(OpCode.CREATE_SESSION, "createSession", r.CreateSessionTxn, None),
    OpSpec(OpCode.CLOSE_SESSION, "closeSession", None, None),
)

# --- multi ------------------------------------------------------------------------------
# MultiOperationRecord.deserialize: the op types a multi/multiRead body may carry, with
# their request records. All ops of one body must be of one kind (read or write), else
# ZooKeeper fails the whole record ("Mixing different kind of ops"). Which kind suits
# which opcode (write ops for multi 14, read ops for multiRead 22) is the server's
# semantic check, not the codec's (3.8's FinalRequestProcessor answers a multiRead that
# carries write ops with MarshallingError; the connection stays open).
MULTI_OP_REQUESTS: dict[int, type[r.Record]] = {
    OpCode.CREATE: r.CreateRequest,
    OpCode.CREATE2: r.CreateRequest,
    OpCode.CREATE_CONTAINER: r.CreateRequest,
    OpCode.CREATE_TTL: r.CreateTTLRequest,
    OpCode.DELETE: r.DeleteRequest,
    OpCode.SET_DATA: r.SetDataRequest,
    OpCode.CHECK: r.CheckVersionRequest,
    OpCode.GET_CHILDREN: r.GetChildrenRequest,
    OpCode.GET_DATA: r.GetDataRequest,
}
MULTI_READ_OPS: frozenset[int] = frozenset({OpCode.GET_CHILDREN, OpCode.GET_DATA})

# The requests ZooKeeper makes one txn of (a failed one an error txn): every write but multi,
# whose failure is a txn of its own kind.
TXN_OPS: frozenset[int] = frozenset(
    {
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.DELETE_CONTAINER,
        OpCode.SET_DATA,
        OpCode.SET_ACL,
        OpCode.CHECK,
        OpCode.RECONFIG,
    }
)

# MultiResponse.serialize/deserialize: the result types and the record each carries.
# createTTL/createContainer results are written as create2 (CreateResult(path, stat)),
# deleteContainer results as delete.
MULTI_RESULT_RESPONSES: dict[int, type[r.Record] | None] = {
    OpCode.CREATE: r.CreateResponse,
    OpCode.CREATE2: r.Create2Response,
    OpCode.DELETE: None,
    OpCode.SET_DATA: r.SetDataResponse,
    OpCode.CHECK: None,
    OpCode.GET_CHILDREN: r.GetChildrenResponse,
    OpCode.GET_DATA: r.GetDataResponse,
    OpCode.ERROR: r.ErrorResponse,
}

"""zetcd's own thin async etcd v3 client for trio: the only code in zetcd that touches gRPC.

See ``client.py`` for behaviour (failover, timeouts, cancellation) and ``watch.py`` for watches.
"""

from ._conn import endpoints_tls, parse_endpoints
from .client import EtcdClient
from .errors import CompactedError, EtcdError, EtcdUnavailable
from .requests import (
    compare_create,
    compare_mod,
    compare_value,
    compare_version,
    encode_guarded_txn,
    encode_txn,
    op_delete,
    op_put,
    op_range,
    prefix_end,
)
from .tls import client_context
from .watch import Watch, WatchBatch

__all__ = [
    "CompactedError",
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "Watch",
    "WatchBatch",
    "client_context",
    "compare_create",
    "compare_mod",
    "compare_value",
    "compare_version",
    "encode_guarded_txn",
    "encode_txn",
    "endpoints_tls",
    "op_delete",
    "op_put",
    "op_range",
    "parse_endpoints",
    "prefix_end",
]

"""Four-letter words answered on the client port, in ZooKeeper 3.8's formats.

As on ZooKeeper 3.8: a word it does not know closes the connection with no output; a known word
that is not in the whitelist (``--4lw-whitelist``, default ``srvr`` like ZooKeeper's
``4lw.commands.whitelist``) gets "<word> is not executed because it is not in the whitelist.".
Words zetcd answers: ruok isro srvr stat cons crst srst conf envi mntr wchs wchc wchp dump
dirs gtmk stmk. The others ZooKeeper knows (``hash``, ...) close the connection, as an unknown word.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from zetcd import __version__
from zetcd.expiry import Expiries
from zetcd.proto.constants import FOUR_LETTER_WORDS
from zetcd.proto.jute import java_utf8
from zetcd.stats import ServerStats

ZK_VERSION = "3.8.0"
FULL_VERSION = f"{ZK_VERSION}-zetcd-{__version__}, built on 2026-11-25 00:00 UTC"
_STARTED = time.monotonic()
DEFAULT_TRACE_MASK = 306  # ZooTrace's default text trace level


@dataclass
class ServerView:
    """What the words read; the runner fills it with live accessors."""

    stats: ServerStats = field(default_factory=ServerStats)
    connections: Callable[[], Iterable[Any]] = lambda: ()
    zxid: Callable[[], int] = lambda: 0
    node_count: Callable[[], int] = lambda: 1
    data_size: Callable[[], int] = lambda: 0  # ZooKeeper's approximate data size
    watch_count: Callable[[], int] = lambda: 0  # in the data and child tables
    ephemerals: Callable[[], dict[int, dict[str, None]]] = dict
    sessions: Callable[[], Iterable[int]] = lambda: ()
    # dump's: each session's ephemerals (see Tree.ephemeral_sets), the expiry queues
    ephemeral_sets: Callable[[], list[tuple[int, list[str]]]] = list
    expiry: Expiries | None = None
    # wchs's counts (connections, paths, watches); wchc's and wchp's listings, in
    # ZooKeeper's order: watcher -> paths, (path, watchers)
    watch_summary: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
    data_watches: Callable[[], dict[Any, list[str]]] = dict
    watched_paths: Callable[[], list[tuple[str, list[Any]]]] = list
    config: dict[str, Any] = field(default_factory=dict)


def _session_label(sid: Any, live: set[int]) -> str | None:
    return f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}" if sid in live else None


def _connection_label(conn: Any) -> str | None:
    if conn.gone:
        return None
    sid = conn.session.session_id if conn.session is not None else 0
    return f"ip: /{conn.peer} sessionId: 0x{sid & 0xFFFFFFFFFFFFFFFF:x}"


def _open_files() -> int:
    """The process's open file descriptors, as the JVM counts its own (/proc/self/fd)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir held
    except OSError:
        return -1


def _java_double(x: float) -> str:
    r = round(x, 4)
    return repr(float(r))


class FourLetterWords:
    def __init__(self, view: ServerView | None = None, whitelist: frozenset[str] | None = None):
        self.view = view or ServerView()
        self.whitelist = whitelist  # None: all
        # ZooTrace's text trace level: gtmk reads it, stmk sets it; 306 at start (client
        # requests, pings, sessions and the like), printed without a newline
        self.trace_mask = DEFAULT_TRACE_MASK

    def answer(self, word: str, conn: Any = None) -> bytes | None:
        if word not in FOUR_LETTER_WORDS:
            return None
        if self.whitelist is not None and word not in self.whitelist:
            return f"{word} is not executed because it is not in the whitelist.\n".encode()
        fn = getattr(self, "_" + word, None)
        if fn is None:
            return None
        text: str | None = fn(conn)
        if text is None:  # no answer: the connection just closes
            return None
        return java_utf8(text)  # watched paths are Java strings (surrogate pairs)

    # ------------------------------------------------------------------ helpers
    def _latency(self) -> str:
        lat = self.view.stats.latency
        return f"Latency min/avg/max: {round(lat.low)}/{_java_double(lat.avg)}/{round(lat.high)}"

    def _outstanding(self) -> int:
        """Requests read and not yet answered, ZooKeeper's requests in process (those of a
        connection already closed included, and new sessions' creations)."""
        return sum(len(c.pending) + c.creating_session for c in self.view.connections())

    def _conns(self, me: Any) -> list[Any]:
        # a connection on its way out is not counted (`Connection.gone`)
        others = [c for c in self.view.connections() if c is not me and not c.gone]
        return others + ([me] if me else [])

    @staticmethod
    def _client_line(c: Any, full: bool, me: Any) -> str:
        st = c.stats
        session = getattr(c, "session", None)
        # the selection key's interest ops: OP_READ (1) while the server reads the connection;
        # 0 for the one answering this word and for one it stopped reading for now
        reading = c is not me and not getattr(c, "reading_paused", False)
        head = (
            f" /{c.peer}[{1 if reading else 0}](queued={c.queued},recved={st.received},"
            f"sent={st.sent}"
        )
        if not full or session is None:
            return head + ")"
        lat = st.latency
        # a negative last cxid (after crst) is left out, as ServerCnxn.dumpConnectionInfo does
        lcxid = f"lcxid=0x{st.last_cxid:x}," if st.last_cxid >= 0 else ""
        return (
            f"{head},sid=0x{session.session_id & 0xFFFFFFFFFFFFFFFF:x},lop={st.last_op},"
            f"est={st.established},to={getattr(session, 'timeout', 0)},"
            f"{lcxid}lzxid=0x{st.last_zxid & 0xFFFFFFFFFFFFFFFF:x},"
            f"lresp={st.last_response},llat={round(st.last_latency)},minlat={st.min_latency},"
            f"avglat={round(lat.avg)},maxlat={round(lat.high)})"
        )

    # ------------------------------------------------------------------ the words
    def _ruok(self, conn: Any) -> str:
        return "imok"

    def _isro(self, conn: Any) -> str:
        return "rw"

    def _srvr(self, conn: Any) -> str:
        v, s = self.view, self.view.stats
        return (
            f"Zookeeper version: {FULL_VERSION}\n"
            f"{self._latency()}\n"
            f"Received: {s.received}\n"
            f"Sent: {s.sent}\n"
            f"Connections: {len(self._conns(conn))}\n"
            f"Outstanding: {self._outstanding()}\n"
            f"Zxid: 0x{v.zxid():x}\n"
            "Mode: standalone\n"
            f"Node count: {v.node_count() + 1}\n"  # ZooKeeper counts the root twice
        )

    def _stat(self, conn: Any) -> str:
        head, _, rest = self._srvr(conn).partition("\n")
        clients = "".join(self._client_line(c, False, conn) + "\n" for c in self._conns(conn))
        return f"{head}\nClients:\n{clients}\n{rest}"

    def _cons(self, conn: Any) -> str:
        return "".join(self._client_line(c, True, conn) + "\n" for c in self._conns(conn)) + "\n"

    def _crst(self, conn: Any) -> str:
        for c in self.view.connections():
            c.stats.reset()
        return "Connection stats reset.\n"

    def _srst(self, conn: Any) -> str:
        self.view.stats.reset()
        return "Server stats reset.\n"

    def _conf(self, conn: Any) -> str:
        cfg = self.view.config
        keys = (
            "clientPort", "secureClientPort", "dataDir", "dataDirSize", "dataLogDir",
            "dataLogSize", "tickTime", "maxClientCnxns", "minSessionTimeout",
            "maxSessionTimeout", "clientPortListenBacklog", "serverId",
        )  # fmt: skip
        return "".join(f"{k}={cfg[k]}\n" for k in keys if k in cfg)

    def _envi(self, conn: Any) -> str:
        rows = [
            ("zookeeper.version", FULL_VERSION),
            ("host.name", socket.gethostname()),
            ("python.version", platform.python_version()),
            ("python.implementation", platform.python_implementation()),
            ("python.executable", sys.executable),
            ("os.name", platform.system()),
            ("os.arch", platform.machine()),
            ("os.version", platform.release()),
            ("user.dir", os.getcwd()),
        ]
        return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in rows)

    def _mntr(self, conn: Any) -> str:
        """The keys ZooKeeper 3.4's mntr had (3.8 adds hundreds of metrics of its own), in the
        order a fresh 3.8.0 lists them."""
        v, s = self.view, self.view.stats
        rows: list[tuple[str, object]] = [
            ("zk_version", FULL_VERSION),
            ("zk_server_state", "standalone"),
            ("zk_ephemerals_count", sum(len(p) for p in v.ephemerals().values())),
            ("zk_num_alive_connections", len(self._conns(conn))),
            ("zk_avg_latency", _java_double(s.latency.avg)),
            ("zk_outstanding_requests", self._outstanding()),
            ("zk_znode_count", v.node_count() + 1),
            ("zk_global_sessions", len(list(v.sessions()))),
            ("zk_packets_sent", s.sent),
            ("zk_packets_received", s.received),
            ("zk_watch_count", v.watch_count()),
            ("zk_min_latency", round(s.latency.low)),
            ("zk_max_file_descriptor_count", resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
            ("zk_approximate_data_size", v.data_size()),
            ("zk_open_file_descriptor_count", _open_files()),
            ("zk_uptime", int((time.monotonic() - _STARTED) * 1000)),
            ("zk_max_latency", round(s.latency.high)),
        ]
        return "".join(f"{k}\t{val}\n" for k, val in rows)

    def _wchs(self, conn: Any) -> str:
        watchers, paths, total = self.view.watch_summary()
        return f"{watchers} connections watching {paths} paths\nTotal watches:{total}\n"

    def _wchc(self, conn: Any) -> str:
        out = []
        for w, paths in self.view.data_watches().items():
            out.append(f"0x{w.session_id & 0xFFFFFFFFFFFFFFFF:x}\n")
            out.extend(f"\t{p}\n" for p in paths)
        return "".join(out) + "\n"

    def _wchp(self, conn: Any) -> str:
        out = []
        for p, watchers in self.view.watched_paths():
            out.append(f"{p}\n")
            out.extend(f"\t0x{w.session_id & 0xFFFFFFFFFFFFFFFF:x}\n" for w in watchers)
        return "".join(out) + "\n"

    def _dump(self, conn: Any) -> str:
        """A standalone ZooKeeper 3.8's dump: its session expiry queue, the ephemerals by
        session, and (its NIO connection factory only) its connection expiry queue."""
        v = self.view
        out = ["SessionTracker dump:\n"]
        if v.expiry is not None:
            live = set(v.sessions())
            out.append(v.expiry.sessions.dump("Session", lambda sid: _session_label(sid, live)))
        sets = v.ephemeral_sets()
        out.append(f"ephemeral nodes dump:\nSessions with Ephemerals ({len(sets)}):\n")
        for sid, paths in sets:
            out.append(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}:\n")
            out.extend(f"\t{p}\n" for p in paths)
        out.append("Connections dump:\n")
        if v.expiry is not None and v.expiry.connections is not None:
            out.append(v.expiry.connections.dump("Connections", _connection_label))
        return "".join(out)

    def _dirs(self, conn: Any) -> str:
        return "datadir_size: 0\nlogdir_size: 0\n"

    def _gtmk(self, conn: Any) -> str:
        return str(self.trace_mask)

    def _stmk(self, conn: Any) -> str | None:
        """Sets the level to the mask that came with the word; without one (fewer than 8
        bytes came with it) ZooKeeper's read of it throws: no answer, the level unchanged."""
        mask = getattr(conn, "trace_mask", None)
        if mask is None:
            return None
        self.trace_mask = mask
        return str(self.trace_mask)

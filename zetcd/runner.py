"""Start-up and shutdown of a zetcd process: etcd (embedded or given), backend, server."""

from __future__ import annotations

import dataclasses
import gc
import logging
import signal
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from prometheus_client import Gauge

from zetcd import client_tls
from zetcd.embedded import MAX_REQUEST_BYTES as embedded_max_request_bytes
from zetcd.embedded import MAX_TXN_OPS as embedded_max_txn_ops
from zetcd.embedded import EmbeddedEtcd, EmbeddedEtcdError, default_data_dir, describe_exit
from zetcd.emulation.backend import EtcdBackend, Options
from zetcd.etcd import EtcdClient
from zetcd.expiry import Expiries
from zetcd.fourlw import FourLetterWords, ServerView
from zetcd.metrics import Metrics
from zetcd.server import (
    DEFAULT_MAX_CLIENT_CNXNS,
    SESSIONLESS_TIMEOUT,
    Connection,
    ServerConfig,
    serve,
)

if TYPE_CHECKING:
    from oracle.wiring import CrossCheckConfig

log = logging.getLogger("zetcd")


@dataclass
class RunConfig:
    host: str = "127.0.0.1"
    port: int = 2181
    endpoints: list[str] | None = None
    # TLS to the etcd cluster at ``endpoints`` (zetcd.etcd.client_context); None for https://
    # endpoints means the system's trusted CAs
    etcd_tls: ssl.SSLContext | None = None
    # (user, password) for an etcd cluster with authentication enabled
    etcd_auth: tuple[str, str] | None = field(default=None, repr=False)
    data_dir: Path | None = None
    etcd_binary: str | None = None
    options: Options = field(default_factory=Options)
    max_packet: int = 0xFFFFF
    # (host, port, context) to serve ZooKeeper clients over TLS on too (client_tls.py)
    secure: tuple[str, int, ssl.SSLContext] | None = field(default=None, repr=False)
    max_client_cnxns: int = DEFAULT_MAX_CLIENT_CNXNS
    four_letter_words: frozenset[str] | None = None
    metrics_addr: tuple[str, int] | None = None
    # cross-check mode (--debug-zkbridge): requests also go to a real ZooKeeper and are compared
    crosscheck: CrossCheckConfig | None = None
    # the process is zetcd's own (the command line): tune the garbage collector for it
    own_process: bool = False


# The cyclic garbage collector, tuned for a server whose heap is mostly its mirror: the mirror
# loaded at start-up is frozen (never scanned again), and a collection of the young generation
# waits for 20,000 new container objects instead of 700. Measured with bench/: 3-5% less CPU per
# write, and a write's p99 at 16 sessions x 8 nearly halved (full collections stall the loop).
GC_THRESHOLDS = (20000, 20, 20)


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _metrics(backend: EtcdBackend, client: EtcdClient, connections: set[Connection]) -> Metrics:
    metrics = Metrics()
    mirror = backend.mirror
    client.observer = metrics.observe_etcd
    backend.batcher.on_mirror_lag = metrics.mirror_lag.observe
    backend.batcher.on_batch = metrics.batch.observe
    metrics.gauge("zetcd_connections", "Open client connections", lambda: len(connections))
    metrics.gauge("zetcd_sessions", "Sessions attached to this zetcd", lambda: len(backend.local))
    metrics.gauge("zetcd_znodes", "Znodes in the mirror", lambda: len(mirror.tree.nodes))
    metrics.gauge(
        "zetcd_mirror_revision", "etcd revision the mirror has applied", lambda: mirror.revision
    )
    metrics.gauge("zetcd_last_zxid", "Last zxid", lambda: mirror.last_zxid)
    g = Gauge("zetcd_watches", "Watches by table", ["table"], registry=metrics.registry)
    g.labels("data").set_function(lambda: len(mirror.watches.data))
    g.labels("child").set_function(lambda: len(mirror.watches.child))
    return metrics


def _conf_view(config: RunConfig) -> dict[str, object]:
    """What ``conf`` reports, in ZooKeeper's key names."""
    limits = config.options.limits
    data_dir = str(config.data_dir or "") if config.endpoints is None else ""
    return {
        "clientPort": config.port,
        "secureClientPort": config.secure[1] if config.secure else -1,
        "dataDir": data_dir,
        "dataDirSize": 0,
        "dataLogDir": data_dir,
        "dataLogSize": 0,
        "tickTime": limits.tick_time,
        "maxClientCnxns": config.max_client_cnxns,
        "minSessionTimeout": limits.min_timeout or 2 * limits.tick_time,
        "maxSessionTimeout": limits.max_timeout or 20 * limits.tick_time,
        "clientPortListenBacklog": -1,
        "serverId": 0,
    }


class _Stop:
    """What ends :func:`run`: a signal, or the embedded etcd's exit (``error``). Before zetcd
    serves, stopping cancels the start-up (``scope``); after, it wakes the orderly shutdown
    (``requested``)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.requested = trio.Event()
        self.serving = False
        self.error: EmbeddedEtcdError | None = None

    def __call__(self, error: EmbeddedEtcdError | None = None) -> None:
        if self.requested.is_set():
            return
        self.error = error
        self.requested.set()
        if not self.serving:
            self.scope.cancel()


async def _watch_signals(stop: _Stop, *, task_status: trio.TaskStatus[None]) -> None:
    """The first SIGINT or SIGTERM stops zetcd; a second one, during a slow stop, gets the
    default action (SIGINT: KeyboardInterrupt; SIGTERM: death, and the kernel then stops the
    embedded etcd)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            log.info("signal %d: shutting down", signum)
            stop()
            return


async def _watch_etcd(embedded: EmbeddedEtcd, stop: _Stop) -> None:
    """An embedded etcd that exits while zetcd runs stops zetcd, with an error."""
    status = await embedded.exited()
    message = f"embedded etcd {describe_exit(status)}; see {embedded.log_path}"
    log.error("%s", message)
    stop(EmbeddedEtcdError(message))


async def run(
    config: RunConfig, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> int:
    """Run until SIGINT/SIGTERM (or cancellation); reports the bound port via task_status.
    Returns how many divergences cross-check mode recorded (0 outside it).

    A signal while zetcd is still starting (waiting for its etcd, loading the tree) is an
    ordinary stop too: what has started is stopped, the embedded etcd included, and run
    returns normally (the command exits 0), as a service manager expects of a stop. If the
    embedded etcd exits while zetcd runs, zetcd closes its client connections and raises
    :class:`EmbeddedEtcdError` (the command exits 2, so that a supervisor restarts it).
    Exceptions leave run as themselves, never wrapped in a group by its own nursery."""
    stop = _Stop()
    divergences = 0
    failure: Exception | None = None
    async with trio.open_nursery() as watchers:
        try:
            await watchers.start(_watch_signals, stop)
            with stop.scope:
                divergences = await _run(config, stop, watchers, task_status)
        except Exception as e:  # raised below, outside the nursery, so not in a group
            failure = e
        watchers.cancel_scope.cancel()
    if stop.error is not None:
        raise stop.error from failure
    if failure is not None:
        raise failure
    return divergences


async def _run(
    config: RunConfig, stop: _Stop, watchers: trio.Nursery, task_status: trio.TaskStatus[int]
) -> int:
    async with AsyncExitStack() as stack:
        endpoints = config.endpoints
        options = config.options
        if endpoints is None:
            options = dataclasses.replace(
                options,
                etcd_max_txn_ops=embedded_max_txn_ops,
                etcd_max_request_bytes=embedded_max_request_bytes,
            )
            data_dir = config.data_dir or default_data_dir()
            embedded = EmbeddedEtcd(data_dir, config.etcd_binary)
            endpoint = await stack.enter_async_context(embedded)
            log.info("started embedded etcd at %s (data dir %s)", endpoint, data_dir)
            watchers.start_soon(_watch_etcd, embedded, stop)
            endpoints = [endpoint]
        client = await EtcdClient.connect(endpoints, tls=config.etcd_tls, auth=config.etcd_auth)
        stack.push_async_callback(client.aclose)
        backend = EtcdBackend(client, options)
        connections: set[Connection] = set()
        mirror = backend.mirror
        # sessionless: a secure client port needs ZooKeeper's Netty connection factory, which
        # closes no connection for want of a ConnectRequest (client_tls.py) and keeps no
        # connection expiry queue
        sessionless = None if config.secure is not None else SESSIONLESS_TIMEOUT
        expiry = Expiries(
            config.options.limits.tick_time,
            None if sessionless is None else int(sessionless * 1000),
        )
        view = ServerView(
            connections=lambda: list(connections),
            zxid=lambda: mirror.last_zxid,
            node_count=lambda: len(mirror.tree.nodes),
            data_size=lambda: mirror.tree.data_size,
            watch_count=lambda: mirror.watches.count(),
            ephemerals=lambda: mirror.tree.ephemerals,
            ephemeral_sets=lambda: mirror.tree.ephemeral_sets(),
            expiry=expiry,
            sessions=lambda: mirror.tree.sessions.keys(),
            watch_summary=lambda: mirror.watches.data.summary(),
            data_watches=lambda: mirror.watches.data.listed_by_watcher(),
            watched_paths=lambda: mirror.watches.data.listed_by_path(),
            config=_conf_view(config),
        )
        server_config = ServerConfig(
            max_packet=config.max_packet,
            max_client_cnxns=config.max_client_cnxns,
            four_letter_words=FourLetterWords(view, config.four_letter_words),
            stats=view.stats,
            sessionless_timeout=sessionless,
            expiry=expiry,
        )
        if config.metrics_addr is not None:
            metrics = _metrics(backend, client, connections)
            server_config.observe = metrics.observe_request
            metrics.serve(*config.metrics_addr)
            log.info("serving metrics on http://%s:%d/metrics", *config.metrics_addr)

        # cross-check mode: clients are served by a CrossChecker composing this backend and
        # a bridge to a real ZooKeeper (oracle/)
        crosscheck = None
        if config.crosscheck is not None:
            from oracle.wiring import CrossCheck

            crosscheck = CrossCheck(backend, config.crosscheck)
        served = backend if crosscheck is None else crosscheck.checker
        divergences = 0

        async with trio.open_nursery() as nursery:
            await nursery.start(backend.run)
            if config.own_process:
                _tune_gc()
            if crosscheck is not None:
                await crosscheck.start(nursery)
            listeners = await nursery.start(
                lambda task_status: serve(
                    served, config.host, config.port, server_config, secure=config.secure,
                    task_status=task_status, connections=connections,
                )
            )  # fmt: skip
            port = listeners.plain[0].socket.getsockname()[1]
            log.info(
                "serving ZooKeeper clients on %s:%d (etcd %s)",
                config.host,
                port,
                ",".join(endpoints),
            )
            if config.secure is not None:
                log.info(
                    "serving ZooKeeper clients over TLS on %s:%d (client certificates: %s)",
                    config.secure[0],
                    listeners.secure[0].socket.getsockname()[1],
                    client_tls.client_auth(config.secure[2]),
                )
            task_status.started(port)
            stop.serving = True
            await stop.requested.wait()
            for conn in list(connections):
                conn.close()
            if crosscheck is not None:
                divergences = await crosscheck.finish()
            nursery.cancel_scope.cancel()
    return divergences

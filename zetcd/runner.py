"""Start-up and shutdown of a zetcd process: etcd (embedded or given), backend, server."""

from __future__ import annotations

import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import trio

from zetcd.embedded import EmbeddedEtcd, default_data_dir
from zetcd.emulation.backend import EtcdBackend, Options
from zetcd.etcd import EtcdClient
from zetcd.fourlw import FourLetterWords, ServerView
from zetcd.server import Connection, ServerConfig, serve

log = logging.getLogger("zetcd")


@dataclass
class RunConfig:
    host: str = "127.0.0.1"
    port: int = 2181
    endpoints: list[str] | None = None
    data_dir: Path | None = None
    etcd_binary: str | None = None
    options: Options = field(default_factory=Options)
    max_packet: int = 0xFFFFF
    four_letter_words: frozenset[str] | None = None


def _conf_view(config: RunConfig) -> dict[str, object]:
    """What ``conf`` reports, in ZooKeeper's key names."""
    limits = config.options.limits
    data_dir = str(config.data_dir or "") if config.endpoints is None else ""
    return {
        "clientPort": config.port,
        "secureClientPort": -1,
        "dataDir": data_dir,
        "dataDirSize": 0,
        "dataLogDir": data_dir,
        "dataLogSize": 0,
        "tickTime": limits.tick_time,
        "maxClientCnxns": 0,
        "minSessionTimeout": limits.min_timeout or 2 * limits.tick_time,
        "maxSessionTimeout": limits.max_timeout or 20 * limits.tick_time,
        "clientPortListenBacklog": -1,
        "serverId": 0,
    }


async def run(
    config: RunConfig, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run until SIGINT/SIGTERM (or cancellation); reports the bound port via task_status."""
    async with AsyncExitStack() as stack:
        endpoints = config.endpoints
        if endpoints is None:
            data_dir = config.data_dir or default_data_dir()
            embedded = EmbeddedEtcd(data_dir, config.etcd_binary)
            endpoint = await stack.enter_async_context(embedded)
            log.info("started embedded etcd at %s (data dir %s)", endpoint, data_dir)
            endpoints = [endpoint]
        client = await EtcdClient.connect(endpoints)
        stack.push_async_callback(client.aclose)
        backend = EtcdBackend(client, config.options)
        connections: set[Connection] = set()
        mirror = backend.mirror
        view = ServerView(
            connections=lambda: list(connections),
            zxid=lambda: mirror.last_zxid,
            node_count=lambda: len(mirror.tree.nodes),
            ephemerals=lambda: mirror.tree.ephemerals,
            sessions=lambda: mirror.tree.sessions.keys(),
            data_watches=lambda: {
                w: set(paths) for w, paths in mirror.watches.data.by_watcher.items()
            },
            config=_conf_view(config),
        )
        server_config = ServerConfig(
            max_packet=config.max_packet,
            four_letter_words=FourLetterWords(view, config.four_letter_words),
            stats=view.stats,
        )

        async with trio.open_nursery() as nursery:
            await nursery.start(backend.run)
            listeners = await nursery.start(
                lambda task_status: serve(
                    backend, config.host, config.port, server_config,
                    task_status=task_status, connections=connections,
                )
            )  # fmt: skip
            port = listeners[0].socket.getsockname()[1]
            log.info(
                "serving ZooKeeper clients on %s:%d (etcd %s)",
                config.host,
                port,
                ",".join(endpoints),
            )
            task_status.started(port)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("signal %d: shutting down", signum)
                    break
            for conn in list(connections):
                conn.close()
            nursery.cancel_scope.cancel()

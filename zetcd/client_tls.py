"""TLS for ZooKeeper clients: what ZooKeeper 3.8 serves on its secureClientPort.

Theory of operation: ``--secure-zkaddr`` opens a second set of listeners beside ``--zkaddr``;
each connection accepted there first completes a TLS handshake (in its own task, so a slow or
silent client never holds up the accept loop), then is served exactly as a plain one. Both kinds
share the per-address connection cap, the sessions and the tree: a session opened over TLS may
resume over the plain port and back, as on ZooKeeper.

What the context does, as ZooKeeper 3.8 with its defaults does (docs/zk-facts.md, section 11):
TLS 1.2 only (``ssl.protocol``), the server's certificate chain and key from PEM (ZooKeeper's
``ssl.keyStore.location`` with a PEM store holds both in one file; ``--zk-key`` may name the key
apart), a handshake that has not finished within HANDSHAKE_TIMEOUT closes the connection
(Netty's SslHandler), and a failed one sends its alert first. A ZooKeeper with a secure port
runs its Netty connection factory, which closes no connection for want of a ConnectRequest on
either port, and registers the x509 authentication provider (x509 ACL ids are then validated:
emulation/x500.py); the runner does the same (ServerConfig.sessionless_timeout, Options.x509).
Client certificates (``ssl.clientAuth`` want or need, and the x509 ids they give a session) are
not served yet: only ``none``.
"""

from __future__ import annotations

import contextlib
import logging
import ssl

import trio

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # s, Netty's SslHandler default, as ZooKeeper 3.8 uses it

# ssl.clientAuth values ZooKeeper knows; zetcd serves the last one only, for now
CLIENT_AUTH_MODES = ("need", "want", "none")
SERVED_CLIENT_AUTH = ("none",)


def server_context(cert: str, key: str | None = None) -> ssl.SSLContext:
    """The context of the secure port: TLS 1.2, this certificate chain and key, no client
    certificate asked for. Raises OSError (ssl.SSLError) or ValueError for files it cannot use."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert, key)
    return context


async def handshake(
    stream: trio.SocketStream, context: ssl.SSLContext, peer: str
) -> trio.SSLStream[trio.SocketStream] | None:
    """The connection (from ``peer``, for the log) as a TLS stream once its handshake is done;
    None, with the connection closed, if it failed (not TLS, a refused protocol version) or took
    HANDSHAKE_TIMEOUT."""
    tls = trio.SSLStream(stream, context, server_side=True)
    with trio.move_on_after(HANDSHAKE_TIMEOUT) as timer:
        try:
            await tls.do_handshake()
            return tls
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            log.info("closing %s: TLS handshake failed (%s)", peer, e.__cause__ or e)
            await _send_alert(tls, stream)
    if timer.cancelled_caught:
        log.info("closing %s: no TLS handshake within %.0f s", peer, HANDSHAKE_TIMEOUT)
    await trio.aclose_forcefully(stream)
    return None


async def _send_alert(tls: trio.SSLStream[trio.SocketStream], stream: trio.SocketStream) -> None:
    """Send the alert a failed handshake left behind (a refused protocol version, say), as
    ZooKeeper's server does, so the client learns why. trio's SSLStream does not send it when
    the handshake fails; it is in the stream's outgoing buffer (a trio internal: without it, the
    connection just closes)."""
    outgoing = getattr(tls, "_outgoing", None)
    alert = outgoing.read() if outgoing is not None else b""
    if alert:
        broken = (trio.BrokenResourceError, trio.ClosedResourceError)
        with trio.move_on_after(1.0), contextlib.suppress(*broken):
            await stream.send_all(alert)

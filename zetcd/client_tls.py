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

Client certificates, as ZooKeeper's ``ssl.clientAuth``: ``need`` (its default) refuses a client
without one, ``want`` asks for one and serves a client without, ``none`` asks for none. A
certificate must chain to a certificate of ``--zk-cacert`` (ZooKeeper's
``ssl.trustStore.location``, without which ZooKeeper's x509 provider refuses every client
certificate, so zetcd requires it for ``need`` and ``want``) and, if it has an extended key
usage, allow clientAuth; the client's hostname is never checked against it (nor is it by ZooKeeper 3.8). A
client with a certificate is authenticated in scheme ``x509`` as its subject, in Java's form
(client_certs.py), from the handshake on. A refused certificate gets the alert ZooKeeper's Java
sends: OpenSSL's own alert is rewritten (_java_alert), which it can be, as the handshake's
alerts travel in clear over TLS 1.2 (the only version served).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

import trio

from zetcd.backend import ClientCertificate
from zetcd.client_certs import BadCertificate, client_id
from zetcd.etcd.tls import no_passphrase

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # s, Netty's SslHandler default, as ZooKeeper 3.8 uses it

# ssl.clientAuth values ZooKeeper knows, and what each asks OpenSSL for
CLIENT_AUTH_MODES = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}

# TLS alert descriptions (RFC 5246, 7.2)
BAD_CERTIFICATE = 42
CERTIFICATE_UNKNOWN = 46
# The alert Java sends where OpenSSL sends another: no certificate under ``need`` (OpenSSL:
# handshake_failure) is a bad certificate, and any certificate the trust manager refuses (an
# unknown CA, an expired one, an extended key usage without clientAuth; OpenSSL names each) is
# certificate_unknown (docs/zk-facts.md, section 11).
_NO_CERTIFICATE = "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def client_auth(context: ssl.SSLContext) -> str:
    """The ssl.clientAuth mode a context of :func:`server_context` serves."""
    return next(m for m, verify in CLIENT_AUTH_MODES.items() if verify == context.verify_mode)


def server_context(
    cert: str, key: str | None = None, client_auth: str = "none", cafile: str | None = None
) -> ssl.SSLContext:
    """The context of the secure port: TLS 1.2, this certificate chain and key; a client
    certificate asked for as ``client_auth`` says, trusted if it chains to a certificate of
    ``cafile`` (which ``need`` and ``want`` must have). Raises OSError (ssl.SSLError) or
    ValueError for files it cannot use."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = CLIENT_AUTH_MODES[client_auth]
    context.load_cert_chain(cert, key, password=no_passphrase)
    if client_auth != "none":
        if cafile is None:
            raise ValueError(f"ssl.clientAuth {client_auth} needs the CAs to trust")
        context.load_verify_locations(cafile)
        # as Java's trust manager, any certificate of the trust store is an anchor: a chain
        # may end at an intermediate CA there, not only at a self-signed root
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


async def handshake(
    stream: trio.SocketStream, context: ssl.SSLContext, peer: str
) -> tuple[trio.SSLStream[trio.SocketStream], ClientCertificate | None] | None:
    """The connection (from ``peer``, for the log) as a TLS stream once its handshake is done,
    with the client's certificate (None: none); None, with the connection closed, if the
    handshake failed (not TLS, a refused protocol version or certificate) or took
    HANDSHAKE_TIMEOUT."""
    tls = trio.SSLStream(stream, context, server_side=True)
    with trio.move_on_after(HANDSHAKE_TIMEOUT) as timer:
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            cause = e.__cause__ or e
            log.info("closing %s: TLS handshake failed (%s)", peer, cause)
            await _send_alert(tls, stream, _java_alert(cause))
        else:
            cert = tls.getpeercert(binary_form=True)
            if cert is None:
                return tls, None
            try:
                return tls, _certificate(cert, tls.getpeercert())
            except BadCertificate as e:
                # Java refuses it while reading the handshake's Certificate message; here the
                # handshake is over, so the client finds the connection closed instead
                log.info("closing %s: a client certificate ZooKeeper refuses (%s)", peer, e)
            except Exception:  # a bug in reading it must cost this connection only
                log.exception("closing %s: cannot read its client certificate", peer)
    if timer.cancelled_caught:
        log.info("closing %s: no TLS handshake within %.0f s", peer, HANDSHAKE_TIMEOUT)
    await trio.aclose_forcefully(stream)
    return None


def _certificate(der: bytes, verified: dict[str, Any]) -> ClientCertificate:
    """The client certificate (DER) and its fields as OpenSSL verified them."""
    return ClientCertificate(
        client_id(der),
        ssl.cert_time_to_seconds(verified["notBefore"]),
        ssl.cert_time_to_seconds(verified["notAfter"]),
    )


def _java_alert(error: BaseException) -> int | None:
    """The alert description ZooKeeper's Java sends for a handshake that failed so, if it is
    not OpenSSL's; None to send OpenSSL's."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return CERTIFICATE_UNKNOWN
    if isinstance(error, ssl.SSLError) and error.reason == _NO_CERTIFICATE:
        return BAD_CERTIFICATE
    return None


async def _send_alert(
    tls: trio.SSLStream[trio.SocketStream], stream: trio.SocketStream, description: int | None
) -> None:
    """Send the alert a failed handshake left behind (a refused protocol version, say), as
    ZooKeeper's server does, so the client learns why; as ``description`` if given. trio's
    SSLStream does not send it when the handshake fails; it is in the stream's outgoing buffer
    (a trio internal: without it, the connection just closes)."""
    outgoing = getattr(tls, "_outgoing", None)
    alert = outgoing.read() if outgoing is not None else b""
    if description is not None:
        alert = _rewritten(alert, description)
    if alert:
        broken = (trio.BrokenResourceError, trio.ClosedResourceError)
        with trio.move_on_after(1.0), contextlib.suppress(*broken):
            await stream.send_all(alert)


def _rewritten(records: bytes, description: int) -> bytes:
    """``records`` with the description of its fatal alert set to ``description``, if they
    are one alert in clear (content type 21, a TLS 1.2 record of two bytes: level, then
    description), as a server's alert is before its ChangeCipherSpec; else as they are."""
    if len(records) == 7 and records[:5] == b"\x15\x03\x03\x00\x02" and records[5] == 2:
        return records[:6] + bytes((description,))
    return records

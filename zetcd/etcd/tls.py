"""TLS to etcd: the client's SSL context, and the handshake on a non-blocking socket.

etcd serves gRPC over TLS on its ``https://`` client URLs and, like every gRPC server, speaks
HTTP/2 there only when the client offers it by ALPN ("h2"). etcd checks client certificates when
it runs with ``--client-cert-auth``; the certificate's key usage must then allow client
authentication. The HTTP/2 client (``_http2.py``) reads and writes the wrapped socket as it does
a plain one: only the handshake needs its own loop.
"""

from __future__ import annotations

import socket
import ssl

import trio

__all__ = ["client_context", "handshake", "no_passphrase"]


def client_context(
    cacert: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A context that verifies etcd's certificate against ``cacert`` (a PEM bundle; None: the
    system's trusted CAs) and its host name, offers HTTP/2 by ALPN, and presents ``cert``
    (with ``key``, or a key inside ``cert``) when given. Raises OSError or ssl.SSLError for a
    file that cannot be read or used."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cacert)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # HTTP/2 forbids anything older
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(cert, key, password=no_passphrase)
    return context


def no_passphrase() -> str:
    """Asked for when the key is encrypted: refuse (else OpenSSL prompts on the terminal).
    Also the secure client port's (client_tls.py)."""
    raise ValueError("the private key is encrypted: zetcd needs it unencrypted")


async def handshake(sock: socket.socket, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
    """Wrap a connected non-blocking socket and complete the TLS handshake with ``host``
    (checked against the certificate). Raises ssl.SSLError (OSError) if it fails, or if the
    server will not speak HTTP/2."""
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(tls)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(tls)
        if tls.selected_alpn_protocol() != "h2":
            raise ssl.SSLError("the server did not agree to HTTP/2 (ALPN h2): not etcd's gRPC")
    except BaseException:
        tls.close()
        raise
    return tls

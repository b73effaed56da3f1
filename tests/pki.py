"""Client certificates for the TLS tests, issued with any subject by the CA of
:func:`tests.servers.write_zk_tls` (or by a CA of their own, which no server trusts)."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers import ZooKeeperTLS

CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)
SERVER_AUTH_ONLY = (ExtendedKeyUsageOID.SERVER_AUTH,)


@dataclass(frozen=True)
class ClientCert:
    cert: Path  # PEM
    key: Path  # PEM

    def context(self, tls: ZooKeeperTLS) -> ssl.SSLContext:
        """A client context presenting this certificate, trusting ``tls``'s CA, TLS 1.2."""
        context = tls.client_context()
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def name(
    *rdns: tuple[tuple[x509.ObjectIdentifier, str], ...] | tuple[x509.ObjectIdentifier, str],
) -> x509.Name:
    """An X.500 name from RDNs, most significant first: each an (oid, value) pair, or a tuple of
    pairs for a multi-valued RDN."""
    out = []
    for rdn in rdns:
        pairs = rdn if isinstance(rdn[0], tuple) else (rdn,)
        out.append(x509.RelativeDistinguishedName([x509.NameAttribute(o, v) for o, v in pairs]))
    return x509.Name(out)


def write_encrypted_key(pem: bytes, path: Path) -> Path:
    """The private key in ``pem`` written to ``path`` as encrypted PKCS#8 (pass phrase
    ``secret``), for the refusal of a key zetcd cannot use."""
    key = serialization.load_pem_private_key(pem, password=None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


def issue(
    tls: ZooKeeperTLS | None,
    path: Path,
    subject: x509.Name,
    *,
    eku: tuple[x509.ObjectIdentifier, ...] | None = CLIENT_AUTH,
    expired: bool = False,
    expires_in: float | None = None,
    san: str | None = None,
    san_critical: bool = False,
) -> ClientCert:
    """A client certificate for ``subject``, written to ``path``.pem and ``path``-key.pem,
    signed by ``tls``'s CA (None: by a new CA of its own); ``eku`` its extended key usages (None:
    no such extension), ``san`` a DNS name for a subjectAltName extension; valid for a day, or
    ``expires_in`` seconds, or expired yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    if tls is not None:
        assert tls.ca_key is not None
        ca_cert = x509.load_pem_x509_certificate(tls.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
        issuer = ca_cert.subject
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a CA nobody trusts")])
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + datetime.timedelta(days=1)
    if expires_in is not None:
        not_after = now + datetime.timedelta(seconds=expires_in)
    if expired:
        not_after = now - datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(not_after)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san)]), critical=san_critical
        )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    out = ClientCert(path.with_name(path.name + ".pem"), path.with_name(path.name + "-key.pem"))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out

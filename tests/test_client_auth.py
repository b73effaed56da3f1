"""ZooKeeper clients with certificates (--zk-client-auth need and want, --zk-cacert), side by
side with a real ZooKeeper 3.8 whose secure port has the same ssl.clientAuth and trusts the same
CA (tests/pki.py issues the client certificates): the handshake's refusals and their alerts, the
x509 id a certificate gives its session (whoAmI), x509 and auth ACLs, addauth x509. Nothing is
mocked. docs/zk-facts.md, section 11."""

from __future__ import annotations

import dataclasses
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.x509.oid import NameOID

from tests.pki import SERVER_AUTH_ONLY, ClientCert, issue, name
from tests.rawclient import Closed, RawClient
from tests.servers import (
    ZOOKEEPER_JARS,
    ZOOKEEPER_TLS_JARS,
    EtcdServer,
    ZooKeeperServer,
    ZooKeeperTLS,
    write_zk_tls,
)
from tests.zetcd_server import SecureZetcd
from zetcd.proto.constants import OpCode, Perm
from zetcd.proto.records import (
    ACL,
    AuthPacket,
    CreateRequest,
    GetACLRequest,
    GetDataRequest,
    Id,
)

CN, ORG, OU, UID, DC = (
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.USER_ID,
    NameOID.DOMAIN_COMPONENT,
)
ACME_ID = "CN=client1,OU=Eng,O=Acme Corp"
SUPERUSER = "CN=root"
SUPERUSER_PROPERTY = "zookeeper.X509AuthenticationProvider.superUser"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ZooKeeperTLS:
    return write_zk_tls(tmp_path_factory.mktemp("client-auth") / "pki")


@pytest.fixture(scope="module")
def certs(pki: ZooKeeperTLS, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClientCert]:
    d = tmp_path_factory.mktemp("client-certs")
    odd = name(
        (DC, "example"),
        (ORG, 'a,b+c="d"<e>;f\\g#h'),
        ((CN, "u"), (UID, "jdoe")),
        (NameOID.EMAIL_ADDRESS, "a@b.c"),
        (CN, "  x\u00e9\u4e2d  "),
    )
    return {
        "acme": issue(pki, d / "acme", name((ORG, "Acme Corp"), (OU, "Eng"), (CN, "client1"))),
        "other": issue(pki, d / "other", name((CN, "client2"))),
        "root": issue(pki, d / "root", name((CN, "root"))),
        "odd": issue(pki, d / "odd", odd),
        "no-eku": issue(pki, d / "no-eku", name((CN, "no eku")), eku=None),
        "empty-critical-san": issue(pki, d / "ecs", name(), san="c.example", san_critical=True),
        "empty-san": issue(pki, d / "es", name(), san="c.example"),
        "empty-no-san": issue(pki, d / "ens", name()),
        "foreign": issue(None, d / "foreign", name((CN, "client1"))),
        "server-only": issue(pki, d / "server-only", name((CN, "s")), eku=SERVER_AUTH_ONLY),
        "expired": issue(pki, d / "expired", name((CN, "old")), expired=True),
    }


def _servers(etcd: EtcdServer, pki: ZooKeeperTLS, mode: str) -> Iterator[list[tuple[str, Any]]]:
    """The two servers with ``mode`` as ssl.clientAuth, and CN=root as the x509 super user."""
    tls = dataclasses.replace(pki, client_auth=mode)
    superuser = f"-D{SUPERUSER_PROPERTY}={SUPERUSER}"
    with (
        ZooKeeperServer(tls=tls, jvm_opts=[superuser]) as zk,
        SecureZetcd(etcd.endpoint, tls, "--zk-x509-superuser", SUPERUSER) as z,
    ):
        yield [("zookeeper", zk), ("zetcd", z)]


@pytest.fixture(scope="module")
def need(etcd: EtcdServer, pki: ZooKeeperTLS) -> Iterator[list[tuple[str, Any]]]:
    yield from _servers(etcd, pki, "need")


@pytest.fixture(scope="module")
def want(etcd: EtcdServer, pki: ZooKeeperTLS) -> Iterator[list[tuple[str, Any]]]:
    yield from _servers(etcd, pki, "want")


def _context(pki: ZooKeeperTLS, cert: ClientCert | None) -> ssl.SSLContext:
    return cert.context(pki) if cert is not None else pki.client_context()


def _who_am_i(c: RawClient) -> list[tuple[str, str]]:
    r = c.call(OpCode.WHO_AM_I)
    assert r.header.err == 0
    body: Any = r.body
    return [(i.authScheme, i.user) for i in body.clientInfo]


def _outcome(server: Any, pki: ZooKeeperTLS, cert: ClientCert | None) -> Any:
    """What a client with ``cert`` (None: none) gets on the secure port: its whoAmI, or the
    alert that refused it, or "closed"."""
    try:
        with RawClient(server.secure_address, context=_context(pki, cert)) as c:
            c.connect()
            return _who_am_i(c)
    except ssl.SSLEOFError:  # closed without a close_notify
        return "closed"
    except ssl.SSLError as e:
        return e.reason
    except (Closed, OSError):
        return "closed"


def test_need_refuses_as_zookeeper_does(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    """No certificate: a bad_certificate alert; one of another CA, an expired one, one whose
    extended key usage has no clientAuth: certificate_unknown (OpenSSL's own alerts differ, and
    zetcd sends Java's). One without extended key usage is accepted."""
    cases = (None, "foreign", "expired", "server-only", "no-eku")
    results = {
        side: [_outcome(server, pki, certs[c] if c else None) for c in cases]
        for side, server in need
    }
    assert results["zetcd"] == results["zookeeper"]
    assert results["zetcd"][:4] == [
        "SSLV3_ALERT_BAD_CERTIFICATE",
        *["SSLV3_ALERT_CERTIFICATE_UNKNOWN"] * 3,
    ]
    assert sorted(results["zetcd"][4]) == [("ip", "127.0.0.1"), ("x509", "CN=no eku")]


def test_a_certificate_names_its_session_as_in_java(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    """whoAmI lists the ip and the x509 id, the subject in Java's RFC 2253 form (least
    significant RDN first, Java's escapes, other attributes as OID=#hex), in the order of
    ZooKeeper's hash set."""
    cases = ("acme", "odd", "empty-critical-san")
    results = {side: [_outcome(server, pki, certs[c]) for c in cases] for side, server in need}
    assert results["zetcd"] == results["zookeeper"]
    assert ("x509", ACME_ID) in results["zetcd"][0]
    assert ("x509", "") in results["zetcd"][2]


def test_an_empty_subject_needs_a_critical_subject_alt_name(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    """Java refuses a certificate with an empty subject and extensions but no critical
    subjectAltName in the handshake (bad_certificate); OpenSSL accepts it, so zetcd closes the
    connection right after the handshake instead (docs/differences.md)."""
    results = {
        side: [_outcome(server, pki, certs[c]) for c in ("empty-san", "empty-no-san")]
        for side, server in need
    }
    assert results == {"zookeeper": ["SSLV3_ALERT_BAD_CERTIFICATE"] * 2, "zetcd": ["closed"] * 2}


def _acl_story(server: Any, pki: ZooKeeperTLS, certs: dict[str, ClientCert]) -> list[Any]:
    """x509 and auth ACLs as seen by the certificate's owner, another certificate, a client
    on the plain port and the x509 super user, and addauth x509 with and without a
    certificate."""
    root = f"/x509-{time.monotonic_ns()}"
    acme, other, superuser = (
        RawClient(server.secure_address, context=certs[c].context(pki))
        for c in ("acme", "other", "root")
    )
    plain = RawClient(server.address)
    out: list[Any] = []
    try:
        for c in (acme, other, plain, superuser):
            c.connect()
        x509_acl = (ACL(Perm.ALL, Id("x509", ACME_ID)),)
        r = acme.call(OpCode.CREATE, CreateRequest(root, b"d", x509_acl, 0))
        out.append(("create x509 acl", r.header.err))
        for who, c in (("acme", acme), ("other", other), ("plain", plain), ("root", superuser)):
            r = c.call(OpCode.GET_DATA, GetDataRequest(root, False))
            out.append((f"get by {who}", r.header.err))
        auth_acl = (ACL(Perm.ALL, Id("auth", "")),)
        r = acme.call(OpCode.CREATE, CreateRequest(root + "-auth", b"", auth_acl, 0))
        out.append(("create auth acl", r.header.err))
        r = acme.call(OpCode.GET_ACL, GetACLRequest(root + "-auth"))
        body: Any = r.body
        out.append(("its acl", r.header.err, [(a.perms, a.id.scheme, a.id.id) for a in body.acl]))
        r = acme.call(OpCode.AUTH, AuthPacket(0, "x509", b"anything"))
        out.append(("addauth x509 with a certificate", r.header.err, _who_am_i(acme)))
        out.append(("root", sorted(_who_am_i(superuser))))
        r = superuser.call(OpCode.AUTH, AuthPacket(0, "x509", b""))
        out.append(("addauth x509 by root", r.header.err, sorted(_who_am_i(superuser))))
        r = plain.call(OpCode.AUTH, AuthPacket(0, "x509", b"anything"))
        out.append(("addauth x509 without", r.header.err, plain.is_closed()))
    finally:
        for c in (acme, other, plain, superuser):
            c.close()
    return out


def test_x509_and_auth_acls_and_addauth(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    results = {side: _acl_story(server, pki, certs) for side, server in need}
    assert results["zetcd"] == results["zookeeper"]
    assert [step[1] for step in results["zetcd"][:6]] == [0, 0, -102, -102, 0, 0]
    assert results["zetcd"][6] == ("its acl", 0, [(Perm.ALL, "x509", ACME_ID)])
    root_ids = [("ip", "127.0.0.1"), ("super", ""), ("x509", SUPERUSER)]
    assert results["zetcd"][8:10] == [("root", root_ids), ("addauth x509 by root", 0, root_ids)]
    assert results["zetcd"][10][1:] == (-115, True)


def _want_story(server: Any, pki: ZooKeeperTLS, certs: dict[str, ClientCert]) -> list[Any]:
    out: list[Any] = [_outcome(server, pki, None), _outcome(server, pki, certs["acme"])]
    out.append(_outcome(server, pki, certs["foreign"]))
    with RawClient(server.secure_address, context=pki.client_context()) as c:
        c.connect()
        acl = (ACL(Perm.ALL, Id("auth", "")),)
        r = c.call(OpCode.CREATE, CreateRequest(f"/want-{time.monotonic_ns()}", b"", acl, 0))
        out.append(("create auth acl", r.header.err))
        r = c.call(OpCode.AUTH, AuthPacket(0, "x509", b""))
        out.append(("addauth x509", r.header.err, c.is_closed()))
    return out


def test_want_serves_clients_without_a_certificate(
    want: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    """Without a certificate the session has only its ip id (auth ACLs are InvalidACL, addauth
    x509 fails and closes the connection); with one it has its x509 id; a foreign one is
    refused."""
    results = {side: _want_story(server, pki, certs) for side, server in want}
    assert results["zetcd"] == results["zookeeper"]
    assert results["zetcd"][0] == [("ip", "127.0.0.1")]
    assert sorted(results["zetcd"][1]) == [("ip", "127.0.0.1"), ("x509", ACME_ID)]
    assert results["zetcd"][2:4] == ["SSLV3_ALERT_CERTIFICATE_UNKNOWN", ("create auth acl", -114)]
    assert results["zetcd"][4] == ("addauth x509", -115, True)


def test_the_x509_id_belongs_to_the_connection(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    """A session opened with a certificate and resumed on the plain port has only its ip id
    there; resumed over TLS with another certificate, that certificate's id."""
    results = {}
    for side, server in need:
        with RawClient(server.secure_address, context=certs["acme"].context(pki)) as first:
            resp = first.connect()
            before = _who_am_i(first)
        ids = [before]
        for address, context in (
            (server.address, None),
            (server.secure_address, certs["other"].context(pki)),
        ):
            with RawClient(address, context=context) as c:
                c.connect(session_id=resp.sessionId, passwd=resp.passwd or b"")
                ids.append(_who_am_i(c))
        results[side] = ids
    assert results["zetcd"] == results["zookeeper"]
    assert results["zetcd"][1] == [("ip", "127.0.0.1")]
    assert ("x509", "CN=client2") in results["zetcd"][2]


def test_four_letter_words_need_a_certificate_too(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, certs: dict[str, ClientCert]
) -> None:
    results = {}
    for side, server in need:
        answers: list[Any] = []
        for cert in (certs["acme"], None):
            try:
                with RawClient(server.secure_address, context=_context(pki, cert)) as c:
                    c.send_raw(b"ruok")
                    answers.append(c.sock.recv(64))
            except ssl.SSLError as e:
                answers.append(e.reason)
        results[side] = answers
    assert results["zetcd"] == results["zookeeper"] == [b"imok", "SSLV3_ALERT_BAD_CERTIFICATE"]


def _trustme_cert(ca: trustme.CA, directory: Path, common_name: str, chain: bool) -> ClientCert:
    leaf = ca.issue_cert("client.example", common_name=common_name)
    out = ClientCert(directory / f"{common_name}.pem", directory / f"{common_name}-key.pem")
    pems = leaf.cert_chain_pems if chain else leaf.cert_chain_pems[:1]
    out.cert.write_bytes(b"".join(pem.bytes() for pem in pems))
    leaf.private_key_pem.write_to_path(str(out.key))
    return out


def test_a_trusted_intermediate_ca_is_an_anchor(
    etcd: EtcdServer, pki: ZooKeeperTLS, tmp_path: Path
) -> None:
    """With only an intermediate CA in the trust store (not its root), a certificate it issued
    is accepted, with its chain sent or not, as Java's trust manager takes any certificate of
    its store as an anchor; one the root issued is refused."""
    root = trustme.CA()
    intermediate = root.create_child_ca()
    trust = tmp_path / "intermediate.pem"
    intermediate.cert_pem.write_to_path(str(trust))
    certs = [
        _trustme_cert(intermediate, tmp_path, "chain", True),
        _trustme_cert(intermediate, tmp_path, "leaf", False),
        _trustme_cert(root, tmp_path, "root", True),
    ]
    tls = dataclasses.replace(pki, client_auth="need", truststore=trust)
    results = {}
    with ZooKeeperServer(tls=tls) as zk, SecureZetcd(etcd.endpoint, tls) as z:
        for side, server in (("zookeeper", zk), ("zetcd", z)):
            results[side] = [_outcome(server, pki, cert) for cert in certs]
    assert results["zetcd"] == results["zookeeper"]
    chain, leaf, by_root = results["zetcd"]
    assert any(s == "x509" and "CN=chain" in i for s, i in chain)
    assert any(s == "x509" and "CN=leaf" in i for s, i in leaf)
    assert by_root == "SSLV3_ALERT_CERTIFICATE_UNKNOWN"


def test_the_stock_java_client_with_a_certificate(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, tmp_path: Path
) -> None:
    """ZooKeeper's own Java client (ZooKeeperMain, its Netty socket, a PEM key store holding the
    client's key and certificate) writes, reads and asks whoami over TLS."""
    cert = issue(pki, tmp_path / "java", name((CN, "java client")))
    store = tmp_path / "java-store.pem"
    store.write_bytes(cert.key.read_bytes() + cert.cert.read_bytes())
    classpath = [*ZOOKEEPER_JARS, *ZOOKEEPER_TLS_JARS, "/usr/share/java/netty-resolver.jar"]
    outputs = {}
    for side, server in need:
        path = f"/java-tls-{time.monotonic_ns()}"
        script = f"create {path} hello\nget {path}\nwhoami\ndelete {path}\nquit\n"
        argv = [
            "java",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Dzookeeper.client.secure=true",
            "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
            f"-Dzookeeper.ssl.keyStore.location={store}",
            f"-Dzookeeper.ssl.trustStore.location={pki.ca}",
            "-cp",
            ":".join(classpath),
            "org.apache.zookeeper.ZooKeeperMain",
            "-waitforconnection",
            "-timeout",
            "30000",
            "-server",
            server.secure_address,
        ]
        proc = subprocess.run(argv, input=script.encode(), capture_output=True, timeout=90)
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace").replace(path, "PATH")
        outputs[side] = [
            line
            for line in out.splitlines()
            if line in ("hello", "Created PATH") or line.startswith(("x509:", "ip:", "Keeper"))
        ]
    assert outputs["zetcd"] == outputs["zookeeper"]
    assert sorted(outputs["zetcd"]) == [
        "Created PATH",
        "hello",
        "ip: 127.0.0.1",
        "x509: CN=java client",
    ]


def test_addauth_x509_checks_the_certificate_again(
    need: list[tuple[str, Any]], pki: ZooKeeperTLS, tmp_path: Path
) -> None:
    """A certificate that expires while its connection is open keeps its x509 id, but addauth
    x509 checks its trust again: AuthFailed, and the connection closes."""
    cert = issue(pki, tmp_path / "short", name((CN, "short-lived")), expires_in=4)
    clients = [RawClient(server.secure_address, context=cert.context(pki)) for _, server in need]
    try:
        for c in clients:
            c.connect(timeout=30000)
        time.sleep(5.5)
        results = {}
        for (side, _), c in zip(need, clients, strict=True):
            ids = sorted(_who_am_i(c))
            r = c.call(OpCode.AUTH, AuthPacket(0, "x509", b""))
            results[side] = (ids, r.header.err, c.is_closed())
    finally:
        for c in clients:
            c.close()
    assert results["zetcd"] == results["zookeeper"]
    assert results["zetcd"] == ([("ip", "127.0.0.1"), ("x509", "CN=short-lived")], -115, True)

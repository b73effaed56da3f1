"""ZooKeeper clients over TLS (--secure-zkaddr, zetcd/client_tls.py), side by side with a real
ZooKeeper 3.8 serving its secureClientPort (Netty factory, ssl.clientAuth=none), both with the
same certificate made here (trustme); nothing is mocked. docs/zk-facts.md, section 11."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, MarshallingError
from kazoo.security import ACL, Id

from tests.pki import write_encrypted_key
from tests.servers import (
    EtcdServer,
    ZooKeeperServer,
    ZooKeeperTLS,
    four_letter_word,
    free_port,
    write_zk_tls,
)
from tests.test_sessions import replies_before_the_claim
from tests.zetcd_server import SecureZetcd, zetcd_refusal
from zetcd.emulation.x500 import valid_x500_name
from zetcd.proto.framing import frame
from zetcd.proto.jute import encode_record
from zetcd.proto.records import ConnectRequest

# x509 ACL ids a real ZooKeeper 3.8 (OpenJDK 17) took or refused (InvalidACL) on 2026-12-04,
# with its secure port configured; kept here so that the parser's cases run without servers too
X509_ACCEPTED = (
    "", "CN=a", "cn=a", "CN=a,O=b", "CN=a, O=b", "CN=a;O=b", "CN=a+OU=b", 'CN="a,b"',
    "CN=a\\,b", "CN=#0403616263", "1.2.3.4=a", "1.2.3.4=#0403616263", "OID.1.2.3=a", "CN=",
    "CN = a", " CN=a", "CN=a ", "EMAILADDRESS=a@b", "EMAIL=a@b", "SERIALNUMBER=1", "DNQ=a",
    "T=a", "UID=a", "DC=a", "STREET=a", "L=a", "ST=a", "S=a", "C=US", "C=USA", "IP=1.2.3.4",
    "SURNAME=a", "GIVENNAME=a", "INITIALS=a", "GENERATION=a", "CN=\\41", "CN=a=b", "CN=\u00e9",
    "CN=a\nO=b", "cn=a,ou=b,o=c,c=d",
)  # fmt: skip
X509_REFUSED = (
    " ", "CN=#04036162", "XX=a", "a", "=a", "CN=a,", ",CN=a", "CN=a,,O=b", "CN=a\\",
    "CN=a\\z", "CN=<a>", 'CN="a', 'CN=a"',
)  # fmt: skip
# more, for the differential check only: quotes and separators, escapes, hex and OIDs
X509_MORE = (
    'O="a;b";CN=c', 'CN="a"b', 'CN="a" ', 'CN="a\\"b"', 'CN="a\\zb"', 'CN="a\\41"',
    "CN=a\\\\,O=b", "CN=a\\\\\\,O=b", "CN=a\\ ", "CN=\\ a", "CN=a\\+b", "CN=a+", "+CN=a",
    "CN=a++OU=b", "CN=#", "CN=#0", "CN=#0400", "CN=#040", "CN=#0401", "CN=#0481010a",
    "CN=#048100", "CN=#3000", "CN=#ZZ", "CN=#0403616263 ", "2.999=a", "1.40=a", "1.39=a",
    "3.1=a", "1=a", "1.=a", ".1=a", "1..2=a", "1.-2=a", "1.+2=a", "oid.1.2=a", "OID.x=a",
    "OID.=a", "cN=a", "\tCN=a", "CN\t=a", "CN=\ta", "CN=a\t", "CN=\na", "O=a,CN=", "O=a;",
    ";", ",", "=", "CN=a;;", 'CN="a;b', 'CN="a,b";O=c', 'O="x"y"+CN=a', "CN=a#b", "CN=#a",
    "CN=a<b", "CN=a>b", "CN=a\\<b", "CN=a\\=b", "CN=a\\#b", "CN=a\\;b", "CN=\\", "CN=\\4",
    "CN=\\4g", "EMAIL=\u00e9", "DC=a.b.c", "ST=", "CN=\u00e9\u00e8,O=\u4e2d",
)  # fmt: skip


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> ZooKeeperTLS:
    """A CA and the server's certificate for 127.0.0.1: ZooKeeper's PEM key store (PKCS#8 key
    and certificate in one file) is what zetcd's --zk-cert takes too."""
    return write_zk_tls(tmp_path_factory.mktemp("zk-tls") / "pki")


@pytest.fixture(scope="module")
def zk_tls(tls_files: ZooKeeperTLS) -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(tls=tls_files) as zk:
        yield zk


@pytest.fixture(scope="module")
def zetcd_tls(etcd: EtcdServer, tls_files: ZooKeeperTLS) -> Iterator[SecureZetcd]:
    with SecureZetcd(etcd.endpoint, tls_files) as z:
        yield z


Both = list[tuple[str, Any]]


def _both(zk: ZooKeeperServer, z: SecureZetcd) -> Both:
    return [("zookeeper", zk), ("zetcd", z)]


def _kazoo(address: str, tls: ZooKeeperTLS | None) -> KazooClient:
    if tls is None:
        client = KazooClient(hosts=address, timeout=10)
    else:
        client = KazooClient(
            hosts=address, timeout=10, use_ssl=True, ca=str(tls.ca), verify_certs=True
        )
    client.start(timeout=15)
    return client


def test_x500_names_as_observed() -> None:
    assert [n for n in X509_ACCEPTED if not valid_x500_name(n)] == []
    assert [n for n in X509_REFUSED if valid_x500_name(n)] == []


def test_a_session_over_tls_works_as_on_zookeeper(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd, tls_files: ZooKeeperTLS
) -> None:
    """Writes, reads, a watch and its event over TLS; the tree is the same one the plain port
    serves; the session resumes on the plain port."""
    results = []
    for _, server in _both(zk_tls, zetcd_tls):
        root = f"/tls-{time.monotonic_ns()}"
        events: list[Any] = []
        c = _kazoo(server.secure_address, tls_files)
        try:
            c.create(root, b"v0")
            c.create(root + "/child", b"", ephemeral=True)
            data, stat = c.get(root, watch=events.append)
            c.set(root, b"v1")
            deadline = time.monotonic() + 10
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)
            plain = _kazoo(server.address, None)
            try:
                seen = (plain.get(root)[0], plain.get_children(root))
            finally:
                plain.stop()
                plain.close()
            # the session moves to the plain port and keeps its ephemeral
            sid, password = c.client_id
            moved = KazooClient(hosts=server.address, client_id=(sid, password), timeout=10)
            moved.start(timeout=15)
            try:
                owner = moved.exists(root + "/child").ephemeralOwner == sid
            finally:
                moved.stop()
                moved.close()
            results.append(
                (data, stat.version, [(e.type, e.path[len(root) :]) for e in events], seen, owner)
            )
        finally:
            c.stop()
            c.close()
    assert results[0] == results[1]
    assert results[1] == (b"v0", 0, [("CHANGED", "")], (b"v1", ["child"]), True)


def test_a_claimed_tls_connection_sends_its_queued_replies_then_ends(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd, tls_files: ZooKeeperTLS
) -> None:
    """Unlike a plain connection (test_sessions), a TLS one whose session another connection
    claims sends the replies it has queued before it closes (ZooKeeper's Netty connection
    flushes them), then ends with a TLS close_notify (the client's socket does not take an
    end of the stream without one for a clean close)."""
    seen = []
    for server in (zk_tls, zetcd_tls):
        root = f"/claimed-tls-{uuid.uuid4().hex[:8]}"
        context = tls_files.client_context()
        seen.append(replies_before_the_claim(server.address, root, server.secure_address, context))
    assert seen[0] == (24, "ended")
    assert seen[1] == seen[0]


def test_a_claimed_tls_connection_waits_for_a_client_that_reads_late(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd, tls_files: ZooKeeperTLS
) -> None:
    """Its client reads nothing for 4 s after the claim, longer than Netty's 3 s for flushing a
    close_notify: ZooKeeper still delivers every queued reply and a clean close (seen with 12 s
    too), and so does zetcd."""
    seen = []
    for server in (zk_tls, zetcd_tls):
        root = f"/claimed-tls-{uuid.uuid4().hex[:8]}"
        context = tls_files.client_context()
        seen.append(
            replies_before_the_claim(server.address, root, server.secure_address, context, 4.0)
        )
    assert seen[0] == (24, "ended")
    assert seen[1] == seen[0]


def test_x509_acl_ids_are_validated_as_zookeeper_does(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd
) -> None:
    """With a secure port the x509 provider is registered: an x509 ACL id is valid when Java's
    X500Principal parses it (compared over a plain connection, where no session has an x509
    id, so only the create's answer is compared). An empty id is sent by kazoo as a null
    string: MarshallingError."""
    outcomes = []
    for _, server in _both(zk_tls, zetcd_tls):
        c = _kazoo(server.address, None)
        root = f"/x509-{time.monotonic_ns()}"
        c.create(root)
        got = []
        try:
            for i, ident in enumerate((*X509_ACCEPTED, *X509_REFUSED, *X509_MORE)):
                try:
                    c.create(f"{root}/{i}", acl=[ACL(31, Id("x509", ident))])
                    got.append((ident, "ok"))
                except InvalidACLError:
                    got.append((ident, "InvalidACL"))
                except MarshallingError:
                    got.append((ident, "MarshallingError"))
        finally:
            c.stop()
            c.close()
        outcomes.append(got)
    assert outcomes[1] == outcomes[0]
    # the recorded cases, as observed (kazoo sends "" as null)
    answers = dict(outcomes[1])
    assert answers[""] == "MarshallingError"
    assert all(answers[n] == "ok" for n in X509_ACCEPTED if n)
    assert all(answers[n] == "InvalidACL" for n in X509_REFUSED)


def _tls_socket(address: str, context: ssl.SSLContext) -> ssl.SSLSocket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return context.wrap_socket(sock, server_hostname=host)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_four_letter_words_over_tls(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd, tls_files: ZooKeeperTLS
) -> None:
    """Answered on the secure port too; conf names the secure port second, after clientPort,
    on both ports; dump lists no connections (ZooKeeper's Netty factory keeps no expiry queue
    of them)."""
    keys = []
    for _, server in _both(zk_tls, zetcd_tls):
        with _tls_socket(server.secure_address, tls_files.client_context()) as t:
            t.sendall(b"ruok")
            assert _read_all(t) == b"imok"
        with _tls_socket(server.secure_address, tls_files.client_context()) as t:
            t.sendall(b"conf")
            conf = _read_all(t).decode()
        lines = [line.split("=", 1) for line in conf.splitlines() if "=" in line]
        assert lines[0] == ["clientPort", str(server.address.rsplit(":", 1)[1])]
        assert lines[1] == ["secureClientPort", server.secure_address.rsplit(":", 1)[1]]
        keys.append([k for k, _ in lines])
        host, port = server.address.rsplit(":", 1)
        plain_conf = four_letter_word(host, int(port), "conf")
        assert "secureClientPort=" + server.secure_address.rsplit(":", 1)[1] in plain_conf
        dump = four_letter_word(host, int(port), "dump")
        assert dump.startswith("SessionTracker dump:\nSession Sets (") and dump.endswith(
            "\nConnections dump:\n"
        ), dump
    assert keys[0] == keys[1]


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_what_is_not_tls_on_the_secure_port_and_tls_on_the_plain_one(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd, tls_files: ZooKeeperTLS
) -> None:
    """A plain ConnectRequest on the secure port is closed at once; TLS 1.3 alone is refused
    with a protocol-version alert (TLS 1.2 only); a TLS ClientHello on the plain port is read
    as a frame too large and closed."""
    record = bytearray()
    encode_record(record, ConnectRequest(0, 0, 30000, 0, bytes(16), False))
    connect = frame(bytes(record))
    for _, server in _both(zk_tls, zetcd_tls):
        host, port = server.secure_address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(connect)
            assert _closed_within(s, 5.0)
        context = tls_files.client_context()
        context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            _tls_socket(server.secure_address, context).close()
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            _tls_socket(server.address, tls_files.client_context()).close()


@pytest.mark.timeout(60)
def test_an_unfinished_handshake_is_closed_after_ten_seconds(
    zk_tls: ZooKeeperServer, zetcd_tls: SecureZetcd
) -> None:
    """Nothing, or fewer bytes than a TLS record header, on the secure port: the connection is
    closed once the handshake has waited 10 s (Netty's SslHandler), not before; a connection
    whose handshake is done may then wait for its ConnectRequest as long as it likes, on
    either port (Netty has no sessionless timeout, unlike NIO's 10 s)."""
    results: dict[str, Any] = {}

    def probe(name: str, server: Any) -> None:
        host, port = server.secure_address.rsplit(":", 1)
        quiet = socket.create_connection((host, int(port)), timeout=10)
        short = socket.create_connection((host, int(port)), timeout=10)
        short.sendall(b"\x16\x03")
        plain_host, plain_port = server.address.rsplit(":", 1)
        plain = socket.create_connection((plain_host, int(plain_port)), timeout=10)
        early = [_closed_within(s, 0.1) for s in (quiet, short)]
        time.sleep(6)
        middle = [_closed_within(s, 0.1) for s in (quiet, short)]
        late = [_closed_within(s, 8.0) for s in (quiet, short)]
        # well past 10 s: the plain connection with no ConnectRequest is still open
        still_open = not _closed_within(plain, 0.5)
        for s in (quiet, short, plain):
            s.close()
        results[name] = (early, middle, late, still_open)

    threads = [threading.Thread(target=probe, args=pair) for pair in _both(zk_tls, zetcd_tls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert results["zetcd"] == results["zookeeper"]
    assert results["zetcd"] == ([False, False], [False, False], [True, True], True)


def test_the_command_line_says_what_is_missing(tls_files: ZooKeeperTLS, tmp_path: Path) -> None:
    port = free_port()
    secure = ["--secure-zkaddr", f"127.0.0.1:{port}"]
    cert = ["--zk-cert", str(tls_files.keystore)]
    assert "add --secure-zkaddr" in zetcd_refusal(cert)
    assert "needs --zk-cert" in zetcd_refusal([*secure, "--zk-client-auth", "none"])
    assert "add --secure-zkaddr" in zetcd_refusal(["--zk-cacert", str(tls_files.ca)])
    assert "add --secure-zkaddr" in zetcd_refusal(["--zk-x509-superuser", "CN=root"])
    assert "need (ZooKeeper's default) needs --zk-cacert" in zetcd_refusal([*secure, *cert])
    assert "want needs --zk-cacert" in zetcd_refusal([*secure, *cert, "--zk-client-auth", "want"])
    assert "--zk-client-auth need or want" in zetcd_refusal(
        [*secure, *cert, "--zk-client-auth", "none", "--zk-x509-superuser", "CN=root"]
    )
    assert "--zk-client-auth none does not ask" in zetcd_refusal(
        [*secure, *cert, "--zk-client-auth", "none", "--zk-cacert", str(tls_files.ca)]
    )
    assert "no such file" in zetcd_refusal(
        [*secure, *cert, "--zk-cacert", str(tmp_path / "missing.pem")]
    )
    bridge = ["--debug-zkbridge", "127.0.0.1:1", *secure, *cert, "--zk-cacert", str(tls_files.ca)]
    assert "--zk-client-auth none only" in zetcd_refusal(bridge)
    assert "--zk-client-auth none only" in zetcd_refusal([*bridge, "--zk-client-auth", "want"])
    assert "must be need, want or none" in zetcd_refusal(
        [*secure, *cert, "--zk-client-auth", "maybe"]
    )
    assert "no such file" in zetcd_refusal(
        [*secure, "--zk-cert", str(tmp_path / "missing.pem"), "--zk-client-auth", "none"]
    )
    ca_only = ["--zk-cert", str(tls_files.ca), "--zk-client-auth", "none"]
    refusal = zetcd_refusal([*secure, *ca_only])
    assert "cannot use the TLS files given for clients" in refusal and "--zk-key" in refusal
    # an encrypted key is refused with a message, not a pass phrase prompt (no flag takes one)
    store = tls_files.keystore.read_bytes()
    encrypted = write_encrypted_key(store, tmp_path / "encrypted-key.pem")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(store[store.index(b"-----BEGIN CERTIFICATE-----") :])
    files = ["--zk-cert", str(chain), "--zk-key", str(encrypted), "--zk-client-auth", "none"]
    assert "the private key is encrypted" in zetcd_refusal([*secure, *files])

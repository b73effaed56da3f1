"""TLS to etcd: the etcd client and zetcd itself against a real etcd serving https://, with and
without client certificate checks (``--client-cert-auth``). Certificates come from a test CA
made here (trustme); nothing is mocked."""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trustme
from kazoo.client import KazooClient

from tests.pki import write_encrypted_key
from tests.servers import EtcdServer, EtcdTLS
from tests.zetcd_server import ZetcdServer, zetcd_refusal
from zetcd.etcd import (
    EtcdClient,
    EtcdUnavailable,
    _http2,
    client_context,
    endpoints_tls,
    parse_endpoints,
    prefix_end,
)


def _write_ca(directory: Path, name: str) -> EtcdTLS:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    directory.mkdir()
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(f"{name}-client")
    files = EtcdTLS(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.cert))
    server.private_key_pem.write_to_path(str(files.key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> EtcdTLS:
    return _write_ca(tmp_path_factory.mktemp("tls") / "pki", "zetcd")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> EtcdTLS:
    """A second CA, which etcd's certificate does not chain to."""
    return _write_ca(tmp_path_factory.mktemp("tls") / "other", "stranger")


@pytest.fixture(scope="module")
def tls_etcd(pki: EtcdTLS) -> Iterator[EtcdServer]:
    """etcd on https://, any client welcome."""
    with EtcdServer(tls=pki) as etcd:
        yield etcd


@pytest.fixture(scope="module")
def mtls_etcd(pki: EtcdTLS) -> Iterator[EtcdServer]:
    """etcd on https:// with --client-cert-auth: clients must show a certificate of the CA."""
    with EtcdServer(tls=dataclasses.replace(pki, client_auth=True)) as etcd:
        yield etcd


def _connect_error(endpoint: str, tls: ssl.SSLContext | None) -> str:
    async def main() -> str:
        with pytest.raises(EtcdUnavailable) as info:
            await EtcdClient.connect([endpoint], tls=tls, timeout=1.0)
        return str(info.value)

    return trio.run(main)


def test_the_client_speaks_to_etcd_over_tls(tls_etcd: EtcdServer, pki: EtcdTLS) -> None:
    """Unary calls, a value of 1 MB (many TLS records each way) and a watch whose events
    come in many records at once, over a TLS connection checked against the CA."""

    async def main() -> None:
        context = client_context(str(pki.ca))
        async with await EtcdClient.connect([tls_etcd.endpoint], tls=context) as client:
            put = await client.put(b"/tls/a", b"1")
            got = await client.range(b"/tls/a")
            assert [(kv.key, kv.value) for kv in got.kvs] == [(b"/tls/a", b"1")]
            assert got.header.revision == put.header.revision
            big = bytes(range(256)) * 4096  # 1 MiB
            await client.put(b"/tls/big", big)
            assert (await client.range(b"/tls/big")).kvs[0].value == big
            start = (await client.range(b"/tls/a")).header.revision + 1
            for i in range(200):
                await client.put(b"/tls/w/%03d" % i, b"v" * 5000)
            seen: list[bytes] = []
            async with client.watch(
                b"/tls/w/", prefix_end(b"/tls/w/"), start_revision=start
            ) as batches:
                async for batch in batches:
                    seen += [e.kv.key for e in batch.events]
                    if len(seen) >= 200:
                        break
            assert seen == [b"/tls/w/%03d" % i for i in range(200)]

    trio.run(main)


def test_bytes_openssl_holds_past_a_read_are_not_left_behind(
    tls_etcd: EtcdServer, pki: EtcdTLS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With reads capped at one byte, every TLS record leaves decrypted bytes inside OpenSSL,
    where epoll cannot see them: the reader must take them before it waits again, or the end
    of an answer is never read."""
    monkeypatch.setattr(_http2, "RECV_SIZE", 1)

    async def main() -> None:
        context = client_context(str(pki.ca))
        with trio.fail_after(20):
            async with await EtcdClient.connect([tls_etcd.endpoint], tls=context) as client:
                value = bytes(range(256)) * 160  # 40 KiB: three records or more
                for i in range(3):
                    await client.put(b"/tls/pending/%d" % i, value)
                    got = await client.range(b"/tls/pending/%d" % i)
                    assert got.kvs[0].value == value

    trio.run(main)


def test_tls_writes_that_fill_the_socket_go_on_with_the_same_bytes(
    tls_etcd: EtcdServer, pki: EtcdTLS
) -> None:
    """A send buffer of a few KiB: OpenSSL's writes stop part-way (SSLWantWriteError) again
    and again, and each must go on with the bytes it stopped on."""

    async def main() -> None:
        context = client_context(str(pki.ca))
        with trio.fail_after(30):
            async with await EtcdClient.connect([tls_etcd.endpoint], tls=context) as client:
                conn = client._endpoints[0]._conn
                assert conn is not None and conn.sock is not None
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                values = [bytes([i]) * 700_000 for i in range(3)]
                async with trio.open_nursery() as nursery:  # their frames interleave
                    for i, value in enumerate(values):
                        nursery.start_soon(client.put, b"/tls/full/%d" % i, value)
                for i, value in enumerate(values):
                    assert (await client.range(b"/tls/full/%d" % i)).kvs[0].value == value

    trio.run(main)


def test_a_client_certificate_is_shown_to_an_etcd_that_asks(
    mtls_etcd: EtcdServer, pki: EtcdTLS
) -> None:
    async def main() -> None:
        context = client_context(str(pki.ca), str(pki.client_cert), str(pki.client_key))
        async with await EtcdClient.connect([mtls_etcd.endpoint], tls=context) as client:
            await client.put(b"/mtls/a", b"1")
            assert (await client.range(b"/mtls/a")).kvs[0].value == b"1"

    trio.run(main)
    # without one, etcd refuses the connection (TLS 1.3: once the handshake is over)
    error = _connect_error(mtls_etcd.endpoint, client_context(str(pki.ca)))
    assert "TLS connection to" in error and "client certificates" in error, error


def test_etcd_certificates_that_do_not_check_out_are_refused(
    tls_etcd: EtcdServer, other_pki: EtcdTLS
) -> None:
    # another CA's
    error = _connect_error(tls_etcd.endpoint, client_context(str(other_pki.ca)))
    assert "TLS handshake with" in error and "certificate verify failed" in error, error
    # https:// with no CA given: the system's trusted CAs, which do not know the test CA
    error = _connect_error(tls_etcd.endpoint, None)
    assert "certificate verify failed" in error, error


def test_tls_and_plain_endpoints_do_not_mix_up(
    tls_etcd: EtcdServer, etcd: EtcdServer, pki: EtcdTLS
) -> None:
    """A plain client at a TLS port and a TLS client at a plain port both fail cleanly."""
    plain_at_tls = _connect_error(f"http://{tls_etcd.address}", None)
    assert "if etcd serves TLS there, use https://" in plain_at_tls, plain_at_tls
    tls_at_plain = _connect_error(f"https://{etcd.address}", client_context(str(pki.ca)))
    assert "TLS handshake with" in tls_at_plain, tls_at_plain
    assert "if etcd serves plain HTTP there, use http://" in tls_at_plain, tls_at_plain


def test_which_endpoints_speak_tls() -> None:
    assert parse_endpoints("https://127.0.0.1:2379,https://h:1") == ["127.0.0.1:2379", "h:1"]
    assert endpoints_tls("https://a:1,https://b:2", tls_given=False)
    assert endpoints_tls("a:1,b:2", tls_given=True)  # bare: TLS settings decide, as etcdctl
    assert not endpoints_tls("a:1,http://b:2", tls_given=False)
    with pytest.raises(ValueError, match="mix http:// and https://"):
        endpoints_tls("http://a:1,https://b:2", tls_given=True)
    with pytest.raises(ValueError, match="use https://"):
        endpoints_tls("http://a:1", tls_given=True)
    with pytest.raises(ValueError, match="unsupported etcd endpoint scheme"):
        parse_endpoints("grpcs://a:1")


def test_zetcd_serves_from_an_etcd_that_checks_client_certificates(
    mtls_etcd: EtcdServer, pki: EtcdTLS
) -> None:
    """zetcd with --cacert, --cert and --key, the endpoint given bare (host:port: TLS because
    TLS files are given): writes, reads, a watch and an ephemeral's end with its session."""
    tls_args = (
        "--cacert",
        str(pki.ca),
        "--cert",
        str(pki.client_cert),
        "--key",
        str(pki.client_key),
    )
    with ZetcdServer(mtls_etcd.address, extra_args=tls_args) as zetcd:
        assert f"(etcd https://{mtls_etcd.address})" in zetcd.log_tail(50)
        zk = KazooClient(hosts=zetcd.address)
        other = KazooClient(hosts=zetcd.address)
        zk.start(timeout=10)
        other.start(timeout=10)
        try:
            zk.create("/app", b"v1")
            fired: list[str] = []
            zk.get("/app", watch=lambda event: fired.append(event.type))
            zk.set("/app", b"v2")
            data, stat = zk.get("/app")
            assert (data, stat.version) == (b"v2", 1)
            other.create("/app/eph", b"", ephemeral=True)
            assert zk.get_children("/app") == ["eph"]
            other.stop()
            assert zk.get_children("/app") == []
            assert fired == ["CHANGED"]
        finally:
            for client in (zk, other):
                client.stop()
                client.close()


def test_zetcd_says_in_one_line_when_etcd_refuses_it(mtls_etcd: EtcdServer, pki: EtcdTLS) -> None:
    says = zetcd_refusal(["--endpoints", mtls_etcd.endpoint, "--cacert", str(pki.ca)])
    assert "etcd unavailable" in says and "client certificates" in says, says


def test_tls_files_zetcd_cannot_use_are_flag_errors(tmp_path: Path, pki: EtcdTLS) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    encrypted = write_encrypted_key(pki.client_key.read_bytes(), tmp_path / "encrypted-key.pem")
    cert = str(pki.client_cert)
    for args, expected in (
        (["--cert", cert, "--key", str(encrypted)], "the private key is encrypted"),
        (["--cert", cert], "if --cert does not hold its private key too, give --key"),
        (["--cacert", str(not_pem)], "cannot use the TLS files given"),
        (["--cacert", str(tmp_path / "missing.pem")], "no such file"),
        (["--key", str(pki.client_key)], "--key needs --cert"),
        (["--cert", str(pki.ca), "--key", str(pki.client_key)], "cannot use the TLS files given"),
        (["--endpoints", "http://127.0.0.1:1", "--cacert", str(pki.ca)], "use https://"),
    ):
        if "--endpoints" not in args:
            args = ["--endpoints", "https://127.0.0.1:1", *args]
        says = zetcd_refusal(args)
        assert "Invalid value" in says and expected in says, (args, says)
    says = zetcd_refusal(["--cacert", str(pki.ca)])  # no --endpoints: the embedded etcd
    assert "for an etcd cluster of your own" in says, says

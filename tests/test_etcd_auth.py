"""etcd's user/password authentication: the etcd client and zetcd against a real etcd with
`auth enable`, a user whose role may only read and write zetcd's prefix, and auth tokens that
end after 2 idle seconds (--auth-token-ttl) and when etcd restarts. Nothing is mocked."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from tests.servers import EtcdServer, free_port, wait_until
from tests.test_etcd_client import start_etcd, stop_etcd
from tests.zetcd_server import ZetcdServer, zetcd_refusal
from zetcd.etcd import EtcdClient, EtcdError, encode_guarded_txn, prefix_end

TOKEN_TTL = 2  # seconds an idle token lives (etcd's default: 300)
PREFIX = "/zauth/"  # what the user's role may read and write
USER = ("zuser", "zetcd-pw")


class AuthEtcd:
    """A restartable etcd (same data, same ports) with authentication enabled."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.client_port, self.peer_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self) -> None:
        self.address, self.process = start_etcd(
            self.directory,
            client_port=self.client_port,
            peer_port=self.peer_port,
            extra_args=("--auth-token-ttl", str(TOKEN_TTL)),
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_etcd(self.process)
            self.process = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}"

    def ctl(self, *args: str) -> None:
        env = {**os.environ, "ETCDCTL_API": "3"}
        argv = ["etcdctl", "--endpoints", self.endpoint, "--user", "root:root-pw", *args]
        if args[:2] == ("user", "add") and args[2].startswith("root:"):
            argv.remove("--user")
            argv.remove("root:root-pw")
        subprocess.run(argv, check=True, capture_output=True, env=env, timeout=30)


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEtcd]:
    etcd = AuthEtcd(tmp_path_factory.mktemp("auth"))
    etcd.start()
    try:
        etcd.ctl("user", "add", "root:root-pw")
        etcd.ctl("role", "add", "zetcd")
        etcd.ctl("role", "grant-permission", "zetcd", "--prefix=true", "readwrite", PREFIX)
        etcd.ctl("user", "add", ":".join(USER))
        etcd.ctl("user", "grant-role", USER[0], "zetcd")
        etcd.ctl("auth", "enable")
        yield etcd
    finally:
        etcd.stop()


def test_the_client_authenticates_and_renews_its_token(auth_etcd: AuthEtcd) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([auth_etcd.endpoint], auth=USER) as client:
            key = PREFIX.encode() + b"client/a"
            first = await client.put(key, b"1")
            with pytest.raises(EtcdError, match="permission denied"):
                await client.put(b"/elsewhere", b"1")  # outside the role's range
            assert client._auth_seq == 1
            await trio.sleep(TOKEN_TTL + 1.5)  # the token ends
            second = await client.put(key, b"2")  # refused for its token, then sent again
            assert client._auth_seq == 2
            # the refused put was not applied: one revision between them
            assert second.header.revision == first.header.revision + 1
            assert (await client.range(key)).kvs[0].value == b"2"
            await trio.sleep(TOKEN_TTL + 1.5)
            start = (await client.range(key)).header.revision  # a third token
            await trio.sleep(TOKEN_TTL + 1.5)
            # a watch created with an ended token is cancelled by etcd: renewed, created again
            async with client.watch(key, prefix_end(key), start_revision=start) as batches:
                async for batch in batches:
                    assert [e.kv.value for e in batch.events] == [b"2"]
                    break
            assert client._auth_seq == 4

    trio.run(main)


def test_early_sent_transactions_and_many_callers_get_one_new_token(
    auth_etcd: AuthEtcd,
) -> None:
    """A transaction sent by start_txn and refused for its token goes again once the client
    has a new token (and only once: one revision); twenty calls refused at once log in once."""

    async def main() -> None:
        async with await EtcdClient.connect([auth_etcd.endpoint], auth=USER) as client:
            key = PREFIX.encode() + b"early/a"
            before = await client.put(key, b"0")
            await trio.sleep(TOKEN_TTL + 1.5)
            started = client.start_txn(encode_guarded_txn({}, {}, [(key, b"1", 0)]))
            assert started is not None
            answer = await client.finish_txn(started)
            assert answer.succeeded and client._auth_seq == 2
            assert answer.header.revision == before.header.revision + 1
            await trio.sleep(TOKEN_TTL + 1.5)
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(client.put, PREFIX.encode() + b"early/%d" % i, b"x")
            assert client._auth_seq == 3

    trio.run(main)


def test_a_user_for_an_etcd_without_authentication_is_let_be(
    etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    """As etcdctl: users are often made before authentication is enabled."""

    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint], auth=USER) as client:
            await client.put(b"/no-auth/a", b"1")
            assert not client.authenticates

    trio.run(main)
    assert "authentication is not enabled: working without logging in" in caplog.text


def test_a_wrong_password_is_refused_at_once(auth_etcd: AuthEtcd) -> None:
    async def main() -> None:
        with pytest.raises(EtcdError, match="authentication failed"):
            await EtcdClient.connect([auth_etcd.endpoint], auth=(USER[0], "wrong"))

    trio.run(main)


def test_zetcd_serves_through_ended_tokens_and_an_etcd_restart(auth_etcd: AuthEtcd) -> None:
    """zetcd with --user: its writes (sent early by the batcher, or by its task), reads,
    watches and sessions go on after its token ends while idle, and after etcd restarts (all
    tokens gone, the watch connection too)."""
    user = ["--user", USER[0], "--password", USER[1]]
    with ZetcdServer(auth_etcd.endpoint, prefix=PREFIX + "tree/", extra_args=tuple(user)) as z:
        zk = KazooClient(hosts=z.address, timeout=30)
        other = KazooClient(hosts=z.address, timeout=30)
        zk.start(timeout=15)
        other.start(timeout=15)
        try:
            zk.create("/app", b"v0")
            other.create("/app/eph", b"", ephemeral=True)
            time.sleep(TOKEN_TTL + 1.5)
            fired: list[str] = []
            zk.get("/app", watch=lambda event: fired.append(event.type))
            zk.set("/app", b"v1")
            assert zk.get("/app")[0] == b"v1"
            wait_until(lambda: fired == ["CHANGED"], 10, "the data watch did not fire")
            auth_etcd.stop()
            auth_etcd.start()
            connected = KazooState.CONNECTED
            wait_until(lambda: zk.state == connected, 30, "the client never reconnected")
            zk.retry(zk.set, "/app", b"v2")
            zk.retry(zk.create, "/app/after", b"")
            assert sorted(zk.retry(zk.get_children, "/app")) == ["after", "eph"]
            other.stop()  # its session ends, and its ephemeral with it
            wait_until(
                lambda: zk.retry(zk.get_children, "/app") == ["after"],
                15,
                "the closed session's ephemeral stayed",
            )
            assert zk.retry(zk.get, "/app")[0] == b"v2"
            assert z.running, z.log_tail(30)
        finally:
            for client in (zk, other):
                client.stop()
                client.close()


def test_zetcd_says_in_one_line_when_etcd_refuses_its_user(auth_etcd: AuthEtcd) -> None:
    says = zetcd_refusal(["--endpoints", auth_etcd.endpoint, "--user", f"{USER[0]}:wrong"])
    assert says.strip().splitlines() == [
        "zetcd: etcd refused a request: INVALID_ARGUMENT: etcdserver: authentication failed,"
        " invalid user ID or password"
    ], says


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--user", "zuser"], "--user needs a password"),
        (["--user", ":pw"], "--user needs a user name"),
        (["--password", "pw"], "--password (or ZETCD_ETCD_PASSWORD) needs --user"),
        (["--user", "zuser:pw", "--password", "pw"], "the password is given twice"),
    ],
)
def test_user_flags_that_make_no_sense_are_refused(args: list[str], says: str) -> None:
    stderr = zetcd_refusal(["--endpoints", "127.0.0.1:1", *args])
    assert "Invalid value" in stderr and says in stderr, stderr


def test_user_is_for_an_etcd_of_your_own() -> None:
    stderr = zetcd_refusal(["--user", "zuser:pw"])
    assert "the embedded etcd has no authentication" in stderr, stderr

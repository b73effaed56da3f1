"""Four-letter words (compared with real ZooKeeper's formats) and the Prometheus endpoint."""

from __future__ import annotations

import re
import urllib.request
import uuid

from kazoo.client import KazooClient

from tests.differential import Diff
from tests.servers import EtcdServer, ZooKeeperServer, four_letter_word, free_port
from tests.zetcd_server import ZetcdServer


def _shape(text: str) -> list[str]:
    """Each line with its values replaced: what a monitoring script parses."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"0x[0-9a-f]+", "HEX", line)
        line = re.sub(r"/[0-9.]+:\d+", "/ADDR", line)
        line = re.sub(r"\d+(\.\d+)?", "N", line)
        out.append(line)
    return out


def _cons_fields(text: str) -> set[tuple[str, ...]]:
    return {tuple(re.findall(r"(\w+)=", line)) for line in text.splitlines() if "sid=" in line}


def _keys(text: str, sep: str) -> list[str]:
    return [line.split(sep)[0] for line in text.splitlines()]


def _words(address: str) -> dict[str, str]:
    host, port = address.rsplit(":", 1)
    root = f"/4lw-{uuid.uuid4().hex[:8]}"
    zk = KazooClient(address, timeout=10)
    zk.start(timeout=15)
    try:
        zk.create(root)
        zk.create(root + "/e", ephemeral=True)
        zk.exists(root + "/watched", watch=lambda e: None)
        zk.get(root, watch=lambda e: None)
        zk.get_children(root, watch=lambda e: None)
        words = {w: four_letter_word(host, int(port), w) for w in
                 ("ruok", "isro", "srvr", "stat", "cons", "wchs", "wchc", "wchp", "conf", "envi")}  # fmt: skip
        words["mntr"] = four_letter_word(host, int(port), "mntr")
        words["dump"] = four_letter_word(host, int(port), "dump")
        words["session"] = f"0x{zk.client_id[0]:x}"
        words["root"] = root
    finally:
        zk.stop()
        zk.close()
    return words


def test_four_letter_word_formats(diff: Diff) -> None:
    zk = _words(diff.zookeeper)
    ours = _words(diff.zetcd)
    for w in ("ruok", "isro"):
        assert ours[w] == zk[w]
    for w in ("srvr", "stat"):  # line 1 names the version: 3.8.0-<build>
        assert _shape(ours[w])[1:] == _shape(zk[w])[1:], w
    assert ours["srvr"].startswith("Zookeeper version: 3.8.0-")
    for words in (zk, ours):  # whole milliseconds, so the average lies between the bounds
        low, avg, high = re.findall(r"Latency min/avg/max: (\S+)/(\S+)/(\S+)", words["srvr"])[0]
        assert low.isdigit() and high.isdigit() and int(low) <= float(avg) <= int(high), words
    # cons: one line per connection, ZooKeeper's fields in ZooKeeper's order
    assert _cons_fields(ours["cons"]) and _cons_fields(ours["cons"]) == _cons_fields(zk["cons"])
    # watches: data-table watches only, per session and per path
    assert "Total watches:" in ours["wchs"]
    for w in ("wchc", "wchp"):
        mine = {line.strip() for line in ours[w].splitlines()} - {""}
        assert (
            ours["session"] in mine and f"{ours['root']}/watched" in mine and ours["root"] in mine
        )
    assert _keys(ours["conf"], "=") == _keys(zk["conf"], "=")
    assert ours["envi"].splitlines()[0] == "Environment:"
    assert ours["envi"].splitlines()[1].startswith("zookeeper.version=3.8.0-")
    assert _keys(ours["mntr"], "\t")[:8] == _keys(zk["mntr"], "\t")[:8]
    assert f"{ours['root']}/e" in ours["dump"] and "Sessions with Ephemerals (" in ours["dump"]


def test_whitelist_defaults_to_srvr_like_zookeeper(etcd: EtcdServer) -> None:
    zk = ZooKeeperServer(config={"4lw.commands.whitelist": "srvr"})
    zk._probe = lambda: _srvr_ok(zk)  # type: ignore[method-assign]
    zetcd = ZetcdServer(etcd.endpoint, extra_args=("--4lw-whitelist", "srvr"))
    zetcd._probe = lambda: _srvr_ok(zetcd)  # type: ignore[method-assign]
    with zk, zetcd:  # zetcd's --4lw-whitelist srvr comes last, so it wins
        for server in (zk, zetcd):
            assert four_letter_word(server.host, server.port, "srvr").startswith("Zookeeper")
            assert four_letter_word(server.host, server.port, "ruok") == (
                "ruok is not executed because it is not in the whitelist.\n"
            )
            assert four_letter_word(server.host, server.port, "abcd") == ""


def _srvr_ok(server: ZetcdServer | ZooKeeperServer) -> bool:
    try:
        answer = four_letter_word(server.host, server.port, "srvr", timeout=1)
    except OSError:
        return False
    return answer.startswith("Zookeeper version") and "not currently serving" not in answer


def test_prometheus_metrics(etcd: EtcdServer) -> None:
    port = free_port()
    with ZetcdServer(etcd.endpoint, extra_args=("--metrics-addr", f"127.0.0.1:{port}")) as zetcd:
        zk = KazooClient(zetcd.address, timeout=10)
        zk.start(timeout=15)
        zk.create("/m", b"x")
        zk.get("/m", watch=lambda e: None)
        zk.exists("/missing")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        zk.stop()
        zk.close()
    assert 'zetcd_requests_total{op="create",result="ok"} 1.0' in text
    assert 'zetcd_requests_total{op="exists",result="no_node"} 1.0' in text
    assert 'zetcd_request_duration_seconds_count{op="get_data"} 1.0' in text
    assert re.search(r'zetcd_etcd_requests_total\{call="Txn",result="ok"\} [1-9]', text)
    assert 'zetcd_watches{table="data"} 1.0' in text
    assert "zetcd_sessions 1.0" in text
    assert re.search(r"zetcd_znodes [5-9]\.0", text)
    assert "zetcd_mirror_lag_seconds_count" in text

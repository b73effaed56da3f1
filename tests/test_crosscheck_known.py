"""Regressions: scenarios in which the cross-checker found real emulation bugs (now fixed).

Each runs in-process through the cross-checker (ZooKeeper answering, so the transcript matches
a real ZooKeeper's) against a ZooKeeper of its own, and must record no divergence at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tests.test_diff_modern as modern
import tests.test_diff_wire as wire
from oracle.crosscheck import Options
from oracle.inprocess import ThreadedCrossCheck
from oracle.records import to_dict
from tests.differential import Diff
from tests.servers import EtcdServer, ZooKeeperServer


@pytest.fixture(scope="module")
def fresh_zookeeper() -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "scenario",
    [
        # reconfig on a standalone server: ZooKeeper answers ReconfigDisabled with a new zxid
        # (an error txn); zetcd used to answer with the last one (zxid divergence, "split")
        pytest.param(modern.test_other_3_6_ops, id="reconfig-spends-a-zxid"),
        # a connect naming a live session with a wrong password: ZooKeeper closes that
        # session's connection before checking the password; zetcd used to keep it
        pytest.param(wire.test_reconnect_outcomes, id="wrong-password-takeover"),
    ],
)
def test_fixed_divergence(
    etcd: EtcdServer,
    zookeeper: ZooKeeperServer,
    fresh_zookeeper: ZooKeeperServer,
    scenario: Callable[[Diff], None],
) -> None:
    with ThreadedCrossCheck(
        etcd.endpoint, fresh_zookeeper.address, options=Options(deadline=1.0)
    ) as xc:
        scenario(Diff(zookeeper.address, xc.address))
        records = xc.settle()
    found: list[Any] = [to_dict(d) for d in records]
    assert found == [], json.dumps(found, indent=1)[:4000]

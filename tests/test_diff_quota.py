"""Quotas, run against real ZooKeeper 3.8 and zetcd: the server keeps each quota's
``zookeeper_stats`` node current by itself (zetcd/emulation/quotas.py), in place (same version,
mzxid and mtime, no watch), and the transcripts of both must agree.

Quota nodes live outside the differential chroot (``/zookeeper/quota`` + the absolute path), so
each scenario writes them with a client without chroot and records stats and data, never the
absolute paths (the chroot's name differs between the two runs)."""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE

from tests.differential import Diff, Recorder


class Quota:
    """A quota on ``path`` (relative to the scenario's chroot), written with a root client."""

    def __init__(self, r: Recorder, root: KazooClient, path: str) -> None:
        self.r = r
        self.root = root
        self.base = f"/zookeeper/quota{r.chroot}{path}"
        self.limits = self.base + "/zookeeper_limits"
        self.stats = self.base + "/zookeeper_stats"

    def make_base(self) -> None:
        self.root.ensure_path(self.base)

    def create_limits(self, label: str, data: bytes = b"count=10,bytes=1000") -> None:
        self.r.call(label, lambda: self.root.create(self.limits, data, include_data=True)[1])

    def create_stats(self, label: str, data: bytes = b"count=0,bytes=0") -> None:
        # create2: the reply's Stat is taken before the server rewrites the data
        self.r.call(label, lambda: self.root.create(self.stats, data, include_data=True)[1])

    def read(self, label: str) -> None:
        self.r.call(label, self.root.get, self.stats)


def test_stats_follow_creates_sets_and_deletes(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        root = r.client(chroot=False)
        zk.create("/q")
        zk.create("/q/a", b"12345")
        quota = Quota(r, root, "/q")
        quota.make_base()
        quota.create_limits("limits")
        quota.create_stats("stats created")
        quota.read("stats counted at creation")
        watch = r.watcher()
        root.get(quota.stats, watch=watch)
        r.call("create b", zk.create, "/q/b", b"x" * 12)
        r.call("set a", zk.set, "/q/a", b"y" * 50)
        r.call("create b/c null", zk.create, "/q/b/c", None)
        quota.read("after create, set, create")
        r.call("delete c", zk.delete, "/q/b/c")
        r.call("delete b", zk.delete, "/q/b")
        quota.read("after deletes")
        r.call("limits untouched", root.get, quota.limits)
        r.call("same length set", zk.set, "/q/a", b"z" * 50)
        quota.read("after a set of the same length")
        r.call("outside", zk.create, "/outside", b"abc")
        r.call("sibling prefix", zk.create, "/qq", b"abc")
        quota.read("writes outside the quota")
        eph = r.client()
        r.call("ephemeral", eph.create, "/q/e", b"eph", ephemeral=True)
        quota.read("with an ephemeral")
        eph.stop()
        eph.close()
        r.call("ephemeral gone", zk.exists, "/q/e")
        quota.read("after the session closed")
        # the in-place rewrites fire no watch; a client's setData does (a sync first, so that
        # an event would have arrived before its reply)
        r.call("create f", zk.create, "/q/f", b"f")
        root.sync("/")
        r.note("watch events after rewrites", len(watch.events))
        r.call("set stats", root.set, quota.stats, b"count=100,bytes=7")
        r.note("watch events after a set", [kind for kind, _ in watch.wait(1)])
        r.call("create g", zk.create, "/q/g", b"xy")
        quota.read("counted on from what was set")
        r.call("delete limits", root.delete, quota.limits)
        r.call("create h", zk.create, "/q/h", b"abcd")
        quota.read("no limits: no counting")
        quota.create_limits("limits again")
        r.call("delete h", zk.delete, "/q/h")
        quota.read("counting again")

    diff(scenario)


def test_nested_quotas_count_at_the_deepest(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        root = r.client(chroot=False)
        zk.create("/n/inner/deep", b"123", makepath=True)
        zk.create("/n/other", b"4567")
        outer = Quota(r, root, "/n")
        inner = Quota(r, root, "/n/inner")
        for label, quota in (("outer", outer), ("inner", inner)):
            quota.make_base()
            quota.create_limits(f"{label} limits")
            quota.create_stats(f"{label} stats")
        outer.read("outer counted")
        inner.read("inner counted")
        r.call("create under inner", zk.create, "/n/inner/x", b"xx")
        r.call("create under outer", zk.create, "/n/other/y", b"yyy")
        outer.read("outer: only its own part")
        inner.read("inner")
        r.call("delete inner limits", root.delete, inner.limits)
        r.call("create under inner again", zk.create, "/n/inner/z", b"z")
        outer.read("outer counts inner's subtree now")
        inner.read("inner no longer counted")

    diff(scenario)


def test_stats_before_limits_and_in_multi(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        root = r.client(chroot=False)
        zk.create("/m/a", b"aaaa", makepath=True)
        quota = Quota(r, root, "/m")
        quota.make_base()
        quota.create_stats("stats first")
        r.call("create before limits", zk.create, "/m/b", b"bb")
        quota.read("not counted without limits")
        quota.create_limits("limits")
        r.call("create after limits", zk.create, "/m/c", b"c")
        quota.read("counted from the creation's figures")
        # a multi that fails changes nothing
        t = root.transaction()
        t.create(f"{r.chroot}/m/d", b"dddd")
        t.check(f"{r.chroot}/m/a", 7)
        r.call("failed multi", t.commit)
        quota.read("after the failed multi")
        # limits, stats and counted writes in one multi
        other = Quota(r, root, "/m2")
        zk.create("/m2", b"22")
        other.make_base()
        t = root.transaction()
        t.create(other.limits, b"count=5")
        t.create(f"{r.chroot}/m2/x", b"xxx")
        t.create(other.stats, b"ignored")
        t.create(f"{r.chroot}/m2/y", b"yyyyy")
        t.set_data(f"{r.chroot}/m2", b"2")
        t.delete(f"{r.chroot}/m2/x")
        r.call("multi", lambda: [type(x).__name__ for x in t.commit()])
        other.read("stats of the multi")
        # a stats node deleted and created again in one multi
        t = root.transaction()
        t.delete(other.stats)
        t.create(other.stats, b"")
        t.create(f"{r.chroot}/m2/z", b"z")
        r.call("recreate stats", lambda: [type(x).__name__ for x in t.commit()])
        other.read("recounted")

    diff(scenario)


def test_stats_data_as_statstrack_rewrites_it(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        root = r.client(chroot=False)
        zk.create("/s")
        quota = Quota(r, root, "/s")
        quota.make_base()
        quota.create_limits("limits")
        quota.create_stats("stats")
        for i, data in enumerate(
            (
                b"count=1,bytes=2;x=5,a=1",  # other keys: sorted after "=", each ";k=v"
                b"bytes=3;;count==4,zz=-1",  # "count==4": its value is "", so -1
                b"count=+5,bytes=\xd9\xa1\xd9\xa2",  # a sign, Arabic-Indic digits
                b";,",  # no pairs at all: count and bytes -1
                b"count=9223372036854775807,bytes=0",  # a long wraps
            )
        ):
            r.call(f"set stats {i}", root.set, quota.stats, data)
            r.call(f"create {i}", zk.create, f"/s/n{i}", b"abc")
            quota.read(f"rewritten {i}")

    diff(scenario)


def test_quota_path_components_as_pathtrie_splits_them(diff: Diff) -> None:
    def scenario(r: Recorder) -> None:
        zk = r.client()
        root = r.client(chroot=False)
        zk.create("/w/ /x", b"", makepath=True)
        quota = Quota(r, root, "/w/x")  # " " is no component: /w/ /x is under it
        quota.make_base()
        quota.create_limits("limits")
        quota.create_stats("stats")
        quota.read("counted: the node /w/x does not exist")
        r.call("create under /w/ /x", zk.create, "/w/ /x/y", b"yy")
        r.call("create /w/x", zk.create, "/w/x", b"wx")
        quota.read("both counted")

    diff(scenario)


def test_replies_in_one_batch_see_the_counts_before_them(diff: Diff) -> None:
    """Pipelined on one connection (so zetcd plans them in one transaction): a create under
    the quota, then a setACL of the stats node, whose reply's dataLength is the rewritten
    counts' (ZooKeeper applies them one after the other)."""

    def scenario(r: Recorder) -> None:
        zk = r.client()
        root = r.client(chroot=False)
        zk.create("/p")
        quota = Quota(r, root, "/p")
        quota.make_base()
        quota.create_limits("limits")
        quota.create_stats("stats")
        for i in range(3):
            created = root.create_async(f"{r.chroot}/p/x{i}", b"x" * 10)
            acl = root.set_acls_async(quota.stats, OPEN_ACL_UNSAFE)
            # the path the reply names, less the chroot (which differs between the runs)
            r.call(f"create {i}", lambda c=created: c.get(timeout=10)[len(r.chroot) :])
            r.call(f"setACL {i}", acl.get, timeout=10)
        quota.read("stats")

    diff(scenario)

/*
 * CuratorRecipes: Apache Curator 5.4 recipes against a ZooKeeper-protocol server, printing a
 * transcript meant to be compared line for line between ZooKeeper and zetcd.
 *
 * Usage: CuratorRecipes HOST:PORT ROOT SECTION[,SECTION...]
 *
 * Output: one line "SECTION: observation" per result (values, stats, children, recipe events,
 * errors as KeeperException codes), an "EXC ..." line if a section throws (the next section
 * still runs), and "done" at the end. Everything happens under ROOT, which must be new; give
 * both servers the same ROOT (ZooKeeper iterates hash sets in orders that depend on full paths).
 *
 * Why the lines are deterministic:
 * - two clients (a and b) make changes one at a time, synchronously;
 * - no line depends on how long anything takes: a line is printed once something definite
 *   happened, an exact number of recipe events ({@link #awaitCount}), a state a recipe must
 *   reach ({@link #waitFor}), or a flush of a client's event thread ({@link #flush}); those
 *   waits are bounded (WAIT_MS), so a server that misbehaves gives a different line, not a hang;
 *   the few sleeps left give a call time to block, and its result is the same without them;
 * - short timeouts (BLOCKED_MS) appear only where the expected outcome is the timeout itself (a
 *   lock that cannot be had);
 * - session ids, the GUIDs of protected names and UUIDs are normalised away, times are only
 *   compared; lists from unordered sources are sorted; sequence numbers are kept (a fresh ROOT
 *   makes them fixed);
 * - containers and TTL nodes: section "ttlnode" needs a server that checks them every second
 *   (ZooKeeper's znode.container.checkIntervalMs=1000, zetcd's --container-check-interval
 *   1000); all other sections need one that does not check them during the run (a recipe's
 *   lock container, emptied, must not vanish between two lines).
 */

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.BackgroundCallback;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicInteger;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.atomic.PromotedToLock;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListener;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMultiLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.GroupMember;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.framework.recipes.nodes.PersistentTtlNode;
import org.apache.curator.framework.recipes.queue.DistributedDelayQueue;
import org.apache.curator.framework.recipes.queue.DistributedIdQueue;
import org.apache.curator.framework.recipes.queue.DistributedPriorityQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.MultiItem;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.SharedValue;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;

public final class CuratorRecipes {
    /** Bound on every wait for something that must happen. */
    static final long WAIT_MS = 20000;
    static final int WAIT_S = (int) (WAIT_MS / 1000);
    /** Timeout of an attempt that must fail (a lock held by someone else). */
    static final int BLOCKED_MS = 300;

    static String root;
    static CuratorFramework a, b;
    static String section = "";

    interface Body {
        void run() throws Exception;
    }

    // ------------------------------------------------------------------------- output helpers

    static void out(String s) {
        System.out.println(section + ": " + s);
        System.out.flush();
    }

    static void dump(String what, List<String> events) {
        for (String e : events) out(what + " " + e);
    }

    /** A path relative to ROOT. */
    static String rel(String p) {
        if (p == null) return "null";
        return p.startsWith(root) ? p.substring(root.length()) : p;
    }

    /** rel(), with the GUID of protected names and any UUID replaced. */
    static String norm(String p) {
        return rel(p)
            .replaceAll("_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-", "_c_GUID-")
            .replaceAll("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID");
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Data as 'text' when printable, else hex. */
    static String s(byte[] d) {
        if (d == null) return "<null>";
        for (byte x : d) {
            if (x < 32 || x > 126) {
                StringBuilder hex = new StringBuilder("hex:");
                for (byte y : d) hex.append(String.format("%02x", y));
                return hex.toString();
            }
        }
        return "'" + new String(d, StandardCharsets.UTF_8) + "'";
    }

    /** An exception as its KeeperException code and path, else its class and message. */
    static String exc(Throwable e) {
        Throwable t = e;
        while ((t instanceof ExecutionException || t instanceof RuntimeException)
                && t.getCause() != null && !(t instanceof KeeperException)) {
            t = t.getCause();
        }
        if (t instanceof KeeperException) {
            KeeperException k = (KeeperException) t;
            return "KeeperException." + k.code() + " path=" + norm(k.getPath());
        }
        String m = t.getMessage();
        if (m != null) m = m.replace(root, "").replaceAll("[0-9]{3,}", "N");
        return t.getClass().getSimpleName() + (m == null ? "" : " (" + m + ")");
    }

    static String owner(Stat st) throws Exception {
        long eo = st.getEphemeralOwner();
        if (eo == 0) return "0";
        if (eo == a.getZookeeperClient().getZooKeeper().getSessionId()) return "own-session";
        if (eo == b.getZookeeperClient().getZooKeeper().getSessionId()) return "other-session";
        return "unknown-session";
    }

    static String stat(Stat st) throws Exception {
        if (st == null) return "null";
        return "ver=" + st.getVersion() + " cver=" + st.getCversion() + " eo=" + owner(st)
            + " dlen=" + st.getDataLength() + " nch=" + st.getNumChildren();
    }

    static String exists(String p) throws Exception {
        return stat(a.checkExists().forPath(p));
    }

    /** Sorted, normalised children of p, or the error. */
    static String children(String p) {
        try {
            List<String> n = new ArrayList<>();
            for (String x : a.getChildren().forPath(p)) n.add(norm("/" + x).substring(1));
            Collections.sort(n);
            return n.toString();
        } catch (Exception e) {
            return exc(e);
        }
    }

    // ------------------------------------------------------------------------------- waiting

    /** Waits (at most WAIT_MS) until l holds at least n items. */
    static void awaitCount(Collection<?> l, int n) throws InterruptedException {
        long end = System.currentTimeMillis() + WAIT_MS;
        while (l.size() < n && System.currentTimeMillis() < end) Thread.sleep(10);
    }

    /** Waits (at most WAIT_MS) until c holds; returns whether it does. */
    static boolean waitFor(Callable<Boolean> c) throws Exception {
        long end = System.currentTimeMillis() + WAIT_MS;
        while (System.currentTimeMillis() < end) {
            if (c.call()) return true;
            Thread.sleep(10);
        }
        return c.call();
    }

    /**
     * Returns once c's watchers have seen every event the server sent c before now: a server
     * sends a session's watch events ahead of its replies to later requests, and the client
     * runs watchers and asynchronous callbacks in arrival order on one event thread.
     */
    static void flush(CuratorFramework c) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        c.getZookeeperClient().getZooKeeper().exists("/", false, (rc, path, ctx, st) -> done.countDown(), null);
        if (!done.await(WAIT_MS, TimeUnit.MILLISECONDS)) throw new IllegalStateException("flush timed out");
    }

    // ---------------------------------------------------------------------------------- main

    static CuratorFramework client(String server) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(server, 10000, 10000, new ExponentialBackoffRetry(100, 3));
        c.start();
        if (!c.blockUntilConnected(WAIT_S, TimeUnit.SECONDS)) throw new IllegalStateException("connect");
        return c;
    }

    static Set<String> selected;

    static void section(String name, Body body) {
        if (!selected.remove(name)) return;
        section = name;
        try {
            body.run();
        } catch (Throwable e) {
            out("EXC " + exc(e));
        }
        section = "";
    }

    public static void main(String[] args) throws Exception {
        String server = args[0];
        root = args[1];
        selected = new HashSet<>(Arrays.asList(args[2].split(",")));
        a = client(server);
        b = client(server);
        a.create().creatingParentsIfNeeded().forPath(root);
        section("framework", CuratorRecipes::framework);
        section("watchers", CuratorRecipes::watchers);
        section("config", CuratorRecipes::config);
        section("curatorcache", CuratorRecipes::curatorCache);
        section("treecache", CuratorRecipes::treeCache);
        section("nodecache", CuratorRecipes::nodeCache);
        section("queue", CuratorRecipes::queue);
        section("idqueue", CuratorRecipes::idQueue);
        section("prioqueue", CuratorRecipes::prioQueue);
        section("delayqueue", CuratorRecipes::delayQueue);
        section("simplequeue", CuratorRecipes::simpleQueue);
        section("atomic", CuratorRecipes::atomic);
        section("sharedcount", CuratorRecipes::sharedCount);
        section("semaphore", CuratorRecipes::semaphore);
        section("semmutex", CuratorRecipes::semMutex);
        section("rwlock", CuratorRecipes::rwLock);
        section("multilock", CuratorRecipes::multiLock);
        section("leaderselector", CuratorRecipes::leaderSelector);
        section("barrier", CuratorRecipes::barrier);
        section("doublebarrier", CuratorRecipes::doubleBarrier);
        section("persistentnode", CuratorRecipes::persistentNode);
        section("ttlnode", CuratorRecipes::ttlNode);
        section("groupmember", CuratorRecipes::groupMember);
        section("ordering", CuratorRecipes::ordering);
        section("multi", CuratorRecipes::multi);
        section("stats", CuratorRecipes::stats);
        section("acl", () -> acl(server));
        section("namespace", () -> namespace(server));
        // last: it lists the ephemerals of client a under prefixes of ROOT
        section("ephemerals", CuratorRecipes::ephemerals);
        if (!selected.isEmpty()) System.out.println("unknown sections " + new TreeSet<>(selected));
        a.close();
        b.close();
        System.out.println("done");
        System.exit(0);
    }

    // ----------------------------------------------------------------------------- framework

    static void framework() throws Exception {
        String p = root + "/fw";
        a.create().forPath(p);
        Stat st = new Stat();
        a.create().orSetData().forPath(p + "/os", b("1"));
        out("orSetData#1 " + s(a.getData().storingStatIn(st).forPath(p + "/os")) + " " + stat(st));
        String r = a.create().orSetData().forPath(p + "/os", b("2"));
        out("orSetData#2 returns " + rel(r) + " " + s(a.getData().storingStatIn(st).forPath(p + "/os")) + " " + stat(st));
        r = a.create().orSetData().creatingParentsIfNeeded().forPath(p + "/x/y", b("3"));
        out("orSetData parents " + rel(r) + " " + exists(p + "/x"));
        r = a.create().orSetData().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(p + "/seq-", b("s"));
        out("orSetData seq " + rel(r));
        try {
            out("orSetData withVersion " + rel(a.create().orSetData(5).forPath(p + "/os", b("3"))));
        } catch (Exception e) {
            out("orSetData withVersion " + exc(e));
        }
        r = a.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(p + "/prot", b("v"));
        out("protected eph-seq " + norm(r) + " " + exists(r));
        r = a.create().withProtection().forPath(p + "/prot2");
        out("protected persistent " + norm(r) + " " + exists(r));
        r = a.create().creatingParentsIfNeeded().withProtection().withMode(CreateMode.EPHEMERAL).forPath(p + "/pp/deep/e");
        out("protected eph parents " + norm(r));
        out("children fw " + children(p));
        Stat cs = a.checkExists().creatingParentContainersIfNeeded().forPath(p + "/c1/c2/c3");
        out("checkExists containers -> " + stat(cs) + " c1=" + exists(p + "/c1") + " c2=" + exists(p + "/c1/c2"));
        a.create().withMode(CreateMode.CONTAINER).forPath(p + "/cont");
        out("container " + exists(p + "/cont"));
        a.create().creatingParentContainersIfNeeded().forPath(p + "/pc/q/leaf", b("L"));
        out("creatingParentContainers pc " + exists(p + "/pc") + " q " + exists(p + "/pc/q"));
        a.create().withTtl(10000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(p + "/ttl", b("t"));
        out("ttl " + exists(p + "/ttl"));
        r = a.create().withTtl(10000).withMode(CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL).forPath(p + "/ttlseq-");
        out("ttlseq " + rel(r) + " " + exists(r));
        try {
            a.create().withTtl(10000).withMode(CreateMode.PERSISTENT).forPath(p + "/ttlbad");
            out("ttl+persistent ok " + exists(p + "/ttlbad"));
        } catch (Exception e) {
            out("ttl+persistent " + exc(e));
        }
        try {
            a.create().withTtl(0).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(p + "/ttl0");
            out("ttl0 ok");
        } catch (Exception e) {
            out("ttl0 " + exc(e));
        }
        try {
            a.create().withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(p + "/ttlneg");
            out("ttl-unset ok " + exists(p + "/ttlneg"));
        } catch (Exception e) {
            out("ttl-unset " + exc(e));
        }
        try {
            a.create().withMode(CreateMode.EPHEMERAL).forPath(p + "/x/y/eph");
            a.create().forPath(p + "/x/y/eph/kid");
            out("child of ephemeral ok");
        } catch (Exception e) {
            out("child of ephemeral " + exc(e));
        }
        // the container is now empty and used (cversion 2): no check runs during this section
        a.create().forPath(p + "/cont/kid");
        a.delete().forPath(p + "/cont/kid");
        out("container kid create/delete " + exists(p + "/cont"));
        Stat cst = new Stat();
        a.create().storingStatIn(cst).forPath(p + "/withstat", b("abc"));
        out("create storingStatIn " + stat(cst));
        a.delete().guaranteed().deletingChildrenIfNeeded().forPath(p + "/x");
        out("deletingChildren x " + exists(p + "/x"));
        try { a.delete().forPath(p + "/nosuch"); } catch (Exception e) { out("delete missing " + exc(e)); }
        a.delete().quietly().forPath(p + "/nosuch");
        out("delete quietly ok");
        try { a.delete().withVersion(7).forPath(p + "/os"); } catch (Exception e) { out("delete badversion " + exc(e)); }
        try { a.setData().withVersion(7).forPath(p + "/os", b("z")); } catch (Exception e) { out("set badversion " + exc(e)); }
        try { a.create().forPath(p + "/os"); } catch (Exception e) { out("create dup " + exc(e)); }
        try { a.create().forPath(p + "/nope/deep"); } catch (Exception e) { out("create noparent " + exc(e)); }
        try { a.delete().forPath(p); } catch (Exception e) { out("delete nonempty " + exc(e)); }
        var results = a.transaction().forOperations(
            a.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(p + "/t-", b("1")),
            a.transactionOp().setData().forPath(p + "/os", b("tx")),
            a.transactionOp().check().forPath(p + "/os"),
            a.transactionOp().delete().forPath(p + "/withstat"));
        for (var x : results) {
            out("tx " + x.getType() + " " + rel(x.getForPath()) + " -> " + rel(x.getResultPath()) + " err=" + x.getError()
                + " " + (x.getResultStat() == null ? "nostat" : "ver=" + x.getResultStat().getVersion()));
        }
        try {
            a.transaction().forOperations(
                a.transactionOp().create().forPath(p + "/tnew"),
                a.transactionOp().delete().forPath(p + "/nosuch"),
                a.transactionOp().setData().forPath(p + "/os", b("nope")));
        } catch (Exception e) {
            out("tx fail " + exc(e));
        }
        out("tnew after failed tx " + exists(p + "/tnew"));
        out("children fw " + children(p));
        ZooKeeper z = a.getZookeeperClient().getZooKeeper();
        out("zookeeper children " + a.getChildren().forPath("/zookeeper").stream().sorted().toList());
        out("ephemerals " + z.getEphemerals(p).stream().map(CuratorRecipes::norm).sorted().toList());
        out("allChildrenNumber fw " + z.getAllChildrenNumber(p));
    }

    // ------------------------------------------------------------------------------ watchers

    static void watchers() throws Exception {
        String p = root + "/wa";
        a.create().forPath(p);
        List<String> ev = new CopyOnWriteArrayList<>();

        // persistent recursive, added before the node exists
        Watcher recursive = e -> ev.add("R " + e.getType() + " " + rel(e.getPath()));
        a.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(recursive).forPath(p + "/w");
        b.create().forPath(p + "/w");
        b.create().forPath(p + "/w/k");
        b.setData().forPath(p + "/w/k", b("x"));
        b.create().forPath(p + "/w/k/g");
        b.create().forPath(p + "/wx"); // shares the prefix, not the path: no event
        b.delete().forPath(p + "/w/k/g");
        b.delete().forPath(p + "/w/k");
        b.setData().forPath(p + "/w", b("y"));
        b.delete().forPath(p + "/w");
        try {
            a.watchers().remove(recursive).forPath(p + "/w");
            out("remove recursive ok");
        } catch (Exception e) {
            out("remove recursive " + exc(e));
        }
        b.create().forPath(p + "/w"); // removed: no event
        flush(a);
        dump("ev", ev);
        ev.clear();

        // persistent, not recursive
        Watcher persistent = e -> ev.add("P " + e.getType() + " " + rel(e.getPath()));
        a.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(persistent).forPath(p + "/p");
        b.create().forPath(p + "/p");
        b.create().forPath(p + "/p/k");
        b.setData().forPath(p + "/p/k", b("x"));
        b.setData().forPath(p + "/p", b("x"));
        b.delete().forPath(p + "/p/k");
        b.delete().forPath(p + "/p");
        try {
            a.watchers().remove(persistent).ofType(Watcher.WatcherType.Data).forPath(p + "/p");
            out("remove persistent Data ok");
        } catch (Exception e) {
            out("remove persistent Data " + exc(e));
        }
        try {
            a.watchers().remove(persistent).forPath(p + "/p");
            out("remove persistent Any ok");
        } catch (Exception e) {
            out("remove persistent Any " + exc(e));
        }
        b.create().forPath(p + "/p");
        flush(a);
        dump("ev", ev);
        ev.clear();

        // one-shot watches and their removal
        Watcher once = e -> ev.add("O " + e.getType() + " " + rel(e.getPath()));
        a.checkExists().usingWatcher(once).forPath(p + "/o");
        a.getChildren().usingWatcher(once).forPath(p);
        try {
            a.watchers().remove(once).ofType(Watcher.WatcherType.Children).forPath(p);
            out("remove oneshot children ok");
        } catch (Exception e) {
            out("remove oneshot children " + exc(e));
        }
        try {
            a.watchers().remove(once).ofType(Watcher.WatcherType.Children).forPath(p);
            out("remove again ok");
        } catch (Exception e) {
            out("remove again " + exc(e));
        }
        try {
            a.watchers().remove(once).locally().forPath(p + "/nowatch");
            out("remove locally nowatch ok");
        } catch (Exception e) {
            out("remove locally nowatch " + exc(e));
        }
        try {
            a.watchers().removeAll().forPath(p + "/nowatch2");
            out("removeAll nowatch ok");
        } catch (Exception e) {
            out("removeAll nowatch " + exc(e));
        }
        b.create().forPath(p + "/o");
        flush(a);
        dump("ev", ev);
        ev.clear();
        a.checkExists().usingWatcher(once).forPath(p + "/o2");
        a.watchers().remove(once).forPath(p + "/o2");
        flush(a);
        dump("ev", ev);
        ev.clear();
        // a data and a child watch by one watcher on a node that is deleted: one event
        a.getData().usingWatcher(once).forPath(p + "/o");
        a.getChildren().usingWatcher(once).forPath(p + "/o");
        b.delete().forPath(p + "/o");
        flush(a);
        dump("ev", ev);
    }

    // -------------------------------------------------------------------------------- config

    static void config() throws Exception {
        try {
            Stat st = new Stat();
            byte[] c = a.getConfig().storingStatIn(st).forEnsemble();
            out("getConfig " + s(c).replaceAll("[0-9]{4,}", "N") + " ver=" + st.getVersion() + " dlen=" + st.getDataLength());
        } catch (Exception e) {
            out("getConfig " + exc(e));
        }
        try {
            out("getData /zookeeper/config " + s(a.getData().forPath("/zookeeper/config")).replaceAll("[0-9]{4,}", "N"));
        } catch (Exception e) {
            out("getData /zookeeper/config " + exc(e));
        }
        try {
            out("getData /zookeeper/quota " + s(a.getData().forPath("/zookeeper/quota"))
                + " children " + a.getChildren().forPath("/zookeeper/quota"));
        } catch (Exception e) {
            out("getData /zookeeper/quota " + exc(e));
        }
        out("exists /zookeeper " + exists("/zookeeper"));
        try {
            a.reconfig().joining("server.5=127.0.0.1:1234:1235;1236").forEnsemble();
            out("reconfig join ok");
        } catch (Exception e) {
            out("reconfig join " + exc(e));
        }
        try {
            a.reconfig().leaving("5").forEnsemble();
            out("reconfig leave ok");
        } catch (Exception e) {
            out("reconfig leave " + exc(e));
        }
        try {
            a.reconfig().withNewMembers("server.1=127.0.0.1:1234:1235;1236").forEnsemble();
            out("reconfig members ok");
        } catch (Exception e) {
            out("reconfig members " + exc(e));
        }
        try {
            a.setData().forPath("/zookeeper/config", b("x"));
            out("set /zookeeper/config ok");
        } catch (Exception e) {
            out("set /zookeeper/config " + exc(e));
        }
        try {
            a.create().forPath("/zookeeper/mine");
            out("create under /zookeeper ok");
            a.delete().forPath("/zookeeper/mine");
        } catch (Exception e) {
            out("create under /zookeeper " + exc(e));
        }
        try {
            a.delete().forPath("/zookeeper/config");
            out("delete /zookeeper/config ok");
        } catch (Exception e) {
            out("delete /zookeeper/config " + exc(e));
        }
    }

    // ---------------------------------------------------------------------------- CuratorCache

    static void curatorCache() throws Exception {
        String p = root + "/cc";
        a.create().forPath(p, b("r"));
        a.create().forPath(p + "/pre", b("p"));
        a.create().forPath(p + "/pre/deep", b("d"));
        List<String> ev = new CopyOnWriteArrayList<>();
        CuratorCache cache = CuratorCache.build(a, p);
        cache.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(n -> ev.add("create " + rel(n.getPath()) + "=" + s(n.getData()) + " v" + n.getStat().getVersion()))
            .forChanges((o, n) -> ev.add("change " + rel(n.getPath()) + " " + s(o.getData()) + "->" + s(n.getData())
                + " v" + n.getStat().getVersion()))
            .forDeletes(o -> ev.add("delete " + rel(o.getPath()) + " last=" + s(o.getData())))
            .forInitialized(() -> ev.add("initialized"))
            .build());
        cache.start();
        awaitCount(ev, 4);
        b.create().forPath(p + "/x", b("1"));
        awaitCount(ev, 5);
        b.setData().forPath(p + "/x", b("2"));
        awaitCount(ev, 6);
        b.setData().forPath(p + "/x", b("2")); // same data, new version
        awaitCount(ev, 7);
        b.create().forPath(p + "/x/y", b("3"));
        awaitCount(ev, 8);
        b.setData().forPath(p, b("r2"));
        awaitCount(ev, 9);
        b.delete().forPath(p + "/x/y");
        awaitCount(ev, 10);
        b.delete().forPath(p + "/x");
        awaitCount(ev, 11);
        b.create().withMode(CreateMode.EPHEMERAL).forPath(p + "/e", b("E"));
        awaitCount(ev, 12);
        b.delete().deletingChildrenIfNeeded().forPath(p + "/pre");
        awaitCount(ev, 14);
        List<String> contents = new ArrayList<>();
        cache.stream().forEach(n -> contents.add(rel(n.getPath()) + "=" + s(n.getData())));
        Collections.sort(contents);
        dump("ev", ev);
        out("contents " + contents);
        ev.clear();
        b.delete().deletingChildrenIfNeeded().forPath(p);
        awaitCount(ev, 2);
        b.create().forPath(p, b("again"));
        awaitCount(ev, 3);
        dump("ev", ev);
        out("size " + cache.size());
        cache.close();

        // a single-node cache on a node that does not exist yet
        ev.clear();
        String q = root + "/cc2";
        CuratorCache single = CuratorCache.builder(a, q).withOptions(CuratorCache.Options.SINGLE_NODE_CACHE).build();
        single.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(n -> ev.add("create " + rel(n.getPath()) + "=" + s(n.getData())))
            .forChanges((o, n) -> ev.add("change " + rel(n.getPath()) + " " + s(o.getData()) + "->" + s(n.getData())))
            .forDeletes(o -> ev.add("delete " + rel(o.getPath())))
            .forInitialized(() -> ev.add("initialized"))
            .build());
        single.start();
        awaitCount(ev, 1);
        b.create().forPath(q, b("a"));
        awaitCount(ev, 2);
        b.create().forPath(q + "/kid", b("k")); // not cached: no event
        b.setData().forPath(q, b("b"));
        awaitCount(ev, 3);
        b.delete().deletingChildrenIfNeeded().forPath(q);
        awaitCount(ev, 4);
        dump("single", ev);
        single.close();
    }

    // ------------------------------------------------------------------------------- TreeCache

    @SuppressWarnings("deprecation") // TreeCache: still widely used
    static void treeCache() throws Exception {
        String p = root + "/tc";
        a.create().forPath(p, b("r"));
        a.create().forPath(p + "/pre", b("p"));
        List<String> ev = new CopyOnWriteArrayList<>();
        TreeCache tc = TreeCache.newBuilder(a, p).setCacheData(true).setMaxDepth(2).build();
        tc.getListenable().addListener((c, e) -> ev.add(e.getType() + " " + (e.getData() == null ? "-"
            : rel(e.getData().getPath()) + "=" + s(e.getData().getData()) + " v" + e.getData().getStat().getVersion())));
        tc.start();
        awaitCount(ev, 3);
        b.create().forPath(p + "/a", b("1"));
        awaitCount(ev, 4);
        b.create().forPath(p + "/a/b", b("2"));
        awaitCount(ev, 5);
        b.create().forPath(p + "/a/b/c", b("3")); // below maxDepth: no event
        b.setData().forPath(p + "/a/b/c", b("33"));
        b.setData().forPath(p + "/a", b("11"));
        awaitCount(ev, 6);
        b.delete().forPath(p + "/a/b/c");
        b.delete().forPath(p + "/a/b");
        awaitCount(ev, 7);
        b.delete().forPath(p + "/a");
        awaitCount(ev, 8);
        out("current root children " + new TreeSet<>(tc.getCurrentChildren(p).keySet()));
        b.delete().deletingChildrenIfNeeded().forPath(p);
        awaitCount(ev, 10);
        out("current root " + tc.getCurrentData(p));
        b.create().forPath(p, b("back"));
        awaitCount(ev, 11);
        b.create().forPath(p + "/n", b("n"));
        awaitCount(ev, 12);
        dump("ev", ev);
        tc.close();
    }

    @SuppressWarnings("deprecation") // NodeCache: still widely used
    static void nodeCache() throws Exception {
        String p = root + "/nc";
        List<String> ev = new CopyOnWriteArrayList<>();
        NodeCache nc = new NodeCache(a, p);
        nc.getListenable().addListener(() -> {
            ChildData d = nc.getCurrentData();
            ev.add("changed " + (d == null ? "null" : s(d.getData()) + " v" + d.getStat().getVersion()));
        });
        nc.start(true);
        out("initial " + nc.getCurrentData());
        b.create().forPath(p, b("1"));
        awaitCount(ev, 1);
        b.setData().forPath(p, b("2"));
        awaitCount(ev, 2);
        b.setData().forPath(p, b("2")); // same data, new version
        awaitCount(ev, 3);
        b.create().forPath(p + "/kid"); // children are not watched: no event
        b.delete().forPath(p + "/kid");
        b.delete().forPath(p);
        awaitCount(ev, 4);
        b.create().forPath(p, b("3"));
        awaitCount(ev, 5);
        dump("ev", ev);
        nc.close();
    }

    // ---------------------------------------------------------------------------------- queues

    static final QueueSerializer<String> SERIALIZER = new QueueSerializer<String>() {
        public byte[] serialize(String item) {
            return b(item);
        }

        public String deserialize(byte[] bytes) {
            return new String(bytes, StandardCharsets.UTF_8);
        }
    };

    static QueueConsumer<String> consumer(List<String> got) {
        return new QueueConsumer<String>() {
            public void consumeMessage(String m) {
                got.add(m);
            }

            public void stateChanged(CuratorFramework c, ConnectionState s) {}
        };
    }

    /** Sorted children of a queue, with the sequence number (not always at the end) replaced. */
    static String queueChildren(String p) throws Exception {
        List<String> l = new ArrayList<>();
        for (String c : a.getChildren().forPath(p)) l.add(c.replaceAll("[0-9]{10}$", "SEQ"));
        Collections.sort(l);
        return l.toString();
    }

    static boolean empty(String p) throws Exception {
        return a.getChildren().forPath(p).isEmpty();
    }

    static void queue() throws Exception {
        String p = root + "/q";
        String lock = root + "/q-lock";
        DistributedQueue<String> producer = QueueBuilder.builder(a, null, SERIALIZER, p).buildQueue();
        producer.start();
        producer.put("m1");
        producer.put("m2");
        producer.putMulti(new MultiItem<String>() {
            int i = 0;

            public String nextItem() {
                return i < 2 ? "multi" + (i++) : null;
            }
        });
        producer.put("m3");
        out("children " + children(p));
        List<String> got = new CopyOnWriteArrayList<>();
        DistributedQueue<String> consumer = QueueBuilder.builder(b, consumer(got), SERIALIZER, p).lockPath(lock).buildQueue();
        consumer.start();
        awaitCount(got, 5);
        out("consumed " + got);
        // with a lock path an item is deleted after it is consumed (the lock path is not listed:
        // from a stale list of items the consumer may lock an item again, find it gone and unlock)
        waitFor(() -> empty(p));
        out("after children " + children(p));
        producer.put("late");
        awaitCount(got, 6);
        out("consumed " + got);
        waitFor(() -> empty(p));
        consumer.close();
        producer.close();
    }

    static void idQueue() throws Exception {
        String p = root + "/iq";
        DistributedIdQueue<String> producer = QueueBuilder.builder(a, null, SERIALIZER, p).buildIdQueue();
        producer.start();
        producer.put("x", "id1");
        producer.put("y", "id2");
        producer.put("z", "id1");
        producer.put("w", "id3");
        out("children " + queueChildren(p));
        out("remove id1 -> " + producer.remove("id1"));
        out("remove id9 -> " + producer.remove("id9"));
        out("children " + queueChildren(p));
        List<String> got = new CopyOnWriteArrayList<>();
        DistributedIdQueue<String> consumer = QueueBuilder.builder(b, consumer(got), SERIALIZER, p).buildIdQueue();
        consumer.start();
        awaitCount(got, 2);
        out("consumed " + got);
        consumer.close();
        producer.close();
    }

    static void prioQueue() throws Exception {
        String p = root + "/pq";
        DistributedPriorityQueue<String> producer = QueueBuilder.builder(a, null, SERIALIZER, p).buildPriorityQueue(0);
        producer.start();
        producer.put("p10", 10);
        producer.put("pm5", -5);
        producer.put("p0", 0);
        producer.put("p3", 3);
        producer.put("pm5b", -5);
        out("children " + queueChildren(p));
        List<String> got = new CopyOnWriteArrayList<>();
        DistributedPriorityQueue<String> consumer = QueueBuilder.builder(b, consumer(got), SERIALIZER, p).buildPriorityQueue(0);
        consumer.start();
        awaitCount(got, 5);
        out("consumed " + got);
        consumer.close();
        producer.close();
    }

    static void delayQueue() throws Exception {
        String p = root + "/dq";
        DistributedDelayQueue<String> producer = QueueBuilder.builder(a, null, SERIALIZER, p).buildDelayQueue();
        producer.start();
        long now = System.currentTimeMillis();
        producer.put("late", now + 1500);
        producer.put("now", now);
        producer.put("mid", now + 700);
        out("children count " + a.getChildren().forPath(p).size());
        List<String> got = new CopyOnWriteArrayList<>();
        DistributedDelayQueue<String> consumer = QueueBuilder.builder(b, consumer(got), SERIALIZER, p).buildDelayQueue();
        consumer.start();
        awaitCount(got, 3);
        out("consumed " + got); // in order of delay, whenever the consumer starts
        consumer.close();
        producer.close();
    }

    static void simpleQueue() throws Exception {
        String p = root + "/sq";
        SimpleDistributedQueue q = new SimpleDistributedQueue(a, p);
        SimpleDistributedQueue q2 = new SimpleDistributedQueue(b, p);
        out("peek empty " + s(q.peek()));
        out("poll empty " + s(q.poll()));
        try { q.element(); } catch (Exception e) { out("element empty " + exc(e)); }
        out("poll timeout " + s(q.poll(BLOCKED_MS, TimeUnit.MILLISECONDS)));
        out("offer " + q.offer(b("one")) + " " + q.offer(b("two")));
        out("children " + children(p));
        out("peek " + s(q2.peek()) + " poll " + s(q2.poll()) + " take " + s(q2.take()) + " poll " + s(q2.poll()));
        // the sleeps give take() and poll() time to block; they get the item either way
        ExecutorService ex = Executors.newSingleThreadExecutor();
        Future<byte[]> taken = ex.submit(() -> q2.take());
        Thread.sleep(BLOCKED_MS);
        q.offer(b("three"));
        out("blocked take " + s(taken.get(WAIT_MS, TimeUnit.MILLISECONDS)));
        Future<byte[]> polled = ex.submit(() -> q2.poll(WAIT_MS, TimeUnit.MILLISECONDS));
        Thread.sleep(BLOCKED_MS);
        q.offer(b("four"));
        out("blocked poll " + s(polled.get(2 * WAIT_MS, TimeUnit.MILLISECONDS)));
        ex.shutdown();
        out("children " + children(p));
    }

    // --------------------------------------------------------------------------------- atomics

    static String av(AtomicValue<?> v) {
        return "ok=" + v.succeeded() + " pre=" + v.preValue() + " post=" + v.postValue();
    }

    static void atomic() throws Exception {
        String p = root + "/al";
        DistributedAtomicLong al = new DistributedAtomicLong(a, p, new RetryNTimes(3, 10));
        DistributedAtomicLong bl = new DistributedAtomicLong(b, p, new RetryNTimes(3, 10));
        out("get missing " + av(al.get()) + " exists " + exists(p));
        out("increment " + av(al.increment()));
        out("raw " + s(a.getData().forPath(p)));
        out("add 5 " + av(bl.add(5L)));
        out("decrement " + av(al.decrement()));
        out("subtract 2 " + av(al.subtract(2L)));
        out("cas wrong " + av(al.compareAndSet(100L, 7L)));
        out("cas right " + av(bl.compareAndSet(3L, 7L)));
        out("trySet " + av(al.trySet(9L)));
        al.forceSet(11L);
        out("forceSet -> " + av(bl.get()));
        out("initialize existing " + al.initialize(3L));
        DistributedAtomicLong il = new DistributedAtomicLong(a, p + "-init", new RetryNTimes(3, 10));
        out("initialize new " + il.initialize(3L) + " -> " + av(il.get()));
        a.setData().forPath(p + "-init", b("abc"));
        try { out("get corrupt " + av(il.get())); } catch (Exception e) { out("get corrupt " + exc(e)); }
        // a write with a stale version
        DistributedAtomicLong ca = new DistributedAtomicLong(a, p + "-c", new RetryNTimes(0, 0));
        DistributedAtomicLong cb = new DistributedAtomicLong(b, p + "-c", new RetryNTimes(0, 0));
        ca.forceSet(0L);
        Stat st = new Stat();
        a.getData().storingStatIn(st).forPath(p + "-c");
        cb.increment();
        try {
            a.setData().withVersion(st.getVersion()).forPath(p + "-c", new byte[8]);
            out("stale set ok");
        } catch (Exception e) {
            out("stale set " + exc(e));
        }
        DistributedAtomicLong pl = new DistributedAtomicLong(a, p + "-p", new RetryNTimes(0, 0),
            PromotedToLock.builder().lockPath(p + "-plock").retryPolicy(new RetryNTimes(3, 10)).timeout(WAIT_S, TimeUnit.SECONDS).build());
        out("promoted increment " + av(pl.increment()));
        out("promoted children of lock " + children(p + "-plock"));
        DistributedAtomicInteger ai = new DistributedAtomicInteger(b, p + "-int", new RetryNTimes(3, 10));
        out("int add 41 " + av(ai.add(41)) + " raw " + s(a.getData().forPath(p + "-int")));
        // contended increments: each either succeeds or counts as a failure
        DistributedAtomicLong xa = new DistributedAtomicLong(a, p + "-cc", new RetryNTimes(50, 5));
        DistributedAtomicLong xb = new DistributedAtomicLong(b, p + "-cc", new RetryNTimes(50, 5));
        AtomicInteger fails = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        for (DistributedAtomicLong x : List.of(xa, xb)) {
            Thread t = new Thread(() -> {
                for (int i = 0; i < 20; i++) {
                    try {
                        if (!x.increment().succeeded()) fails.incrementAndGet();
                    } catch (Exception e) {
                        fails.incrementAndGet();
                    }
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) t.join(3 * WAIT_MS);
        out("concurrent final=" + (xa.get().postValue() + fails.get()) + " (40 expected incl. failures)");
    }

    static void sharedCount() throws Exception {
        String p = root + "/sc";
        SharedCount sa = new SharedCount(a, p, 5);
        SharedCount sb = new SharedCount(b, p, 99);
        List<String> ev = new CopyOnWriteArrayList<>();
        sa.start();
        sb.start();
        sb.addListener(new SharedCountListener() {
            public void countHasChanged(SharedCountReader r, int n) {
                ev.add("sb sees " + n);
            }

            public void stateChanged(CuratorFramework c, ConnectionState s) {}
        });
        out("sa " + sa.getCount() + " sb " + sb.getCount() + " raw " + s(a.getData().forPath(p)));
        VersionedValue<Integer> vv = sa.getVersionedValue();
        out("vv " + vv.getValue() + " v" + vv.getVersion());
        out("trySet ok " + sa.trySetCount(vv, 6));
        awaitCount(ev, 1);
        out("trySet stale " + sa.trySetCount(vv, 7));
        out("after stale sa " + sa.getCount());
        // sb's watch sees its own write too: sb re-reads the node and tells its listener what it
        // read, so the next write must wait for that
        sb.setCount(8);
        awaitCount(ev, 2);
        waitFor(() -> sa.getCount() == 8);
        out("sa " + sa.getCount() + " v" + sa.getVersionedValue().getVersion());
        a.setData().forPath(p, b("xy")); // not a count: reading it fails
        waitFor(() -> {
            try {
                sb.getCount();
                return false;
            } catch (RuntimeException e) {
                return true;
            }
        });
        try { out("after bad raw data sb " + sb.getCount()); } catch (Exception e) { out("after bad raw data " + exc(e)); }
        dump("ev", ev);
        SharedValue sv = new SharedValue(a, p + "-v", b("init"));
        sv.start();
        out("sv " + s(sv.getValue()) + " trySet " + sv.trySetValue(sv.getVersionedValue(), b("new")) + " " + s(sv.getValue()));
        sv.close();
        sa.close();
        sb.close();
    }

    // ----------------------------------------------------------------------------------- locks

    static void semaphore() throws Exception {
        String p = root + "/sem";
        InterProcessSemaphoreV2 sa = new InterProcessSemaphoreV2(a, p, 2);
        InterProcessSemaphoreV2 sb = new InterProcessSemaphoreV2(b, p, 2);
        sa.setNodeData(b("nodeA"));
        Collection<Lease> la = sa.acquire(2, WAIT_S, TimeUnit.SECONDS);
        out("a acquired " + (la == null ? "null" : la.size()));
        List<String> names = new ArrayList<>();
        for (Lease l : la) names.add(norm(l.getNodeName()) + "=" + s(l.getData()));
        Collections.sort(names);
        out("lease names " + names);
        Lease lb = sb.acquire(BLOCKED_MS, TimeUnit.MILLISECONDS);
        out("b acquire while full " + (lb == null ? "null" : "lease"));
        out("participants " + sb.getParticipantNodes().stream().map(x -> norm("/" + x).substring(1)).sorted().toList());
        out("children " + children(p) + " leases " + children(p + "/leases") + " locks " + children(p + "/locks"));
        Iterator<Lease> it = la.iterator();
        sa.returnLease(it.next());
        lb = sb.acquire(WAIT_S, TimeUnit.SECONDS);
        out("b acquire after return " + (lb == null ? "null" : norm(lb.getNodeName())));
        try {
            out("acquire 3>max " + sb.acquire(3, BLOCKED_MS, TimeUnit.MILLISECONDS));
        } catch (Exception e) {
            out("acquire 3>max " + exc(e));
        }
        sb.returnLease(lb);
        sa.returnLease(it.next());
        out("after return leases " + children(p + "/leases"));
        Lease l2 = sa.acquire(WAIT_S, TimeUnit.SECONDS);
        a.delete().forPath(p + "/leases/" + l2.getNodeName());
        try {
            sa.returnLease(l2);
            out("return deleted lease ok");
        } catch (Exception e) {
            out("return deleted lease " + exc(e));
        }
        // the number of leases from a SharedCount
        SharedCount count = new SharedCount(a, p + "-count", 1);
        count.start();
        InterProcessSemaphoreV2 sc = new InterProcessSemaphoreV2(b, p + "-2", count);
        Lease x = sc.acquire(WAIT_S, TimeUnit.SECONDS);
        Lease y = sc.acquire(BLOCKED_MS, TimeUnit.MILLISECONDS);
        out("count=1: " + (x != null) + " " + (y != null));
        count.setCount(2);
        y = sc.acquire(WAIT_S, TimeUnit.SECONDS);
        out("count=2: second " + (y != null));
        sc.returnLease(x);
        sc.returnLease(y);
        count.close();
    }

    static void semMutex() throws Exception {
        String p = root + "/smx";
        InterProcessSemaphoreMutex ma = new InterProcessSemaphoreMutex(a, p);
        InterProcessSemaphoreMutex mb = new InterProcessSemaphoreMutex(b, p);
        out("a " + ma.acquire(WAIT_S, TimeUnit.SECONDS) + " b " + mb.acquire(BLOCKED_MS, TimeUnit.MILLISECONDS)
            + " a-again " + ma.acquire(BLOCKED_MS, TimeUnit.MILLISECONDS));
        ma.release();
        out("b after release " + mb.acquire(WAIT_S, TimeUnit.SECONDS)
            + " isAcquired a=" + ma.isAcquiredInThisProcess() + " b=" + mb.isAcquiredInThisProcess());
        mb.release();
        try { mb.release(); } catch (Exception e) { out("release twice " + exc(e)); }
        // InterProcessMutex: reentrant
        InterProcessMutex m = new InterProcessMutex(a, p + "-m");
        m.acquire();
        m.acquire();
        out("mutex participants " + m.getParticipantNodes().stream().map(CuratorRecipes::norm).toList());
        m.release();
        out("after 1 release held=" + m.isAcquiredInThisProcess());
        m.release();
        out("after 2 releases children " + children(p + "-m"));
    }

    static void rwLock() throws Exception {
        String p = root + "/rw";
        InterProcessReadWriteLock ra = new InterProcessReadWriteLock(a, p);
        InterProcessReadWriteLock rb = new InterProcessReadWriteLock(b, p);
        out("a read " + ra.readLock().acquire(WAIT_S, TimeUnit.SECONDS));
        out("b read " + rb.readLock().acquire(WAIT_S, TimeUnit.SECONDS));
        out("b write (b holds read) " + rb.writeLock().acquire(BLOCKED_MS, TimeUnit.MILLISECONDS));
        out("children " + children(p));
        rb.readLock().release();
        out("a write while a reads " + ra.writeLock().acquire(BLOCKED_MS, TimeUnit.MILLISECONDS));
        ra.readLock().release();
        out("a write " + ra.writeLock().acquire(WAIT_S, TimeUnit.SECONDS));
        out("a read while a writes " + ra.readLock().acquire(WAIT_S, TimeUnit.SECONDS));
        out("b read while a writes " + rb.readLock().acquire(BLOCKED_MS, TimeUnit.MILLISECONDS));
        out("participants " + ra.writeLock().getParticipantNodes().stream().map(CuratorRecipes::norm).toList());
        out("children " + children(p));
        ra.readLock().release();
        ra.writeLock().release();
        // a queued writer blocks later readers (Curator locks belong to threads: b's writer
        // acquires and releases on one executor thread)
        out("a read " + ra.readLock().acquire(WAIT_S, TimeUnit.SECONDS));
        ExecutorService ex = Executors.newSingleThreadExecutor();
        Future<Boolean> writer = ex.submit(() -> rb.writeLock().acquire(2 * WAIT_S, TimeUnit.SECONDS));
        waitFor(() -> a.getChildren().forPath(p).stream().anyMatch(c -> c.contains("__WRIT__")));
        InterProcessReadWriteLock rc = new InterProcessReadWriteLock(a, p);
        out("c read with queued writer " + rc.readLock().acquire(BLOCKED_MS, TimeUnit.MILLISECONDS));
        ra.readLock().release();
        out("queued writer got " + writer.get(3 * WAIT_S, TimeUnit.SECONDS));
        ex.submit(() -> {
            rb.writeLock().release();
            return null;
        }).get(WAIT_S, TimeUnit.SECONDS);
        ex.shutdown();
        out("end children " + children(p));
    }

    static void multiLock() throws Exception {
        String p = root + "/ml";
        InterProcessMultiLock ma = new InterProcessMultiLock(a, Arrays.asList(p + "/1", p + "/2"));
        InterProcessMultiLock mb = new InterProcessMultiLock(b, Arrays.asList(p + "/3", p + "/2"));
        out("a " + ma.acquire(WAIT_S, TimeUnit.SECONDS));
        out("b " + mb.acquire(BLOCKED_MS, TimeUnit.MILLISECONDS));
        InterProcessMutex m3 = new InterProcessMutex(a, p + "/3");
        out("lock 3 free after b failed " + m3.acquire(WAIT_S, TimeUnit.SECONDS));
        m3.release();
        out("children 1 " + children(p + "/1") + " 2 " + children(p + "/2") + " 3 " + children(p + "/3"));
        ma.release();
        out("b after release " + mb.acquire(WAIT_S, TimeUnit.SECONDS));
        mb.release();
        out("children 1 " + children(p + "/1") + " 2 " + children(p + "/2") + " 3 " + children(p + "/3"));
    }

    // -------------------------------------------------------------------------- LeaderSelector

    static String participants(LeaderSelector s) throws Exception {
        List<String> l = new ArrayList<>();
        for (Participant x : s.getParticipants()) l.add(x.getId() + (x.isLeader() ? "*" : ""));
        return l.toString();
    }

    static boolean participantCount(LeaderSelector s, int n) throws Exception {
        return waitFor(() -> s.getParticipants().size() == n);
    }

    static void leaderSelector() throws Exception {
        String p = root + "/ls";
        List<String> ev = new CopyOnWriteArrayList<>();
        Map<String, Semaphore> release = new ConcurrentHashMap<>();
        Map<String, LeaderSelector> sel = new ConcurrentHashMap<>();
        for (String id : new String[] {"A", "B"}) {
            release.put(id, new Semaphore(0));
            LeaderSelectorListener l = new LeaderSelectorListenerAdapter() {
                public void takeLeadership(CuratorFramework c) throws Exception {
                    ev.add("lead " + id);
                    try {
                        release.get(id).acquire();
                        ev.add("relinquish " + id);
                    } catch (InterruptedException e) {
                        ev.add("interrupted " + id);
                        throw e;
                    }
                }
            };
            LeaderSelector ls = new LeaderSelector(id.equals("A") ? a : b, p, l);
            ls.setId(id);
            ls.autoRequeue();
            sel.put(id, ls);
        }
        LeaderSelector sa = sel.get("A"), sb = sel.get("B");
        sa.start();
        awaitCount(ev, 1);
        sb.start();
        participantCount(sb, 2);
        out("participants " + participants(sb) + " leader " + sb.getLeader().getId() + " hasA " + sa.hasLeadership());
        release.get("A").release(); // A relinquishes, B leads, A queues again
        awaitCount(ev, 3);
        participantCount(sa, 2);
        out("participants " + participants(sa));
        sb.interruptLeadership(); // B is interrupted, A leads, B queues again
        awaitCount(ev, 5);
        participantCount(sa, 2);
        out("participants " + participants(sa));
        out("children " + children(p));
        sa.close(); // A is interrupted and leaves, B leads
        awaitCount(ev, 7);
        out("after close A participants " + participants(sb));
        release.get("B").release(); // B relinquishes, queues again and leads
        awaitCount(ev, 9);
        sb.close(); // B is interrupted
        awaitCount(ev, 10);
        dump("ev", ev);
        LeaderSelector none = new LeaderSelector(a, p + "-empty", new LeaderSelectorListenerAdapter() {
            public void takeLeadership(CuratorFramework c) {}
        });
        try {
            out("empty getLeader " + none.getLeader().getId() + "|" + none.getLeader().isLeader());
        } catch (Exception e) {
            out("empty getLeader " + exc(e));
        }
        try {
            out("empty participants " + none.getParticipants());
        } catch (Exception e) {
            out("empty participants " + exc(e));
        }
    }

    // -------------------------------------------------------------------------------- barriers

    static void barrier() throws Exception {
        String p = root + "/bar";
        DistributedBarrier ba = new DistributedBarrier(a, p);
        DistributedBarrier bb = new DistributedBarrier(b, p);
        out("wait unset " + bb.waitOnBarrier(BLOCKED_MS, TimeUnit.MILLISECONDS));
        ba.setBarrier();
        ba.setBarrier();
        out("set twice ok " + exists(p));
        out("wait set " + bb.waitOnBarrier(BLOCKED_MS, TimeUnit.MILLISECONDS));
        ExecutorService ex = Executors.newSingleThreadExecutor();
        Future<Boolean> waiter = ex.submit(() -> bb.waitOnBarrier(WAIT_S, TimeUnit.SECONDS));
        Thread.sleep(BLOCKED_MS); // time to start waiting; the waiter is released either way
        ba.removeBarrier();
        out("waiter released " + waiter.get(2 * WAIT_S, TimeUnit.SECONDS));
        try {
            ba.removeBarrier();
            out("remove twice ok");
        } catch (Exception e) {
            out("remove twice " + exc(e));
        }
        ex.shutdown();
    }

    static void doubleBarrier() throws Exception {
        String p = root + "/dbar";
        DistributedDoubleBarrier da = new DistributedDoubleBarrier(a, p, 2);
        out("a enter alone " + da.enter(BLOCKED_MS, TimeUnit.MILLISECONDS));
        out("children after failed enter " + children(p));
        try {
            out("a leave after failed enter " + da.leave(BLOCKED_MS, TimeUnit.MILLISECONDS));
        } catch (Exception e) {
            out("a leave after failed enter " + exc(e));
        }
        out("children " + children(p));
        ExecutorService ex = Executors.newFixedThreadPool(2);
        DistributedDoubleBarrier da2 = new DistributedDoubleBarrier(a, p + "2", 2);
        DistributedDoubleBarrier db2 = new DistributedDoubleBarrier(b, p + "2", 2);
        // the sleeps let the first member wait for the second; both pass either way
        Future<Boolean> fa = ex.submit(() -> da2.enter(WAIT_S, TimeUnit.SECONDS));
        Thread.sleep(BLOCKED_MS);
        Future<Boolean> fb = ex.submit(() -> db2.enter(WAIT_S, TimeUnit.SECONDS));
        out("enter " + fa.get(2 * WAIT_S, TimeUnit.SECONDS) + " " + fb.get(2 * WAIT_S, TimeUnit.SECONDS));
        out("children inside " + children(p + "2"));
        fa = ex.submit(() -> da2.leave(WAIT_S, TimeUnit.SECONDS));
        Thread.sleep(BLOCKED_MS);
        fb = ex.submit(() -> db2.leave(WAIT_S, TimeUnit.SECONDS));
        out("leave " + fa.get(2 * WAIT_S, TimeUnit.SECONDS) + " " + fb.get(2 * WAIT_S, TimeUnit.SECONDS));
        out("children after " + children(p + "2"));
        ex.shutdown();
    }

    // -------------------------------------------------------------------- PersistentNode & TTL

    static void persistentNode() throws Exception {
        String p = root + "/pn";
        a.create().forPath(p);
        List<String> ev = new CopyOnWriteArrayList<>();

        // protected ephemeral: recreated under the same name after an out-of-band delete
        PersistentNode pn = new PersistentNode(a, CreateMode.EPHEMERAL, true, p + "/eph", b("d1"));
        pn.getListenable().addListener(path -> ev.add("created " + norm(path)));
        pn.start();
        out("initial " + pn.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS) + " " + norm(pn.getActualPath()) + " " + exists(pn.getActualPath()));
        pn.setData(b("d2"));
        waitFor(() -> "d2".equals(new String(b.getData().forPath(pn.getActualPath()), StandardCharsets.UTF_8)));
        out("data " + s(b.getData().forPath(pn.getActualPath())));
        String first = pn.getActualPath();
        b.delete().forPath(first);
        awaitCount(ev, 2);
        out("after oob delete " + norm(pn.getActualPath()) + " same=" + first.equals(pn.getActualPath())
            + " data " + s(a.getData().forPath(pn.getActualPath())) + " " + exists(pn.getActualPath()));
        pn.close();
        out("after close " + children(p));
        dump("ev", ev);
        ev.clear();

        // ephemeral sequential: recreated under the name it got first
        PersistentNode ps = new PersistentNode(a, CreateMode.EPHEMERAL_SEQUENTIAL, false, p + "/seq-", b("s"));
        ps.getListenable().addListener(path -> ev.add("created " + norm(path)));
        ps.start();
        ps.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS);
        out("seq " + norm(ps.getActualPath()) + " " + exists(ps.getActualPath()));
        b.delete().forPath(ps.getActualPath());
        awaitCount(ev, 2);
        out("seq after oob delete " + norm(ps.getActualPath()) + " children " + children(p));
        ps.close();
        out("after close " + children(p));
        dump("ev", ev);

        PersistentNode pp = new PersistentNode(a, CreateMode.EPHEMERAL_SEQUENTIAL, true, p + "/pseq-", b("s"));
        pp.start();
        pp.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS);
        out("protected seq " + norm(pp.getActualPath()));
        pp.close();

        PersistentNode pe = new PersistentNode(a, CreateMode.EPHEMERAL, false, p + "/missing/parent/x", b("m"));
        pe.start();
        out("missing parents " + pe.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS) + " " + exists(p + "/missing/parent/x")
            + " parent " + exists(p + "/missing/parent"));
        pe.close();

        PersistentNode pt = new PersistentNode(a, CreateMode.PERSISTENT_WITH_TTL, false, p + "/pttl", b("t"), 3000, false);
        pt.start();
        out("ttl pn " + pt.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS) + " " + exists(p + "/pttl"));
        pt.close();
        out("ttl pn after close " + exists(p + "/pttl"));
    }

    /** Needs a server deleting empty containers and expired TTL nodes every second. */
    static void ttlNode() throws Exception {
        String p = root + "/ttln";
        a.create().forPath(p);
        // PersistentTtlNode: a container kept alive by a TTL child ("touch") it keeps setting
        PersistentTtlNode t = new PersistentTtlNode(a, p + "/node", 2000, b("ttl"));
        t.start();
        out("init " + t.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS) + " " + exists(p + "/node")
            + " data " + s(a.getData().forPath(p + "/node")));
        out("touch child appears " + waitFor(() -> !empty(p + "/node")) + " children " + children(p + "/node"));
        t.close();
        out("gone after close " + waitFor(() -> a.checkExists().forPath(p + "/node") == null));
        // raw TTL nodes and containers
        a.create().withTtl(1500).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(p + "/raw", b("r"));
        a.create().withTtl(1500).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(p + "/rawkid", b("r"));
        a.create().forPath(p + "/rawkid/kid");
        a.create().withMode(CreateMode.CONTAINER).forPath(p + "/cont");
        a.create().withMode(CreateMode.CONTAINER).forPath(p + "/cont2");
        a.create().forPath(p + "/cont2/k");
        a.delete().forPath(p + "/cont2/k");
        out("raw ttl gone " + waitFor(() -> a.checkExists().forPath(p + "/raw") == null));
        out("emptied container gone " + waitFor(() -> a.checkExists().forPath(p + "/cont2") == null));
        out("ttl with kid alive " + (a.checkExists().forPath(p + "/rawkid") != null));
        out("never-used container alive " + (a.checkExists().forPath(p + "/cont") != null));
        a.delete().forPath(p + "/rawkid/kid");
        out("ttl after kid deleted gone " + waitFor(() -> a.checkExists().forPath(p + "/rawkid") == null));
    }

    static String members(GroupMember g) {
        TreeMap<String, String> m = new TreeMap<>();
        g.getCurrentMembers().forEach((k, v) -> m.put(k, s(v)));
        return m.toString();
    }

    static void groupMember() throws Exception {
        String p = root + "/gm";
        GroupMember ga = new GroupMember(a, p, "ida", b("A"));
        GroupMember gb = new GroupMember(b, p, "idb", b("B"));
        ga.start();
        gb.start();
        waitFor(() -> ga.getCurrentMembers().size() == 2 && gb.getCurrentMembers().size() == 2);
        out("members " + members(ga) + " / " + members(gb));
        gb.setThisData(b("B2"));
        waitFor(() -> "B2".equals(new String(ga.getCurrentMembers().getOrDefault("idb", new byte[0]), StandardCharsets.UTF_8)));
        out("after set " + members(ga));
        gb.close();
        waitFor(() -> ga.getCurrentMembers().size() == 1);
        out("after close b " + members(ga) + " children " + children(p));
        ga.close();
    }

    // ------------------------------------------------------- watch events vs. replies, in order

    static void ordering() throws Exception {
        String p = root + "/ord";
        a.create().forPath(p, b("0"));
        List<String> ev = new CopyOnWriteArrayList<>();
        List<String> ev2 = new CopyOnWriteArrayList<>();
        Watcher w = e -> ev.add("watchW " + e.getType() + " " + rel(e.getPath()));
        Watcher w2 = e -> ev2.add("watchW2 " + e.getType() + " " + rel(e.getPath()));
        BackgroundCallback cb = (c, e) -> ev.add("cb " + e.getType() + " " + rel(e.getPath()) + " rc=" + e.getResultCode());

        a.getData().usingWatcher(w).forPath(p);
        a.setData().inBackground(cb).forPath(p, b("1"));
        flush(a);
        out("own set: " + ev);
        ev.clear();
        a.getChildren().usingWatcher(w).forPath(p);
        a.create().inBackground(cb).forPath(p + "/k");
        flush(a);
        out("own create: " + ev);
        ev.clear();
        a.checkExists().usingWatcher(w).forPath(p + "/m");
        a.create().inBackground(cb).forPath(p + "/m");
        flush(a);
        out("own create exists-watch: " + ev);
        ev.clear();
        a.getData().usingWatcher(w).forPath(p + "/m");
        a.getChildren().usingWatcher(w2).forPath(p + "/m");
        a.getChildren().usingWatcher(w).forPath(p);
        a.delete().inBackground(cb).forPath(p + "/m");
        flush(a);
        out("own delete: " + ev + " w2: " + ev2);
        ev.clear();
        ev2.clear();

        // another client writes, then an own read: the event comes before the read's reply
        a.getData().usingWatcher(w).forPath(p);
        b.setData().forPath(p, b("2"));
        a.getData().inBackground(cb).forPath(p);
        flush(a);
        out("other set then own read: " + ev);
        ev.clear();
        a.getChildren().usingWatcher(w).forPath(p);
        b.create().forPath(p + "/o");
        a.getChildren().inBackground(cb).forPath(p);
        flush(a);
        out("other create then own getChildren: " + ev);
        ev.clear();
        a.checkExists().usingWatcher(w).forPath(p + "/o");
        b.delete().forPath(p + "/o");
        a.checkExists().inBackground(cb).forPath(p + "/o");
        flush(a);
        out("other delete then own exists: " + ev);
        ev.clear();

        // an own multi firing several watches
        a.getData().usingWatcher(w).forPath(p);
        a.getChildren().usingWatcher(w2).forPath(p);
        a.getData().usingWatcher(w).forPath(p + "/k");
        a.transaction().inBackground(cb).forOperations(
            a.transactionOp().create().forPath(p + "/t1"),
            a.transactionOp().setData().forPath(p, b("3")),
            a.transactionOp().delete().forPath(p + "/k"));
        flush(a);
        out("own multi: " + ev + " w2: " + ev2);
        ev.clear();
        ev2.clear();

        // a persistent recursive watch and a burst of own asynchronous writes
        Watcher rec = e -> ev.add("rec " + e.getType() + " " + rel(e.getPath()));
        a.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(rec).forPath(p);
        a.create().inBackground(cb).forPath(p + "/r1");
        a.create().inBackground(cb).forPath(p + "/r1/r2");
        a.setData().inBackground(cb).forPath(p + "/r1", b("x"));
        a.delete().inBackground(cb).forPath(p + "/r1/r2");
        a.delete().inBackground(cb).forPath(p + "/r1");
        a.delete().inBackground(cb).forPath(p + "/nonexistent");
        a.setData().inBackground(cb).forPath(p, b("4"));
        flush(a);
        dump("burst", ev);
        ev.clear();

        // a persistent watch and another client's multi, then an own read
        Watcher pers = e -> ev2.add("pers " + e.getType() + " " + rel(e.getPath()));
        a.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(pers).forPath(p + "/t1");
        b.transaction().forOperations(
            b.transactionOp().create().forPath(p + "/t1/c"),
            b.transactionOp().setData().forPath(p + "/t1", b("y")),
            b.transactionOp().delete().forPath(p + "/t1/c"),
            b.transactionOp().delete().forPath(p + "/t1"),
            b.transactionOp().create().forPath(p + "/t1", b("z")));
        a.getData().inBackground(cb).forPath(p + "/t1");
        flush(a);
        dump("multi-other", ev);
        dump("multi-other", ev2);
        a.watchers().removeAll().forPath(p);
        a.watchers().removeAll().forPath(p + "/t1");
    }

    // ----------------------------------------------------------------------------------- multi

    static String results(List<OpResult> rs) {
        List<String> l = new ArrayList<>();
        for (OpResult r : rs) {
            if (r instanceof OpResult.ErrorResult) {
                l.add("Err(" + KeeperException.Code.get(((OpResult.ErrorResult) r).getErr()) + ")");
            } else if (r instanceof OpResult.CreateResult) {
                OpResult.CreateResult c = (OpResult.CreateResult) r;
                l.add("Create(" + rel(c.getPath()) + (c.getStat() == null ? "" : ",stat") + ")");
            } else if (r instanceof OpResult.SetDataResult) {
                l.add("Set(v" + ((OpResult.SetDataResult) r).getStat().getVersion() + ")");
            } else if (r instanceof OpResult.GetDataResult) {
                OpResult.GetDataResult g = (OpResult.GetDataResult) r;
                l.add("GetData(" + s(g.getData()) + ",v" + g.getStat().getVersion() + ")");
            } else if (r instanceof OpResult.GetChildrenResult) {
                l.add("GetChildren(" + new TreeSet<>(((OpResult.GetChildrenResult) r).getChildren()) + ")");
            } else {
                l.add(r.getClass().getSimpleName());
            }
        }
        return l.toString();
    }

    static void rawMulti(ZooKeeper z, String what, List<Op> ops) {
        try {
            out(what + " ok " + results(z.multi(ops)));
        } catch (KeeperException e) {
            out(what + " " + exc(e) + " results " + (e.getResults() == null ? "null" : results(e.getResults())));
        } catch (Exception e) {
            out(what + " " + exc(e));
        }
    }

    static void multi() throws Exception {
        String p = root + "/mu";
        a.create().forPath(p, b("d"));
        ZooKeeper z = a.getZookeeperClient().getZooKeeper();
        List<ACL> open = ZooDefs.Ids.OPEN_ACL_UNSAFE;
        rawMulti(z, "ok-mix", List.of(
            Op.create(p + "/a", b("1"), open, CreateMode.PERSISTENT),
            Op.create(p + "/s-", b("1"), open, CreateMode.PERSISTENT_SEQUENTIAL),
            Op.create(p + "/c", b("1"), open, CreateMode.PERSISTENT, 0),
            Op.setData(p + "/a", b("2"), 0),
            Op.check(p + "/a", 1),
            Op.delete(p + "/c", -1)));
        rawMulti(z, "fail-middle", List.of(
            Op.create(p + "/b", null, open, CreateMode.PERSISTENT),
            Op.create(p + "/a", null, open, CreateMode.PERSISTENT),
            Op.setData(p + "/a", b("x"), -1),
            Op.delete(p + "/zz", -1)));
        rawMulti(z, "fail-first", List.of(Op.check(p + "/a", 7), Op.setData(p + "/a", b("x"), -1)));
        rawMulti(z, "fail-last", List.of(Op.setData(p + "/a", b("x"), -1), Op.delete(p, -1)));
        rawMulti(z, "two-fail", List.of(Op.setData(p + "/a", b("x"), -1), Op.delete(p + "/q", -1), Op.check(p + "/a", 9)));
        rawMulti(z, "create-then-child", List.of(
            Op.create(p + "/n", null, open, CreateMode.PERSISTENT),
            Op.create(p + "/n/m", null, open, CreateMode.PERSISTENT),
            Op.delete(p + "/n/m", -1),
            Op.delete(p + "/n", -1)));
        rawMulti(z, "eph-then-child", List.of(
            Op.create(p + "/e", null, open, CreateMode.EPHEMERAL),
            Op.create(p + "/e/m", null, open, CreateMode.PERSISTENT)));
        rawMulti(z, "seq-twice", List.of(
            Op.create(p + "/q-", null, open, CreateMode.PERSISTENT_SEQUENTIAL),
            Op.create(p + "/q-", null, open, CreateMode.PERSISTENT_SEQUENTIAL)));
        rawMulti(z, "empty", List.of());
        rawMulti(z, "read", List.of(Op.getData(p + "/a"), Op.getChildren(p), Op.getData(p + "/missing"), Op.getChildren(p + "/a")));
        rawMulti(z, "read-missing-children", List.of(Op.getChildren(p + "/missing"), Op.getData(p)));
        rawMulti(z, "container+ttl", List.of(
            Op.create(p + "/cont", null, open, CreateMode.CONTAINER),
            Op.create(p + "/ttl", null, open, CreateMode.PERSISTENT_WITH_TTL, 5000)));
        rawMulti(z, "badversion-delete", List.of(Op.delete(p + "/a", 0)));
        rawMulti(z, "noparent", List.of(Op.create(p + "/x/y", null, open, CreateMode.PERSISTENT)));
        rawMulti(z, "notempty", List.of(Op.delete(p, -1)));
        out("children " + children(p));
        // a Curator transaction failing at its second operation of three
        try {
            a.transaction().forOperations(
                a.transactionOp().create().forPath(p + "/ct"),
                a.transactionOp().create().forPath(p + "/a"),
                a.transactionOp().delete().forPath(p + "/ct"));
        } catch (KeeperException e) {
            out("curator tx " + exc(e) + " " + (e.getResults() == null ? "" : results(e.getResults())));
        }
    }

    // ----------------------------------------------------------------------------------- stats

    /**
     * Stat fields: the zxids against base's czxid (= < >), mtime against ctime (equal until the
     * node's data first changes, then no less: a change in the same millisecond keeps it equal),
     * values for the rest.
     */
    static String zx(Stat st, Stat base) {
        String mtime = st.getMzxid() == st.getCzxid() ? cmp(st.getMtime(), st.getCtime())
            : st.getMtime() >= st.getCtime() ? ">=" : "<";
        return "czx" + cmp(st.getCzxid(), base.getCzxid()) + " mzx" + cmp(st.getMzxid(), base.getCzxid())
            + " pzx" + cmp(st.getPzxid(), base.getCzxid()) + " mtime" + mtime
            + " ver=" + st.getVersion() + " cver=" + st.getCversion() + " aver=" + st.getAversion()
            + " nch=" + st.getNumChildren() + " dlen=" + st.getDataLength();
    }

    static String cmp(long x, long y) {
        return x == y ? "=" : x > y ? ">" : "<";
    }

    static void stats() throws Exception {
        String p = root + "/st";
        Stat base = new Stat();
        a.create().storingStatIn(base).forPath(p, b("abc"));
        out("created " + zx(base, base) + " checkExists same " + a.checkExists().forPath(p).equals(base));
        Stat s1 = a.setData().forPath(p, b("abcd"));
        out("after set " + zx(s1, base));
        Stat kid = new Stat();
        a.create().storingStatIn(kid).forPath(p + "/k");
        Stat s2 = a.checkExists().forPath(p);
        out("after child create " + zx(s2, base) + " pzxid==kid.czxid " + (s2.getPzxid() == kid.getCzxid())
            + " mzxid unchanged " + (s2.getMzxid() == s1.getMzxid()));
        a.delete().forPath(p + "/k");
        Stat s3 = a.checkExists().forPath(p);
        out("after child delete " + zx(s3, base) + " pzxid>kid " + (s3.getPzxid() > kid.getCzxid()));
        a.create().withMode(CreateMode.EPHEMERAL).forPath(p + "/e");
        a.setData().forPath(p + "/e", b("x"));
        out("after eph child create+set " + zx(a.checkExists().forPath(p), base));
        Stat s5 = a.setACL().withACL(ZooDefs.Ids.READ_ACL_UNSAFE).forPath(p + "/e");
        out("setACL eph " + zx(s5, s5) + " acl " + a.getACL().forPath(p + "/e"));
        try { a.setACL().withVersion(5).withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(p + "/e"); } catch (Exception e) { out("setACL badversion " + exc(e)); }
        try { a.setData().forPath(p + "/e", b("y")); } catch (Exception e) { out("set on read-only acl " + exc(e)); }
        // sequence numbers: from the parent's cversion, whatever was deleted
        List<String> made = new ArrayList<>();
        for (int i = 0; i < 3; i++) made.add(a.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(p + "/s-"));
        out("seq made " + made.stream().map(CuratorRecipes::rel).toList());
        a.delete().forPath(made.get(2));
        String r = a.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(p + "/s-");
        String r2 = a.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(p + "/");
        String r3 = a.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(made.get(0) + "/x");
        out("seq after deletes " + rel(r) + " " + rel(r2) + " " + rel(r3) + " parent " + zx(a.checkExists().forPath(p), base));
        Stat rootst = a.checkExists().forPath("/");
        out("root ver=" + rootst.getVersion() + " aver=" + rootst.getAversion() + " eo=" + rootst.getEphemeralOwner()
            + " dlen=" + rootst.getDataLength() + " czxid=" + rootst.getCzxid() + " ctime=" + rootst.getCtime());
        String top = root.split("/")[1];
        out("root children " + a.getChildren().forPath("/").stream().map(x -> x.equals(top) ? "ROOT" : x).sorted().toList());
        Stat zs = a.checkExists().forPath("/zookeeper");
        a.create().forPath(p + "/fresh");
        Stat fresh = a.checkExists().forPath(p + "/fresh");
        out("/zookeeper czxid=" + zs.getCzxid() + " mzxid=" + zs.getMzxid() + " ctime=" + zs.getCtime()
            + " pzxid" + cmp(zs.getPzxid(), fresh.getCzxid()) + "fresh cver=" + zs.getCversion());
        Stat cs = a.checkExists().forPath("/zookeeper/config");
        out("/zookeeper/config " + (cs == null ? "null" : "czxid=" + cs.getCzxid() + " ver=" + cs.getVersion()
            + " aver=" + cs.getAversion() + " acl=" + a.getACL().forPath("/zookeeper/config")));
        out("/zookeeper acl " + a.getACL().forPath("/zookeeper") + " quota acl " + a.getACL().forPath("/zookeeper/quota"));
        try {
            a.create().forPath(p + "/big", new byte[1000000]);
            out("1MB-ish create ok dlen=" + a.checkExists().forPath(p + "/big").getDataLength());
        } catch (Exception e) {
            out("big create " + exc(e));
        }
        out("empty data " + s(a.getData().forPath(a.create().forPath(p + "/empty", new byte[0]))));
        ZooKeeper z = a.getZookeeperClient().getZooKeeper();
        z.create(p + "/nulldata", null, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        Stat ns = new Stat();
        out("null data getData " + s(z.getData(p + "/nulldata", false, ns)) + " dlen=" + ns.getDataLength());
        z.setData(p + "/nulldata", null, -1);
        out("set null -> " + s(z.getData(p + "/nulldata", false, ns)) + " dlen=" + ns.getDataLength());
        out("ephemerals " + z.getEphemerals(p).stream().map(CuratorRecipes::rel).sorted().toList()
            + " all " + z.getEphemerals().stream().filter(x -> x.startsWith(p + "/")).map(CuratorRecipes::rel).sorted().toList());
        out("allChildrenNumber " + z.getAllChildrenNumber(p));
        try {
            out("allChildrenNumber missing " + z.getAllChildrenNumber(p + "/missing"));
        } catch (Exception e) {
            out("allChildrenNumber missing " + exc(e));
        }
        Stat gs = new Stat();
        List<String> kids = z.getChildren(p, false, gs);
        out("getChildren2 n=" + kids.size() + " " + zx(gs, base));
    }

    // ------------------------------------------------------------------------------------ ACLs

    static ACL aclOf(String scheme, String id, int perms) {
        return new ACL(perms, new Id(scheme, id));
    }

    static void acl(String server) throws Exception {
        String p = root + "/acl";
        a.create().forPath(p);
        CuratorFramework u = CuratorFrameworkFactory.builder().connectString(server).retryPolicy(new RetryNTimes(0, 0))
            .authorization("digest", b("user:pw")).build();
        u.start();
        u.blockUntilConnected(WAIT_S, TimeUnit.SECONDS);
        u.create().withACL(ZooDefs.Ids.CREATOR_ALL_ACL).forPath(p + "/mine", b("secret"));
        out("owner read " + s(u.getData().forPath(p + "/mine")));
        out("getACL by owner " + u.getACL().forPath(p + "/mine"));
        try { out("getACL by other " + b.getACL().forPath(p + "/mine")); } catch (Exception e) { out("getACL by other " + exc(e)); }
        try { b.getData().forPath(p + "/mine"); out("other read ok"); } catch (Exception e) { out("other read " + exc(e)); }
        try { b.setData().forPath(p + "/mine", b("x")); out("other write ok"); } catch (Exception e) { out("other write " + exc(e)); }
        try { b.create().forPath(p + "/mine/kid"); out("other create kid ok"); } catch (Exception e) { out("other create kid " + exc(e)); }
        out("other exists " + (b.checkExists().forPath(p + "/mine") != null));
        try {
            b.setACL().withACL(ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(p + "/mine");
            out("other setACL ok");
        } catch (Exception e) {
            out("other setACL " + exc(e));
        }
        try {
            b.create().withACL(ZooDefs.Ids.CREATOR_ALL_ACL).forPath(p + "/noauth");
            out("creator acl without auth ok");
        } catch (Exception e) {
            out("creator acl without auth " + exc(e));
        }
        try {
            b.create().withACL(new ArrayList<>()).forPath(p + "/emptyacl");
            out("empty acl ok " + b.getACL().forPath(p + "/emptyacl"));
        } catch (Exception e) {
            out("empty acl " + exc(e));
        }
        try {
            b.create().withACL(List.of(aclOf("digest", "nocolon", ZooDefs.Perms.ALL))).forPath(p + "/baddigest");
            out("bad digest ok");
        } catch (Exception e) {
            out("bad digest " + exc(e));
        }
        try {
            b.create().withACL(List.of(aclOf("nosuchscheme", "x", ZooDefs.Perms.ALL))).forPath(p + "/badscheme");
            out("bad scheme ok");
        } catch (Exception e) {
            out("bad scheme " + exc(e));
        }
        try {
            b.create().withACL(List.of(aclOf("ip", "127.0.0.1/8", ZooDefs.Perms.ALL))).forPath(p + "/ip");
            out("ip acl ok; read " + s(b.getData().forPath(p + "/ip")));
        } catch (Exception e) {
            out("ip acl " + exc(e));
        }
        try {
            b.create().withACL(List.of(aclOf("ip", "10.0.0.0/8", ZooDefs.Perms.ALL))).forPath(p + "/ip2");
            out("ip2 acl ok");
            b.getData().forPath(p + "/ip2");
            out("ip2 read ok");
        } catch (Exception e) {
            out("ip2 acl " + exc(e));
        }
        try {
            b.create().withACL(List.of(aclOf("world", "someone", ZooDefs.Perms.ALL))).forPath(p + "/badworld");
            out("world:someone ok");
        } catch (Exception e) {
            out("world:someone " + exc(e));
        }
        try {
            b.create().withACL(List.of(aclOf("world", "anyone", 0))).forPath(p + "/zeroperm");
            out("zero perms ok " + b.getACL().forPath(p + "/zeroperm"));
            b.getData().forPath(p + "/zeroperm");
            out("zeroperm read ok");
        } catch (Exception e) {
            out("zero perms " + exc(e));
        }
        try {
            b.create().withACL(ZooDefs.Ids.READ_ACL_UNSAFE).forPath(p + "/ro");
            b.create().forPath(p + "/ro/kid");
            out("ro kid ok");
        } catch (Exception e) {
            out("ro kid " + exc(e));
        }
        out("ro exists " + (b.checkExists().forPath(p + "/ro") != null) + " getChildren " + b.getChildren().forPath(p + "/ro"));
        try {
            b.delete().forPath(p + "/ro");
            out("delete ro node (parent perms) ok");
        } catch (Exception e) {
            out("delete ro " + exc(e));
        }
        // authentication added to a live session: the server handles it before later requests
        b.getZookeeperClient().getZooKeeper().addAuthInfo("digest", b("user:pw"));
        try { out("after addAuth read " + s(b.getData().forPath(p + "/mine"))); } catch (Exception e) { out("after addAuth read " + exc(e)); }
        try { out("after addAuth getACL " + b.getACL().forPath(p + "/mine")); } catch (Exception e) { out("after addAuth getACL " + exc(e)); }
        try {
            b.delete().forPath(p + "/mine");
            out("other delete ok");
        } catch (Exception e) {
            out("other delete " + exc(e));
        }
        // an unknown scheme fails the session's authentication
        ZooKeeper x = new ZooKeeper(server, 10000, e -> {});
        waitFor(() -> x.getState() == ZooKeeper.States.CONNECTED);
        x.addAuthInfo("nosuch", b("x"));
        waitFor(() -> x.getState() == ZooKeeper.States.AUTH_FAILED);
        out("bad scheme auth state " + x.getState());
        try {
            x.exists(p, false);
            out("after bad auth still works");
        } catch (Exception e) {
            out("after bad auth " + exc(e));
        }
        x.close();
        u.close();
    }

    static void namespace(String server) throws Exception {
        CuratorFramework n = CuratorFrameworkFactory.builder().connectString(server).retryPolicy(new RetryNTimes(3, 100))
            .namespace(root.substring(1) + "/ns").build();
        n.start();
        n.blockUntilConnected(WAIT_S, TimeUnit.SECONDS);
        n.create().forPath("/x", b("1"));
        out("ns exists " + exists(root + "/ns") + " x " + exists(root + "/ns/x"));
        List<String> ev = new CopyOnWriteArrayList<>();
        n.getData().usingWatcher((Watcher) e -> ev.add(e.getType() + " " + e.getPath())).forPath("/x");
        b.setData().forPath(root + "/ns/x", b("2"));
        flush(n);
        out("ns events " + ev + " children / " + n.getChildren().forPath("/"));
        n.close();
    }

    static void ephemerals() throws Exception {
        String p = root + "/ep";
        a.create().forPath(p);
        a.create().forPath(p + "x");
        a.create().withMode(CreateMode.EPHEMERAL).forPath(p + "/e");
        a.create().withMode(CreateMode.EPHEMERAL).forPath(p + "x/e");
        a.create().withMode(CreateMode.EPHEMERAL).forPath(p + "e");
        ZooKeeper z = a.getZookeeperClient().getZooKeeper();
        // getEphemerals(prefix) matches path prefixes, not just subtrees
        for (String q : new String[] {p, p + "/", p + "x", root + "/e", root + "/ep/e", root + "/nomatch"}) {
            try {
                out("getEphemerals(" + rel(q) + ") " + z.getEphemerals(q).stream().map(CuratorRecipes::rel).sorted().toList());
            } catch (Exception e) {
                out("getEphemerals(" + rel(q) + ") " + exc(e));
            }
        }
        out("b getEphemerals " + b.getZookeeperClient().getZooKeeper().getEphemerals(p));
        out("allChildrenNumber /zookeeper " + z.getAllChildrenNumber("/zookeeper"));
        out("allChildrenNumber " + rel(p) + " " + z.getAllChildrenNumber(p) + " leaf " + z.getAllChildrenNumber(p + "/e"));
        try {
            out("allChildrenNumber bad path " + z.getAllChildrenNumber("noslash"));
        } catch (Exception e) {
            out("allChildrenNumber bad path " + exc(e));
        }
    }
}

/*
 * CuratorCheck: Apache Curator 5 against a ZooKeeper-protocol server (zetcd or ZooKeeper).
 * Usage: CuratorCheck HOST:PORT ROOT. Prints "ok <step>" per step; exits 1 on the first failure.
 * Steps: createContainers, InterProcessMutex (two clients contend), LeaderLatch (fail-over),
 * PersistentWatcher (recursive), and a transaction (success, then a failing one).
 */

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.watch.PersistentWatcher;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.data.Stat;

public final class CuratorCheck {
    private static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
    }

    private static CuratorFramework client(String server) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(
            server, 10000, 10000, new ExponentialBackoffRetry(100, 3));
        c.start();
        check(c.blockUntilConnected(20, TimeUnit.SECONDS), "connect");
        return c;
    }

    public static void main(String[] args) throws Exception {
        String server = args[0];
        String root = args[1];
        CuratorFramework a = client(server);
        CuratorFramework b = client(server);

        a.createContainers(root + "/containers/deep");
        Stat st = a.checkExists().forPath(root + "/containers");
        check(st != null && st.getEphemeralOwner() == 0, "createContainers");
        System.out.println("ok createContainers");

        InterProcessMutex la = new InterProcessMutex(a, root + "/lock");
        InterProcessMutex lb = new InterProcessMutex(b, root + "/lock");
        AtomicInteger inside = new AtomicInteger();
        AtomicInteger peak = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        for (InterProcessMutex m : new InterProcessMutex[] {la, lb}) {
            Thread t = new Thread(() -> {
                try {
                    for (int i = 0; i < 5; i++) {
                        check(m.acquire(20, TimeUnit.SECONDS), "acquire");
                        peak.accumulateAndGet(inside.incrementAndGet(), Math::max);
                        Thread.sleep(5);
                        inside.decrementAndGet();
                        m.release();
                    }
                } catch (Exception e) {
                    check(false, "mutex " + e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join(60000);
        }
        check(peak.get() == 1, "mutual exclusion");
        System.out.println("ok InterProcessMutex");

        LeaderLatch first = new LeaderLatch(a, root + "/leader", "a");
        LeaderLatch second = new LeaderLatch(b, root + "/leader", "b");
        first.start();
        check(first.await(20, TimeUnit.SECONDS), "first leader");
        second.start();
        Thread.sleep(300);
        check(!second.hasLeadership(), "one leader at a time");
        first.close();
        check(second.await(20, TimeUnit.SECONDS), "fail-over");
        second.close();
        System.out.println("ok LeaderLatch");

        List<String> events = new CopyOnWriteArrayList<>();
        CountDownLatch seen = new CountDownLatch(3);
        a.create().forPath(root + "/pw");
        PersistentWatcher pw = new PersistentWatcher(a, root + "/pw", true);
        pw.getListenable().addListener((WatchedEvent e) -> {
            events.add(e.getType() + " " + e.getPath().substring(root.length()));
            seen.countDown();
        });
        pw.start();
        Thread.sleep(300);
        b.create().forPath(root + "/pw/kid");
        b.setData().forPath(root + "/pw/kid", "x".getBytes(StandardCharsets.UTF_8));
        b.delete().forPath(root + "/pw/kid");
        check(seen.await(20, TimeUnit.SECONDS), "persistent watcher events " + events);
        check(events.get(0).equals("NodeCreated /pw/kid"), "created " + events);
        check(events.get(1).equals("NodeDataChanged /pw/kid"), "changed " + events);
        check(events.get(2).equals("NodeDeleted /pw/kid"), "deleted " + events);
        pw.close();
        System.out.println("ok PersistentWatcher");

        CuratorOp c1 = a.transactionOp().create().forPath(root + "/tx", "1".getBytes(StandardCharsets.UTF_8));
        CuratorOp c2 = a.transactionOp().setData().forPath(root + "/tx", "2".getBytes(StandardCharsets.UTF_8));
        CuratorOp c3 = a.transactionOp().check().withVersion(1).forPath(root + "/tx");
        Collection<CuratorTransactionResult> results = a.transaction().forOperations(c1, c2, c3);
        check(results.size() == 3, "transaction results");
        check(new String(a.getData().forPath(root + "/tx"), StandardCharsets.UTF_8).equals("2"), "tx data");
        CuratorOp bad1 = a.transactionOp().create().forPath(root + "/tx2");
        CuratorOp bad2 = a.transactionOp().check().withVersion(7).forPath(root + "/tx");
        try {
            a.transaction().forOperations(bad1, bad2);
            check(false, "failing transaction succeeded");
        } catch (KeeperException.BadVersionException e) {
            check(a.checkExists().forPath(root + "/tx2") == null, "rolled back");
        }
        System.out.println("ok transaction");
        a.close();
        b.close();
        System.out.println("ok all");
    }
}

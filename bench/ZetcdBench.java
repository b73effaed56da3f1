/*
 * ZetcdBench: a closed-loop load generator for ZooKeeper-protocol servers (ZooKeeper itself and
 * zetcd), built on the stock Apache ZooKeeper Java client's asynchronous API.
 *
 * Each of S sessions keeps K requests outstanding: every completion callback (which runs on that
 * session's client event thread) records the latency and immediately issues the next request.
 * After W seconds of warm-up the measured window of T seconds starts; completions inside the
 * window are counted and their latencies go into a per-session log-linear histogram (exact to
 * 1 us below 2 ms, 0.1% relative error above), merged at the end.
 *
 * The tool prepares its own keyspace under a unique root znode, runs, deletes what it created
 * (bounded by --cleanup-timeout) and prints ONE JSON line on stdout. bench/run.py compiles it
 * (javac, into a cache directory keyed by the source hash) and drives it.
 *
 * Ops:
 *   get       getData of a random key znode (--keys znodes of --value-size bytes)
 *   exists    exists of a random key znode
 *   children  getChildren of a random parent (--keys parents with --children children each)
 *   set       setData (version -1) of a random key znode with --value-size bytes
 *   create    persistent create of a new znode <root>/new/s<session>/n<seq> of --value-size bytes
 *   populate  create --keys znodes of --value-size bytes under <root>/d<i/1000>/k<i> as fast as
 *             the pipeline allows, report the rate and leave them in place (memory measurements)
 *
 * Exit status: 0 ok, 1 some requests failed or were lost, 2 usage/connect/setup failure,
 * 3 watchdog (the whole run exceeded its time budget).
 */

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;

import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

public final class ZetcdBench {

    // ------------------------------------------------------------------ options

    static final class Options {
        String server;
        String op;
        int sessions = 1;
        int inflight = 1;
        double seconds = 10.0;
        double warmup = 3.0;
        int keys = 1000;
        int valueSize = 100;
        int children = 10;
        int sessionTimeoutMs = 30000;
        double setupTimeout = 120.0;
        double drain = 5.0;
        double cleanupTimeout = 60.0;
        boolean cleanup = true;
        String root;
        boolean verbose;
    }

    static final String USAGE = String.join("\n",
        "usage: ZetcdBench --server HOST:PORT --op OP [options]",
        "  --op get|exists|children|set|create|populate",
        "  --sessions S          client sessions (one TCP connection each)       [1]",
        "  --inflight K          outstanding requests per session                [1]",
        "  --seconds T           measured window                                 [10]",
        "  --warmup W            unmeasured warm-up before the window            [3]",
        "  --keys N              key znodes (children: parents; populate: count) [1000]",
        "  --value-size B        bytes per znode value                           [100]",
        "  --children C          children per parent, 'children' op only         [10]",
        "  --session-timeout-ms  requested session timeout                       [30000]",
        "  --setup-timeout S     bound for connecting and preparing the keyspace [120]",
        "  --drain S             bound for in-flight requests after the window   [5]",
        "  --cleanup-timeout S   bound for deleting the keyspace                 [60]",
        "  --no-cleanup          leave the keyspace in place",
        "  --root PATH           root znode to use (default /zetcd-bench-<random>)",
        "  -v, --verbose         progress on stderr");

    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--no-cleanup")) { o.cleanup = false; continue; }
            if (a.equals("-v") || a.equals("--verbose")) { o.verbose = true; continue; }
            if (a.equals("-h") || a.equals("--help")) { System.out.println(USAGE); System.exit(0); }
            if (i + 1 >= args.length) throw new IllegalArgumentException("missing value for " + a);
            String v = args[++i];
            switch (a) {
                case "--server": o.server = v; break;
                case "--op": o.op = v; break;
                case "--sessions": o.sessions = Integer.parseInt(v); break;
                case "--inflight": o.inflight = Integer.parseInt(v); break;
                case "--seconds": o.seconds = Double.parseDouble(v); break;
                case "--warmup": o.warmup = Double.parseDouble(v); break;
                case "--keys": o.keys = Integer.parseInt(v); break;
                case "--value-size": o.valueSize = Integer.parseInt(v); break;
                case "--children": o.children = Integer.parseInt(v); break;
                case "--session-timeout-ms": o.sessionTimeoutMs = Integer.parseInt(v); break;
                case "--setup-timeout": o.setupTimeout = Double.parseDouble(v); break;
                case "--drain": o.drain = Double.parseDouble(v); break;
                case "--cleanup-timeout": o.cleanupTimeout = Double.parseDouble(v); break;
                case "--root": o.root = v; break;
                default: throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (o.server == null || o.op == null) throw new IllegalArgumentException("--server and --op are required");
        if (!Arrays.asList("get", "exists", "children", "set", "create", "populate").contains(o.op)) {
            throw new IllegalArgumentException("unknown op " + o.op);
        }
        if (o.sessions < 1 || o.inflight < 1 || o.keys < 1 || o.valueSize < 0 || o.children < 0) {
            throw new IllegalArgumentException("sessions, inflight and keys must be >= 1");
        }
        if (o.root == null) {
            o.root = String.format("/zetcd-bench-%08x", ThreadLocalRandom.current().nextInt());
        }
        return o;
    }

    static boolean verbose;

    static void note(String msg) {
        if (verbose) System.err.printf(Locale.ROOT, "ZetcdBench: %s%n", msg);
    }

    // ------------------------------------------------------------------ latency histogram

    /** Microsecond latencies: 1 us buckets below 2048 us, then 1024 buckets per power of two. */
    static final class Histogram {
        static final int LINEAR = 2048;            // 2^11
        static final int SUB_BITS = 10;            // 1024 sub-buckets per octave
        static final int OCTAVES = 64 - 11;
        final long[] counts = new long[LINEAR + OCTAVES * (1 << SUB_BITS)];
        long total;
        long max;
        double sum;

        static int index(long us) {
            if (us < LINEAR) return (int) Math.max(us, 0);
            int exp = 63 - Long.numberOfLeadingZeros(us);           // >= 11
            int sub = (int) ((us >>> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1));
            return LINEAR + (exp - 11) * (1 << SUB_BITS) + sub;
        }

        /** Highest value that maps to bucket i (a conservative percentile). */
        static long upperBound(int i) {
            if (i < LINEAR) return i;
            int octave = (i - LINEAR) >> SUB_BITS;
            int sub = (i - LINEAR) & ((1 << SUB_BITS) - 1);
            int exp = octave + 11;
            long base = 1L << exp;
            long width = 1L << (exp - SUB_BITS);
            return base + (sub + 1) * width - 1;
        }

        void record(long us) {
            counts[index(us)]++;
            total++;
            sum += us;
            if (us > max) max = us;
        }

        void merge(Histogram other) {
            for (int i = 0; i < counts.length; i++) counts[i] += other.counts[i];
            total += other.total;
            sum += other.sum;
            max = Math.max(max, other.max);
        }

        long percentile(double p) {
            if (total == 0) return 0;
            long rank = (long) Math.ceil(p / 100.0 * total);
            if (rank < 1) rank = 1;
            long seen = 0;
            for (int i = 0; i < counts.length; i++) {
                seen += counts[i];
                if (seen >= rank) return Math.min(upperBound(i), max);
            }
            return max;
        }

        double mean() {
            return total == 0 ? 0.0 : sum / total;
        }
    }

    // ------------------------------------------------------------------ sessions

    static final int WARMUP = 0, MEASURE = 1, STOP = 2;

    static ZooKeeper connect(String server, int timeoutMs, double waitSeconds, AtomicLong disconnects)
            throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        Watcher watcher = (WatchedEvent e) -> {
            if (e.getType() != Watcher.Event.EventType.None) return;
            switch (e.getState()) {
                case SyncConnected: connected.countDown(); break;
                case Disconnected: case Expired: case AuthFailed: disconnects.incrementAndGet(); break;
                default: break;
            }
        };
        ZooKeeper zk = new ZooKeeper(server, timeoutMs, watcher);
        if (!connected.await((long) (waitSeconds * 1000), TimeUnit.MILLISECONDS)) {
            zk.close(1000);
            throw new IllegalStateException("session did not connect to " + server);
        }
        return zk;
    }

    /** One session's load loop: K lanes, each re-issuing from its own completion callback. */
    static final class Worker implements AsyncCallback.DataCallback, AsyncCallback.StatCallback,
            AsyncCallback.ChildrenCallback, AsyncCallback.StringCallback {
        final int id;
        final ZooKeeper zk;
        final Options o;
        final String[] targets;    // key znodes (get/exists/set) or parents (children)
        final String createDir;    // create: <root>/new/s<id>
        final byte[] value;
        final AtomicInteger outstanding = new AtomicInteger();
        final AtomicLong createSeq = new AtomicLong();
        final Histogram hist = new Histogram();
        final Map<String, Long> errors = new TreeMap<>();   // only touched on the event thread
        volatile int phase = WARMUP;
        long ok;                                            // only touched on the event thread

        Worker(int id, ZooKeeper zk, Options o, String[] targets, String createDir, byte[] value) {
            this.id = id;
            this.zk = zk;
            this.o = o;
            this.targets = targets;
            this.createDir = createDir;
            this.value = value;
        }

        void start() {
            for (int i = 0; i < o.inflight; i++) {
                outstanding.incrementAndGet();
                issue();
            }
        }

        void issue() {
            Long t0 = System.nanoTime();
            switch (o.op) {
                case "get":
                    zk.getData(pick(), false, (AsyncCallback.DataCallback) this, t0);
                    break;
                case "exists":
                    zk.exists(pick(), false, (AsyncCallback.StatCallback) this, t0);
                    break;
                case "children":
                    zk.getChildren(pick(), false, (AsyncCallback.ChildrenCallback) this, t0);
                    break;
                case "set":
                    zk.setData(pick(), value, -1, (AsyncCallback.StatCallback) this, t0);
                    break;
                case "create":
                    zk.create(createDir + "/n" + createSeq.getAndIncrement(), value,
                        ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                        (AsyncCallback.StringCallback) this, t0);
                    break;
                default:
                    throw new IllegalStateException(o.op);
            }
        }

        String pick() {
            return targets[ThreadLocalRandom.current().nextInt(targets.length)];
        }

        void done(int rc, Object ctx) {
            long us = (System.nanoTime() - (Long) ctx) / 1000;
            int p = phase;
            if (p == MEASURE) {
                if (rc == 0) {
                    ok++;
                    hist.record(us);
                } else {
                    errors.merge(KeeperException.Code.get(rc).name(), 1L, Long::sum);
                }
            }
            if (p == STOP) {
                outstanding.decrementAndGet();
            } else {
                issue();
            }
        }

        @Override public void processResult(int rc, String path, Object ctx, byte[] data, Stat stat) { done(rc, ctx); }
        @Override public void processResult(int rc, String path, Object ctx, Stat stat) { done(rc, ctx); }
        @Override public void processResult(int rc, String path, Object ctx, List<String> children) { done(rc, ctx); }
        @Override public void processResult(int rc, String path, Object ctx, String name) { done(rc, ctx); }
    }

    // ------------------------------------------------------------------ bulk create / delete

    /**
     * Create (or delete) paths.get(0..n-1) through all sessions, each keeping K requests in flight.
     * NODEEXISTS on create and NONODE on delete count as success. Returns the number of failures,
     * or -1 if the deadline passed first.
     */
    static long bulk(List<ZooKeeper> zks, int inflight, int n, IntFunction<String> path,
                     boolean create, byte[] data, long deadlineNanos) throws InterruptedException {
        if (n == 0) return 0;
        AtomicInteger cursor = new AtomicInteger();
        AtomicLong failures = new AtomicLong();
        AtomicInteger remaining = new AtomicInteger(n);
        CountDownLatch finished = new CountDownLatch(1);
        final class Lane implements AsyncCallback.StringCallback, AsyncCallback.VoidCallback {
            final ZooKeeper zk;
            Lane(ZooKeeper zk) { this.zk = zk; }

            void next() {
                int i = cursor.getAndIncrement();
                if (i >= n || System.nanoTime() > deadlineNanos) return;
                if (create) {
                    zk.create(path.apply(i), data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, this, null);
                } else {
                    zk.delete(path.apply(i), -1, this, null);
                }
            }

            void completed(int rc) {
                boolean fine = rc == 0
                    || (create && rc == KeeperException.Code.NODEEXISTS.intValue())
                    || (!create && rc == KeeperException.Code.NONODE.intValue());
                if (!fine) failures.incrementAndGet();
                if (remaining.decrementAndGet() == 0) finished.countDown();
                next();
            }

            @Override public void processResult(int rc, String p, Object ctx, String name) { completed(rc); }
            @Override public void processResult(int rc, String p, Object ctx) { completed(rc); }
        }
        for (ZooKeeper zk : zks) {
            for (int k = 0; k < inflight; k++) new Lane(zk).next();
        }
        long waitNanos = deadlineNanos - System.nanoTime();
        if (!finished.await(Math.max(waitNanos, 0), TimeUnit.NANOSECONDS)) return -1;
        return failures.get();
    }

    // ------------------------------------------------------------------ JSON

    static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static String num(double d) {
        return String.format(Locale.ROOT, "%.3f", d);
    }

    // ------------------------------------------------------------------ main

    public static void main(String[] args) throws Exception {
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("ZetcdBench: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        verbose = o.verbose;
        double budget = o.setupTimeout + o.warmup + o.seconds + o.drain + o.cleanupTimeout + 30.0;
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep((long) (budget * 1000));
                System.err.println("ZetcdBench: watchdog: run exceeded " + budget + " s");
                Runtime.getRuntime().halt(3);
            } catch (InterruptedException ignored) {
                // normal exit
            }
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        int status;
        try {
            status = run(o);
        } catch (Exception e) {
            System.err.println("ZetcdBench: " + e);
            status = 2;
        }
        System.out.flush();
        Runtime.getRuntime().halt(status);   // do not wait for client threads
    }

    static int run(Options o) throws Exception {
        byte[] value = new byte[o.valueSize];
        byte[] pattern = "zetcd-bench-value-".getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < value.length; i++) value[i] = pattern[i % pattern.length];

        long setupStart = System.nanoTime();
        long setupDeadline = setupStart + (long) (o.setupTimeout * 1e9);
        AtomicLong disconnects = new AtomicLong();
        List<ZooKeeper> zks = new ArrayList<>();
        try {
            for (int s = 0; s < o.sessions; s++) {
                double left = (setupDeadline - System.nanoTime()) / 1e9;
                zks.add(connect(o.server, o.sessionTimeoutMs, Math.max(left, 0.1), disconnects));
            }
            note(o.sessions + " sessions connected");
            return runConnected(o, zks, value, setupStart, setupDeadline, disconnects);
        } finally {
            for (ZooKeeper zk : zks) {
                try {
                    zk.close(1000);
                } catch (Exception ignored) {
                    // best effort
                }
            }
        }
    }

    static int runConnected(Options o, List<ZooKeeper> zks, byte[] value, long setupStart,
                            long setupDeadline, AtomicLong disconnects) throws Exception {
        final String root = o.root;
        ZooKeeper first = zks.get(0);
        try {
            first.create(root, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException ignored) {
            // reuse (--root given twice)
        }

        // Levels of the keyspace: each level's znodes are created after the previous level's.
        List<String[]> levels = new ArrayList<>();
        String[] targets = new String[0];
        switch (o.op) {
            case "get": case "exists": case "set": {
                targets = new String[o.keys];
                for (int i = 0; i < o.keys; i++) targets[i] = root + "/k" + i;
                levels.add(targets);
                break;
            }
            case "children": {
                targets = new String[o.keys];
                String[] kids = new String[o.keys * o.children];
                for (int i = 0; i < o.keys; i++) {
                    targets[i] = root + "/k" + i;
                    for (int c = 0; c < o.children; c++) kids[i * o.children + c] = targets[i] + "/c" + c;
                }
                levels.add(targets);
                levels.add(kids);
                break;
            }
            case "create": {
                String[] dirs = new String[o.sessions];
                levels.add(new String[] {root + "/new"});
                for (int s = 0; s < o.sessions; s++) dirs[s] = root + "/new/s" + s;
                levels.add(dirs);
                break;
            }
            case "populate": {
                int perDir = 1000;
                int ndirs = (o.keys + perDir - 1) / perDir;
                String[] dirs = new String[ndirs];
                for (int d = 0; d < ndirs; d++) dirs[d] = root + "/d" + d;
                String[] leaves = new String[o.keys];
                for (int i = 0; i < o.keys; i++) leaves[i] = dirs[i / perDir] + "/k" + i;
                levels.add(dirs);
                levels.add(leaves);
                break;
            }
            default:
                throw new IllegalStateException(o.op);
        }

        // Setup and cleanup keep at least 32 requests in flight whatever the case's own pipeline.
        final int bulkLanes = Math.max(o.inflight, (32 + zks.size() - 1) / zks.size());
        boolean populate = o.op.equals("populate");
        long populateStart = 0;
        for (int l = 0; l < levels.size(); l++) {
            String[] level = levels.get(l);
            boolean leaf = l == levels.size() - 1;
            if (populate && leaf) populateStart = System.nanoTime();
            byte[] data = o.op.equals("create") ? new byte[0] : value;
            long failed = bulk(zks, bulkLanes, level.length, i -> level[i], true, data, setupDeadline);
            if (failed != 0) {
                throw new IllegalStateException(failed < 0
                    ? "keyspace setup did not finish within --setup-timeout"
                    : failed + " keyspace creates failed");
            }
        }
        long setupEnd = System.nanoTime();
        note("keyspace ready in " + num((setupEnd - setupStart) / 1e9) + " s");

        if (populate) {
            double secs = (setupEnd - populateStart) / 1e9;
            System.out.println("{\"tool\":\"ZetcdBench\",\"server\":" + q(o.server)
                + ",\"op\":\"populate\",\"sessions\":" + o.sessions + ",\"inflight\":" + o.inflight
                + ",\"root\":" + q(root) + ",\"znodes\":" + o.keys + ",\"value_size\":" + o.valueSize
                + ",\"seconds\":" + num(secs) + ",\"creates_per_sec\":" + num(o.keys / secs)
                + ",\"disconnects\":" + disconnects.get() + "}");
            return 0;
        }

        // ---- load
        Worker[] workers = new Worker[zks.size()];
        for (int s = 0; s < workers.length; s++) {
            workers[s] = new Worker(s, zks.get(s), o, targets, root + "/new/s" + s, value);
        }
        for (Worker w : workers) w.start();
        Thread.sleep((long) (o.warmup * 1000));
        long windowStart = System.nanoTime();
        for (Worker w : workers) w.phase = MEASURE;
        note("window start");
        Thread.sleep((long) (o.seconds * 1000));
        for (Worker w : workers) w.phase = STOP;
        long windowEnd = System.nanoTime();
        note("window end");
        long drainDeadline = windowEnd + (long) (o.drain * 1e9);
        long lost;
        while (true) {
            lost = 0;
            for (Worker w : workers) lost += w.outstanding.get();
            if (lost == 0 || System.nanoTime() > drainDeadline) break;
            Thread.sleep(5);
        }

        // A worker's counters are written only on its session's event thread, each before that
        // thread's later decrement of `outstanding`; reading `outstanding` (atomic) above makes
        // them visible here. Callbacks after STOP touch no counter, so the totals are final
        // even if some requests were lost.
        Histogram all = new Histogram();
        long ok = 0;
        Map<String, Long> errors = new TreeMap<>();
        for (Worker w : workers) {
            all.merge(w.hist);
            ok += w.ok;
            for (Map.Entry<String, Long> e : w.errors.entrySet()) errors.merge(e.getKey(), e.getValue(), Long::sum);
        }
        double window = (windowEnd - windowStart) / 1e9;

        // ---- cleanup (bounded)
        boolean cleaned = !o.cleanup;
        double cleanupSecs = 0;
        if (o.cleanup) {
            long c0 = System.nanoTime();
            long deadline = c0 + (long) (o.cleanupTimeout * 1e9);
            boolean complete = true;
            if (o.op.equals("create")) {
                for (Worker w : workers) {
                    String dir = w.createDir;
                    long n = w.createSeq.get();
                    long r = bulk(zks, bulkLanes, (int) n, i -> dir + "/n" + i, false, null, deadline);
                    if (r != 0) { complete = false; break; }
                }
            }
            for (int l = levels.size() - 1; l >= 0 && complete; l--) {
                String[] level = levels.get(l);
                if (bulk(zks, bulkLanes, level.length, i -> level[i], false, null, deadline) != 0) complete = false;
            }
            if (complete) {
                try {
                    first.delete(root, -1);
                } catch (KeeperException e) {
                    complete = false;
                }
            }
            cleaned = complete;
            cleanupSecs = (System.nanoTime() - c0) / 1e9;
            note("cleanup " + (complete ? "done" : "incomplete") + " in " + num(cleanupSecs) + " s");
        }

        StringBuilder errs = new StringBuilder("{");
        long errTotal = 0;
        for (Map.Entry<String, Long> e : errors.entrySet()) {
            if (errs.length() > 1) errs.append(',');
            errs.append(q(e.getKey())).append(':').append(e.getValue());
            errTotal += e.getValue();
        }
        errs.append('}');
        System.out.println("{\"tool\":\"ZetcdBench\",\"server\":" + q(o.server)
            + ",\"op\":" + q(o.op) + ",\"sessions\":" + o.sessions + ",\"inflight\":" + o.inflight
            + ",\"keys\":" + o.keys + ",\"value_size\":" + o.valueSize
            + ",\"warmup\":" + num(o.warmup) + ",\"seconds\":" + num(window)
            + ",\"ops\":" + ok + ",\"ops_per_sec\":" + num(ok / window)
            + ",\"mean_us\":" + num(all.mean())
            + ",\"p50_us\":" + all.percentile(50) + ",\"p90_us\":" + all.percentile(90)
            + ",\"p99_us\":" + all.percentile(99) + ",\"p999_us\":" + all.percentile(99.9)
            + ",\"max_us\":" + all.max
            + ",\"errors\":" + errs + ",\"error_count\":" + errTotal + ",\"lost\":" + lost
            + ",\"disconnects\":" + disconnects.get()
            + ",\"setup_seconds\":" + num((setupEnd - setupStart) / 1e9)
            + ",\"cleanup_seconds\":" + num(cleanupSecs) + ",\"cleanup_complete\":" + cleaned + "}");
        return (errTotal > 0 || lost > 0) ? 1 : 0;
    }
}

/* The ZooKeeper C client (libzookeeper_mt 3.8) against one server, for tests/test_clients.py.
 *
 *   client_check HOST:PORT ROOT                  print the transcript of the checks below
 *   client_check HOST:PORT ROOT multi-limit N    one zoo_multi of N creates under ROOT
 *
 * The transcript covers what the C client does in its own way: the buffer-length semantics of
 * zoo_get and of create's path buffer, zoo_create2 with every flag (container and TTL included),
 * Stat fields, child lists as returned (raw, unsorted), watches (global watcher, one-shot
 * semantics, zoo_remove_watches), zoo_multi/zoo_amulti results per op, the completion order of
 * a pipeline of async calls, ACLs and auth (digest, auth failure), invalid paths, sync and
 * chroot. The test runs it against ZooKeeper and zetcd with the same ROOT (a node that does not
 * exist yet; everything is created under it, and each server is fresh) and wants equal output.
 *
 * Each line is deterministic: zxids are printed as labels Z1, Z2, ... by first appearance,
 * session ids as the handle that owns them (h1 ...), times only as ctime=ok (within 10 min of
 * now) and how mtime relates to ctime. Watch events are collected and printed at barriers: an
 * async sync on each handle, whose completion comes after every event the server sent before
 * it. Nothing depends on timing: no session expiry, reconnects, or TTL/container reaping.
 *
 * multi-limit prints zoo_multi's result and the per-op errors (runs of equal errors as one
 * line), then ROOT's child count, then "done": zetcd refuses a multi it cannot write as one
 * etcd transaction with BadArguments, as a failed multi, and the client must survive that.
 *
 * Build: gcc -DTHREADED -I/usr/include/zookeeper client_check.c -lzookeeper_mt -lpthread
 */
#include <zookeeper.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define P(...) do { printf(__VA_ARGS__); printf("\n"); fflush(stdout); } while (0)

static const char *HOST;
static const char *ROOT;

/* ROOT followed by rel, for immediate use: the result stays valid for the next 63 calls */
static const char *at(const char *rel) {
    static char ring[64][512];
    static int next;
    char *b = ring[next++ % 64];
    snprintf(b, sizeof ring[0], "%s%s", ROOT, rel);
    return b;
}

/* declares char NAME[] holding ROOT followed by rel, for paths a section keeps using */
#define NODE(name, rel) char name[512]; snprintf(name, sizeof name, "%s%s", ROOT, rel)

static const char *rcn(int rc) {
    static char b[32];
    switch (rc) {
#define C(x) case x: return #x;
    C(ZOK) C(ZSYSTEMERROR) C(ZRUNTIMEINCONSISTENCY) C(ZDATAINCONSISTENCY) C(ZCONNECTIONLOSS)
    C(ZMARSHALLINGERROR) C(ZUNIMPLEMENTED) C(ZOPERATIONTIMEOUT) C(ZBADARGUMENTS) C(ZINVALIDSTATE)
    C(ZNEWCONFIGNOQUORUM) C(ZRECONFIGINPROGRESS) C(ZSSLCONNECTIONERROR) C(ZAPIERROR) C(ZNONODE)
    C(ZNOAUTH) C(ZBADVERSION) C(ZNOCHILDRENFOREPHEMERALS) C(ZNODEEXISTS) C(ZNOTEMPTY)
    C(ZSESSIONEXPIRED) C(ZINVALIDCALLBACK) C(ZINVALIDACL) C(ZAUTHFAILED) C(ZCLOSING) C(ZNOTHING)
    C(ZSESSIONMOVED) C(ZNOTREADONLY) C(ZEPHEMERALONLOCALSESSION) C(ZNOWATCHER)
    C(ZRECONFIGDISABLED) C(ZSESSIONCLOSEDREQUIRESASLAUTH) C(ZTHROTTLEDOP)
#undef C
    }
    snprintf(b, sizeof b, "rc%d", rc);
    return b;
}

static const char *type_name(int t, char *b) {
    if (t == ZOO_CREATED_EVENT) return "CREATED";
    if (t == ZOO_DELETED_EVENT) return "DELETED";
    if (t == ZOO_CHANGED_EVENT) return "CHANGED";
    if (t == ZOO_CHILD_EVENT) return "CHILD";
    if (t == ZOO_SESSION_EVENT) return "SESSION";
    if (t == ZOO_NOTWATCHING_EVENT) return "NOTWATCHING";
    sprintf(b, "type%d", t);
    return b;
}

static const char *state_name(int s, char *b) {
    if (s == ZOO_EXPIRED_SESSION_STATE) return "EXPIRED";
    if (s == ZOO_AUTH_FAILED_STATE) return "AUTH_FAILED";
    if (s == ZOO_CONNECTING_STATE) return "CONNECTING";
    if (s == ZOO_ASSOCIATING_STATE) return "ASSOCIATING";
    if (s == ZOO_CONNECTED_STATE) return "CONNECTED";
    if (s == ZOO_READONLY_STATE) return "READONLY";
    if (s == ZOO_NOTCONNECTED_STATE) return "NOTCONNECTED";
    sprintf(b, "state%d", s);
    return b;
}

static const char *flags_name(int f) {
    static char b[32];
    if (f == ZOO_PERSISTENT) return "PERSISTENT";
    if (f == ZOO_EPHEMERAL) return "EPHEMERAL";
    if (f == ZOO_PERSISTENT_SEQUENTIAL) return "PERSISTENT_SEQ";
    if (f == ZOO_EPHEMERAL_SEQUENTIAL) return "EPHEMERAL_SEQ";
    if (f == ZOO_CONTAINER) return "CONTAINER";
    if (f == ZOO_PERSISTENT_WITH_TTL) return "TTL";
    if (f == ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL) return "TTL_SEQ";
    sprintf(b, "flags%d", f);
    return b;
}

/* ---------- the event log: every watcher call, printed at barriers ---------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
#define MAXEV 1024
static char *events[MAXEV];
static int nevents;
/* last session state seen by the global watcher of handle hN ("gN" context) */
static int session_state[8];

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    char b1[32], b2[32], line[600];
    const char *label = ctx ? (const char *)ctx : "?";
    snprintf(line, sizeof line, "ev[%s] %s %s '%s'", label, type_name(type, b1),
             state_name(state, b2), path ? path : "(null)");
    pthread_mutex_lock(&mu);
    if (nevents < MAXEV) events[nevents++] = strdup(line);
    if (type == ZOO_SESSION_EVENT && label[0] == 'g' && label[1] >= '1' && label[1] <= '7' && !label[2])
        session_state[label[1] - '0'] = state;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void flush_events(const char *why) {
    pthread_mutex_lock(&mu);
    P("  events(%s): %d", why, nevents);
    for (int i = 0; i < nevents; i++) { P("    %s", events[i]); free(events[i]); }
    nevents = 0;
    pthread_mutex_unlock(&mu);
}

static void deadline(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

static int wait_state(int idx, int state, int ms) {
    struct timespec ts;
    deadline(&ts, ms);
    pthread_mutex_lock(&mu);
    while (session_state[idx] != state)
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) break;
    int ok = session_state[idx] == state;
    pthread_mutex_unlock(&mu);
    return ok;
}

struct waiter { int done, rc; };
static void void_done(int rc, const void *data) {
    struct waiter *w = (struct waiter *)data;
    pthread_mutex_lock(&mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
static void string_done(int rc, const char *value, const void *data) { (void)value; void_done(rc, data); }
static int wait_done(struct waiter *w, int ms) {
    struct timespec ts;
    deadline(&ts, ms);
    pthread_mutex_lock(&mu);
    while (!w->done)
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) break;
    int done = w->done;
    pthread_mutex_unlock(&mu);
    return done;
}

/* zoo_async (sync) on "/": its completion runs after every watch event sent before it */
static int barrier(zhandle_t *zh) {
    struct waiter w = {0, 0};
    int rc = zoo_async(zh, "/", string_done, &w);
    if (rc != ZOK) return rc;
    return wait_done(&w, 20000) ? w.rc : ZOPERATIONTIMEOUT;
}

static void settle(zhandle_t **hs, int n, const char *why) {
    for (int i = 0; i < n; i++) {
        int rc = barrier(hs[i]);
        if (rc != ZOK) P("  barrier[%d] -> %s", i, rcn(rc));
    }
    flush_events(why);
}

/* ---------- printing Stat, child lists and ACLs ---------- */

static int64_t SID[8]; /* session id of hN */
static int64_t zxids[4096];
static int nzxids;

static int zxid_label(int64_t z) {
    for (int i = 0; i < nzxids; i++) if (zxids[i] == z) return i + 1;
    if (nzxids < (int)(sizeof zxids / sizeof *zxids)) zxids[nzxids++] = z;
    return nzxids;
}

static const char *owner(int64_t eo, char *b) {
    if (eo == 0) return "0";
    for (int i = 1; i < 8; i++) if (SID[i] == eo) { sprintf(b, "h%d", i); return b; }
    return "unknown-session";
}

static const char *stat_str(const struct Stat *s) {
    static char b[300];
    char ob[40];
    long long now = time(NULL), ct = s->ctime / 1000;
    const char *ctime_ok = s->ctime == 0 ? "zero" : (ct > now - 600 && ct < now + 600) ? "ok" : "ODD";
    /* mtime==ctime while the node was never changed; after a change only mtime>=ctime is sure */
    const char *mtime = s->mzxid == s->czxid ? (s->mtime == s->ctime ? "mtime==ctime" : "mtime!=ctime")
                                             : (s->mtime >= s->ctime ? "mtime>=ctime" : "mtime<ctime");
    int cz = zxid_label(s->czxid), mz = zxid_label(s->mzxid), pz = zxid_label(s->pzxid);
    snprintf(b, sizeof b, "v=%d cv=%d av=%d dl=%d nc=%d eo=%s cz=Z%d mz=Z%d pz=Z%d ctime=%s %s",
             s->version, s->cversion, s->aversion, s->dataLength, s->numChildren,
             owner(s->ephemeralOwner, ob), cz, mz, pz, ctime_ok, mtime);
    return b;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void print_children(const char *prefix, const struct String_vector *v) {
    static char raw[16384], sorted[16384];
    char **names = malloc(sizeof(char *) * (v->count + 1));
    raw[0] = sorted[0] = 0;
    for (int i = 0; i < v->count; i++) {
        names[i] = v->data[i];
        if (i) strcat(raw, ",");
        strncat(raw, v->data[i], sizeof raw - strlen(raw) - 2);
    }
    qsort(names, v->count, sizeof(char *), cmp_str);
    for (int i = 0; i < v->count; i++) {
        if (i) strcat(sorted, ",");
        strncat(sorted, names[i], sizeof sorted - strlen(sorted) - 2);
    }
    free(names);
    P("%s n=%d sorted=[%s]", prefix, v->count, sorted);
    P("%s       raw=[%s]%s", prefix, raw, strcmp(raw, sorted) ? "  (UNSORTED)" : "");
}

static void print_acl(const struct ACL_vector *a) {
    char b[2048] = "";
    for (int i = 0; i < a->count; i++) {
        char e[400];
        snprintf(e, sizeof e, "%s%d:%s:%s", i ? " " : "", a->data[i].perms, a->data[i].id.scheme, a->data[i].id.id);
        strncat(b, e, sizeof b - strlen(b) - 1);
    }
    P("   acl(%d)=[%s]", a->count, b);
}

/* ---------- synchronous calls that print what they did ---------- */

static char last_created[1024]; /* the path the last successful create() returned */

static int create(zhandle_t *zh, const char *path, const char *val, int vlen, const struct ACL_vector *acl, int flags) {
    char buf[1024] = "";
    int rc = zoo_create(zh, path, val, vlen, acl ? acl : &ZOO_OPEN_ACL_UNSAFE, flags, buf, sizeof buf);
    P("create %s %s vlen=%d -> %s %s", path, flags_name(flags), vlen, rcn(rc), rc == ZOK ? buf : "");
    if (rc == ZOK) strcpy(last_created, buf);
    return rc;
}

static int create2(zhandle_t *zh, const char *path, const char *val, int vlen, int flags) {
    char buf[1024] = "";
    struct Stat s;
    int rc = zoo_create2(zh, path, val, vlen, &ZOO_OPEN_ACL_UNSAFE, flags, buf, sizeof buf, &s);
    P("create2 %s %s -> %s %s", path, flags_name(flags), rcn(rc), rc == ZOK ? buf : "");
    if (rc == ZOK) { strcpy(last_created, buf); P("   stat %s", stat_str(&s)); }
    return rc;
}

static int create2_ttl(zhandle_t *zh, const char *path, int flags, int64_t ttl) {
    char buf[1024] = "";
    struct Stat s;
    int rc = zoo_create2_ttl(zh, path, "t", 1, &ZOO_OPEN_ACL_UNSAFE, flags, ttl, buf, sizeof buf, &s);
    P("create2_ttl %s %s ttl=%lld -> %s %s", path, flags_name(flags), (long long)ttl, rcn(rc), rc == ZOK ? buf : "");
    if (rc == ZOK) P("   stat %s", stat_str(&s));
    return rc;
}

static int exists(zhandle_t *zh, const char *path, const char *watch) {
    struct Stat s;
    int rc = watch ? zoo_wexists(zh, path, watcher, (void *)watch, &s) : zoo_exists(zh, path, 0, &s);
    P("%s %s%s%s -> %s", watch ? "wexists" : "exists", path, watch ? " w=" : "", watch ? watch : "", rcn(rc));
    if (rc == ZOK) P("   stat %s", stat_str(&s));
    return rc;
}

/* zoo_get with a buffer of buflen bytes: len comes back as min(buflen, data length), or -1
   for a node whose data is null */
static int get(zhandle_t *zh, const char *path, const char *watch, int buflen) {
    char *buf = malloc(buflen + 1);
    memset(buf, '#', buflen);
    int len = buflen;
    struct Stat s;
    int rc = watch ? zoo_wget(zh, path, watcher, (void *)watch, buf, &len, &s) : zoo_get(zh, path, 0, buf, &len, &s);
    const char *w = watch ? " w=" : "";
    if (rc == ZOK) {
        int show = len > 0 ? (len < buflen ? len : buflen) : 0;
        P("%s %s buflen=%d%s%s -> %s len=%d data='%.*s'", watch ? "wget" : "get", path, buflen, w,
          watch ? watch : "", rcn(rc), len, show, buf);
        P("   stat %s", stat_str(&s));
    } else {
        P("%s %s buflen=%d%s%s -> %s", watch ? "wget" : "get", path, buflen, w, watch ? watch : "", rcn(rc));
    }
    free(buf);
    return rc;
}

static int set(zhandle_t *zh, const char *path, const char *val, int vlen, int version) {
    struct Stat s;
    int rc = zoo_set2(zh, path, val, vlen, version, &s);
    P("set2 %s vlen=%d ver=%d -> %s", path, vlen, version, rcn(rc));
    if (rc == ZOK) P("   stat %s", stat_str(&s));
    return rc;
}

static int del(zhandle_t *zh, const char *path, int version) {
    int rc = zoo_delete(zh, path, version);
    P("delete %s ver=%d -> %s", path, version, rcn(rc));
    return rc;
}

static int children(zhandle_t *zh, const char *path, const char *watch) {
    struct String_vector v = {0, 0};
    struct Stat s;
    int rc = watch ? zoo_wget_children2(zh, path, watcher, (void *)watch, &v, &s)
                   : zoo_get_children2(zh, path, 0, &v, &s);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "   kids %s", path);
    P("%s %s%s%s -> %s", watch ? "wget_children2" : "get_children2", path, watch ? " w=" : "", watch ? watch : "", rcn(rc));
    if (rc == ZOK) { print_children(prefix, &v); P("   stat %s", stat_str(&s)); deallocate_String_vector(&v); }
    return rc;
}

static int getacl(zhandle_t *zh, const char *path) {
    struct ACL_vector a = {0, 0};
    struct Stat s;
    int rc = zoo_get_acl(zh, path, &a, &s);
    P("get_acl %s -> %s", path, rcn(rc));
    if (rc == ZOK) { print_acl(&a); P("   stat %s", stat_str(&s)); deallocate_ACL_vector(&a); }
    return rc;
}

static int setacl(zhandle_t *zh, const char *path, int version, int perms, const char *scheme, const char *id) {
    struct ACL acl = {perms, {(char *)scheme, (char *)id}};
    struct ACL_vector v = {1, &acl};
    int rc = zoo_set_acl(zh, path, version, &v);
    P("set_acl %s ver=%d [%d:%s:%s] -> %s", path, version, perms, scheme, id, rcn(rc));
    return rc;
}

static int add_auth(zhandle_t *zh, const char *scheme, const char *cert) {
    struct waiter w = {0, 0};
    int rc = zoo_add_auth(zh, scheme, cert, (int)strlen(cert), void_done, &w);
    if (rc != ZOK) { P("add_auth %s '%s' -> call %s", scheme, cert, rcn(rc)); return rc; }
    int done = wait_done(&w, 20000);
    P("add_auth %s '%s' -> call ZOK, completion %s", scheme, cert, done ? rcn(w.rc) : "TIMEOUT");
    return done ? w.rc : ZOPERATIONTIMEOUT;
}

/* handle hN, its global watcher's context "gN"; waits until connected */
static zhandle_t *connect_h(int idx, const char *host) {
    static char labels[8][4];
    sprintf(labels[idx], "g%d", idx);
    session_state[idx] = 0;
    zhandle_t *zh = zookeeper_init(host, watcher, 10000, NULL, labels[idx], 0);
    if (!zh) { P("zookeeper_init h%d -> NULL errno=%d", idx, errno); exit(1); }
    int ok = wait_state(idx, ZOO_CONNECTED_STATE, 20000);
    P("connect h%d -> %s negotiated=%d", idx, ok ? "CONNECTED" : "NOT CONNECTED", zoo_recv_timeout(zh));
    if (!ok) exit(1);
    SID[idx] = zoo_client_id(zh)->client_id;
    return zh;
}

/* ================= sections ================= */

static zhandle_t *h1, *h2;

static void sec_system_nodes(void) {
    P("\n=== system nodes ===");
    exists(h1, "/", NULL);
    children(h1, "/zookeeper", NULL);
    get(h1, "/zookeeper/quota", NULL, 100);
    get(h1, "/zookeeper/config", NULL, 100);
    getacl(h1, "/");
    getacl(h1, "/zookeeper/config");
    char b[512];
    int len = sizeof b;
    struct Stat s;
    int rc = zoo_getconfig(h1, 0, b, &len, &s);
    P("zoo_getconfig -> %s len=%d", rcn(rc), rc == ZOK ? len : -2);
}

static void sec_create(void) {
    P("\n=== create ===");
    create(h1, ROOT, "root", 4, NULL, ZOO_PERSISTENT);
    create(h1, ROOT, "root", 4, NULL, ZOO_PERSISTENT);
    create2(h1, at("/p"), "pdata", 5, ZOO_PERSISTENT);
    create2(h1, at("/e"), "edata", 5, ZOO_EPHEMERAL);
    create(h1, at("/e/child"), "x", 1, NULL, ZOO_PERSISTENT);
    create(h1, at("/e/child"), "x", 1, NULL, ZOO_EPHEMERAL);
    create(h1, at("/e/child"), "x", 1, NULL, ZOO_PERSISTENT_SEQUENTIAL);
    create(h1, at("/missing/child"), "x", 1, NULL, ZOO_PERSISTENT);
    create(h1, at("/missing/child"), "x", 1, NULL, ZOO_PERSISTENT_SEQUENTIAL);
    P("-- sequential names count the parent's cversion");
    create2(h1, at("/s"), "", 0, ZOO_PERSISTENT);
    create2(h1, at("/s/a-"), "1", 1, ZOO_PERSISTENT_SEQUENTIAL);
    create2(h1, at("/s/a-"), "2", 1, ZOO_PERSISTENT_SEQUENTIAL);
    create2(h1, at("/s/b-"), "3", 1, ZOO_EPHEMERAL_SEQUENTIAL);
    char ephemeral_seq[1024];
    strcpy(ephemeral_seq, last_created);
    create(h1, at("/s/plain"), NULL, -1, NULL, ZOO_PERSISTENT);
    del(h1, at("/s/plain"), -1);
    create2(h1, at("/s/"), "4", 1, ZOO_PERSISTENT_SEQUENTIAL);
    create2(h1, at("/s/c-"), "5", 1, ZOO_PERSISTENT_SEQUENTIAL);
    children(h1, at("/s"), NULL);
    P("-- containers and TTL nodes (created, not reaped)");
    create2(h1, at("/c"), "cont", 4, ZOO_CONTAINER);
    create2(h1, at("/c/kid"), "k", 1, ZOO_PERSISTENT);
    create2_ttl(h1, at("/ttl"), ZOO_PERSISTENT_WITH_TTL, 100000);
    create2_ttl(h1, at("/ttls-"), ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL, 100000);
    create2_ttl(h1, at("/ttl0"), ZOO_PERSISTENT_WITH_TTL, 0);
    create2_ttl(h1, at("/ttlneg"), ZOO_PERSISTENT_WITH_TTL, -7);
    create2_ttl(h1, at("/ttlbig"), ZOO_PERSISTENT_WITH_TTL, (1LL << 40) + 5);
    create2_ttl(h1, at("/ttlmax"), ZOO_PERSISTENT_WITH_TTL, 0xFFFFFFFFFFLL);
    create2_ttl(h1, at("/ttlover"), ZOO_PERSISTENT_WITH_TTL, 0x10000000000LL);
    create2_ttl(h1, at("/ttlpers"), ZOO_PERSISTENT, 1000);
    create2_ttl(h1, at("/ttleph"), ZOO_EPHEMERAL, 1000);
    create2_ttl(h1, at("/ttl/kid"), ZOO_PERSISTENT_WITH_TTL, 50000);
    create2_ttl(h1, at("/e/kid"), ZOO_PERSISTENT_WITH_TTL, 5000);
    create2(h1, at("/ttlnottl"), "t", 1, ZOO_PERSISTENT_WITH_TTL); /* TTL flag, plain create2 */
    create2(h1, at("/e/kid"), "t", 1, ZOO_CONTAINER);
    {
        char buf[100] = "";
        int rc = zoo_create_ttl(h1, at("/ttl1"), "t", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL, 50000, buf, sizeof buf);
        P("create_ttl %s TTL ttl=50000 -> %s %s", at("/ttl1"), rcn(rc), rc == ZOK ? buf : "");
    }
    create(h1, at("/flag99"), "t", 1, NULL, 99);
    create(h1, at("/flag3"), "t", 1, NULL, 3);
    P("-- the created path through path buffers of several sizes");
    {
        NODE(path, "/longname");
        int lens[] = {1, 6, (int)strlen(path), (int)strlen(path) + 1};
        const char *names[] = {"1", "6", "strlen", "strlen+1"};
        for (int i = 0; i < 4; i++) {
            char buf[600];
            memset(buf, 'Z', sizeof buf);
            int rc = zoo_create(h1, path, "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, buf, lens[i]);
            P("create %s pathbuf=%s -> %s '%s'", path, names[i], rcn(rc), rc == ZOK ? buf : "");
            if (rc == ZOK) zoo_delete(h1, path, -1);
        }
        int rc = zoo_create(h1, at("/nullbuf"), "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
        P("create %s pathbuf=NULL -> %s", at("/nullbuf"), rcn(rc));
    }
    get(h1, ROOT, NULL, 100);
    children(h1, ROOT, NULL);
    exists(h1, at("/e"), NULL);
    exists(h1, at("/c"), NULL);
    exists(h1, at("/ttl"), NULL);
    exists(h1, at("/ttlbig"), NULL);
    exists(h1, at("/ttlmax"), NULL);
    getacl(h1, at("/ttl"));
    getacl(h1, at("/c"));
    P("-- ephemerals seen from another session");
    exists(h2, at("/e"), NULL);
    exists(h2, ephemeral_seq, NULL);
}

static void sec_invalid_paths(void) {
    P("\n=== invalid paths ===");
    const char *rel[] = {"/", "//x", "/./x", "/../x", "/.", "/..", "/x\001y", "/\xc2\x80", "/\xef\xbf\xbf",
                         "/\xed\xa0\x80", "/ok.", "/...", NULL};
    const char *abs[] = {"", "a", "//", "/zookeeper/x", "/zookeeper/quota/x", "/zookeeper/config/x", NULL};
    const char *paths[32];
    int n = 0;
    for (int i = 0; abs[i]; i++) paths[n++] = abs[i];
    for (int i = 0; rel[i]; i++) paths[n++] = at(rel[i]);
    for (int i = 0; i < n; i++) {
        char show[600] = "";
        for (const unsigned char *p = (const unsigned char *)paths[i]; *p; p++) {
            char t[8];
            if (*p < 0x20 || *p >= 0x7f) sprintf(t, "\\x%02x", *p); else sprintf(t, "%c", *p);
            strcat(show, t);
        }
        char buf[600] = "";
        struct Stat s;
        int rc = zoo_create(h1, paths[i], "v", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, buf, sizeof buf);
        int rc2 = zoo_exists(h1, paths[i], 0, &s);
        int rc3 = zoo_delete(h1, paths[i], -1);
        P("path '%s': create -> %s %s | exists -> %s | delete -> %s", show, rcn(rc), rc == ZOK ? buf : "", rcn(rc2), rcn(rc3));
    }
    P("-- the system nodes");
    del(h1, "/", -1);
    del(h1, "/zookeeper", -1);
    del(h1, "/zookeeper/quota", -1);
    del(h1, "/zookeeper/config", -1);
    set(h1, "/zookeeper", "x", 1, -1);
    set(h1, "/zookeeper/config", "x", 1, -1);
    set(h1, "/", "rootdata", 8, -1);
    get(h1, "/", NULL, 100);
    set(h1, "/", NULL, -1, -1);
    get(h1, "/", NULL, 100);
    setacl(h1, "/zookeeper", -1, ZOO_PERM_ALL, "world", "anyone");
    create(h1, "/zookeeper", "x", 1, NULL, ZOO_PERSISTENT);
    create2(h1, "/zookeeper/", "x", 1, ZOO_PERSISTENT_SEQUENTIAL);
    children(h1, "/zookeeper", NULL);
    P("-- sync (zoo_async)");
    const char *sync_paths[] = {"/", ROOT, "/nonexistent", "bad", at("/"), NULL};
    for (int i = 0; sync_paths[i]; i++) {
        struct waiter w = {0, 0};
        int rc = zoo_async(h1, sync_paths[i], string_done, &w);
        if (rc == ZOK) P("zoo_async '%s' -> call ZOK completion %s", sync_paths[i], wait_done(&w, 20000) ? rcn(w.rc) : "TIMEOUT");
        else P("zoo_async '%s' -> call %s", sync_paths[i], rcn(rc));
    }
}

static void sec_get_set(void) {
    P("\n=== get/set/delete ===");
    NODE(d, "/d");
    NODE(nope, "/nope");
    create(h1, d, "0123456789", 10, NULL, ZOO_PERSISTENT);
    get(h1, d, NULL, 100);
    get(h1, d, NULL, 10);
    get(h1, d, NULL, 4);
    get(h1, d, NULL, 0);
    get(h1, nope, NULL, 10);
    set(h1, d, "abc", 3, 0);
    set(h1, d, "abcd", 4, 0);
    set(h1, d, "abcde", 5, 1);
    set(h1, d, "", 0, -1);
    get(h1, d, NULL, 10);
    set(h1, d, NULL, -1, -1);
    get(h1, d, NULL, 10);
    set(h1, d, "x", 1, -2);
    set(h1, d, "x", 1, 100000);
    set(h1, nope, "x", 1, -1);
    P("zoo_set %s -> %s", d, rcn(zoo_set(h1, d, "plain", 5, -1)));
    get(h1, d, NULL, 10);
    {
        char bin[8] = {0, 1, 2, 0, (char)0xff, 'a', 0, 'b'};
        set(h1, d, bin, 8, -1);
        char out[16];
        int len = sizeof out;
        struct Stat s;
        int rc = zoo_get(h1, d, 0, out, &len, &s);
        P("get binary -> %s len=%d same=%d", rcn(rc), len, len == 8 && !memcmp(out, bin, 8));
    }
    del(h1, d, 5);
    del(h1, d, -2);
    del(h1, ROOT, -1);
    del(h1, nope, -1);
    del(h1, nope, 3);
    exists(h1, d, NULL);
    del(h1, d, 6);
    del(h1, d, -1);
    exists(h1, ROOT, NULL);
}

/* watcher contexts that zoo_remove_watches must match by pointer */
static char R_GET[] = "R-get", R_KIDS[] = "R-kids", R3[] = "R3", NOPE[] = "nope";

static void sec_watches(void) {
    P("\n=== watches ===");
    zhandle_t *hs[2] = {h1, h2};
    NODE(w, "/w");
    NODE(a, "/w/a");
    NODE(b, "/w/b");
    create(h1, w, "w", 1, NULL, ZOO_PERSISTENT);
    create(h1, a, "a", 1, NULL, ZOO_PERSISTENT);
    get(h1, a, "A-get", 10);
    exists(h1, a, "A-exists");
    exists(h1, b, "B-exists");
    children(h1, w, "W-kids");
    get(h1, w, "W-get", 10);
    get(h1, a, "A-get", 10); /* the same watcher and context again: one event */
    {
        struct Stat s;
        struct String_vector v;
        P("exists %s watch=1 (global watcher) -> %s", a, rcn(zoo_exists(h1, a, 1, &s)));
        P("exists %s watch=1 -> %s", at("/w/zz"), rcn(zoo_exists(h1, at("/w/zz"), 1, &s)));
        int rc = zoo_get_children(h1, w, 1, &v);
        P("get_children %s watch=1 -> %s", w, rcn(rc));
        if (rc == ZOK) { print_children("   kids", &v); deallocate_String_vector(&v); }
    }
    settle(hs, 2, "after setting watches");
    P("-- h2: set a");
    set(h2, a, "a2", 2, -1);
    settle(hs, 2, "set a");
    P("-- h2: set a again (the watches were one-shot)");
    set(h2, a, "a3", 2, -1);
    settle(hs, 2, "set a again");
    P("-- h2: create b");
    create(h2, b, "b", 1, NULL, ZOO_PERSISTENT);
    settle(hs, 2, "create b");
    P("-- re-arm; h2 set_acl on a (no data event)");
    get(h1, a, "A-get", 10);
    setacl(h2, a, -1, ZOO_PERM_ALL, "world", "anyone");
    settle(hs, 2, "set_acl");
    P("-- h2: delete a (A-get still armed)");
    exists(h1, a, "A-exists");
    children(h1, w, "W-kids");
    del(h2, a, -1);
    settle(hs, 2, "delete a");
    P("-- child watch, then the parent deleted");
    children(h1, w, "W-kids");
    get(h1, w, "W-get", 10);
    exists(h1, w, "W-exists");
    del(h2, b, -1);
    settle(hs, 2, "delete b");
    children(h1, w, "W-kids");
    get(h1, b, "B-get", 10);
    del(h2, w, -1);
    settle(hs, 2, "delete w");
    P("-- watches on nodes a multi touches");
    create(h1, w, "w", 1, NULL, ZOO_PERSISTENT);
    create(h1, at("/w/x"), "x", 1, NULL, ZOO_PERSISTENT);
    exists(h1, at("/w/y"), "Y-exists");
    get(h1, at("/w/x"), "X-get", 10);
    children(h1, w, "W-kids");
    get(h1, w, "W-get", 10);
    {
        zoo_op_t ops[4];
        zoo_op_result_t res[4];
        zoo_create_op_init(&ops[0], at("/w/y"), "y", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
        zoo_set_op_init(&ops[1], at("/w/x"), "x2", 2, -1, NULL);
        zoo_set_op_init(&ops[2], w, "w2", 2, -1, NULL);
        zoo_delete_op_init(&ops[3], at("/w/x"), -1);
        P("multi(create y, set x, set w, delete x) -> %s", rcn(zoo_multi(h2, 4, ops, res)));
    }
    settle(hs, 2, "multi");
    P("-- events caused by the watching session itself");
    exists(h1, at("/w/own"), "OWN-exists");
    children(h1, w, "W-kids");
    create(h1, at("/w/own"), "o", 1, NULL, ZOO_EPHEMERAL);
    settle(hs, 2, "own create");
    P("-- ephemerals deleted when their session closes");
    {
        zhandle_t *h4 = connect_h(4, HOST);
        char seq[1024];
        create(h4, at("/w/e1"), "", 0, NULL, ZOO_EPHEMERAL);
        create(h4, at("/w/e2"), "", 0, NULL, ZOO_EPHEMERAL);
        create(h4, at("/w/e3-"), "", 0, NULL, ZOO_EPHEMERAL_SEQUENTIAL);
        strcpy(seq, last_created);
        exists(h1, at("/w/e1"), "E1");
        exists(h1, at("/w/e2"), "E2");
        children(h1, w, "W-kids");
        exists(h1, seq, "E3");
        settle(hs, 2, "before closing h4");
        P("zookeeper_close h4 -> %s", rcn(zookeeper_close(h4)));
        /* the server deletes them in one transaction: wait for it, then for h1's events */
        struct Stat s;
        for (int i = 0; i < 400 && zoo_exists(h1, seq, 0, &s) == ZOK; i++) usleep(50000);
        settle(hs, 2, "after closing h4");
        children(h1, w, NULL);
    }
    P("-- remove watches");
    NODE(r, "/w/r");
    NODE(rmissing, "/w/rmissing");
    NODE(nowatch, "/w/nowatch");
    create(h1, r, "r", 1, NULL, ZOO_PERSISTENT);
    get(h1, r, R_GET, 10);
    children(h1, r, R_KIDS);
    exists(h1, rmissing, "RM-exists");
    P("remove_watches r DATA R-get -> %s", rcn(zoo_remove_watches(h1, r, ZWATCHTYPE_DATA, watcher, R_GET, 0)));
    P("remove_watches r DATA R-get again -> %s", rcn(zoo_remove_watches(h1, r, ZWATCHTYPE_DATA, watcher, R_GET, 0)));
    P("remove_watches r CHILD other context -> %s", rcn(zoo_remove_watches(h1, r, ZWATCHTYPE_CHILD, watcher, NOPE, 0)));
    P("remove_all_watches r ANY -> %s", rcn(zoo_remove_all_watches(h1, r, ZWATCHTYPE_ANY, 0)));
    P("remove_all_watches r ANY again -> %s", rcn(zoo_remove_all_watches(h1, r, ZWATCHTYPE_ANY, 0)));
    P("remove_all_watches rmissing DATA (an exists watch) -> %s", rcn(zoo_remove_all_watches(h1, rmissing, ZWATCHTYPE_DATA, 0)));
    P("remove_all_watches nowatch ANY -> %s", rcn(zoo_remove_all_watches(h1, nowatch, ZWATCHTYPE_ANY, 0)));
    P("remove_all_watches nowatch ANY local=1 -> %s", rcn(zoo_remove_all_watches(h1, nowatch, ZWATCHTYPE_ANY, 1)));
    get(h1, r, "R-get2", 10);
    P("remove_all_watches r CHILD (only a data watch) -> %s", rcn(zoo_remove_all_watches(h1, r, ZWATCHTYPE_CHILD, 0)));
    P("remove_all_watches r DATA local=1 -> %s", rcn(zoo_remove_all_watches(h1, r, ZWATCHTYPE_DATA, 1)));
    settle(hs, 2, "remove watches");
    set(h2, r, "r2", 2, -1);
    create(h2, at("/w/r/k"), "", 0, NULL, ZOO_PERSISTENT);
    create(h2, rmissing, "", 0, NULL, ZOO_PERSISTENT);
    settle(hs, 2, "changes after the removals");
    P("-- remove a watch that already fired");
    get(h1, r, R3, 10);
    set(h2, r, "r3", 2, -1);
    settle(hs, 2, "R3 fired");
    P("remove_watches r DATA R3 -> %s", rcn(zoo_remove_watches(h1, r, ZWATCHTYPE_DATA, watcher, R3, 0)));
    P("-- getconfig watch");
    {
        char buf[512];
        int len = sizeof buf;
        struct Stat s;
        P("zoo_wgetconfig -> %s", rcn(zoo_wgetconfig(h1, watcher, "CFG", buf, &len, &s)));
    }
    settle(hs, 2, "getconfig");
}

static void sec_acl(void) {
    P("\n=== acl ===");
    zhandle_t *hs[2] = {h1, h2};
    NODE(a, "/a");
    create(h1, a, "a", 1, NULL, ZOO_PERSISTENT);
    getacl(h1, a);
    setacl(h1, a, 0, ZOO_PERM_READ | ZOO_PERM_ADMIN, "world", "anyone");
    getacl(h1, a);
    setacl(h1, a, 0, ZOO_PERM_ALL, "world", "anyone");
    set(h1, a, "x", 1, -1);
    create(h1, at("/a/k"), "", 0, NULL, ZOO_PERSISTENT);
    del(h1, at("/a/k"), -1);
    get(h1, a, NULL, 10);
    setacl(h1, a, 1, ZOO_PERM_ALL, "world", "anyone");
    setacl(h1, a, 3, ZOO_PERM_ALL, "world", "anyone");
    setacl(h1, a, -1, ZOO_PERM_ALL, "world", "anyone");
    getacl(h1, a);
    setacl(h1, at("/nope"), -1, ZOO_PERM_ALL, "world", "anyone");
    create(h1, at("/a/k"), "", 0, NULL, ZOO_PERSISTENT);
    P("-- invalid ACLs");
    {
        struct ACL_vector empty = {0, NULL};
        char buf[600];
        P("set_acl empty -> %s", rcn(zoo_set_acl(h1, a, -1, &empty)));
        P("create with empty acl -> %s", rcn(zoo_create(h1, at("/a-empty"), "", 0, &empty, ZOO_PERSISTENT, buf, sizeof buf)));
        P("create with NULL acl -> %s", rcn(zoo_create(h1, at("/a-nullacl"), "", 0, NULL, ZOO_PERSISTENT, buf, sizeof buf)));
        P("create with CREATOR_ALL (no auth) -> %s",
          rcn(zoo_create(h1, at("/a-creator"), "", 0, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT, buf, sizeof buf)));
    }
    {
        const char *ids[][2] = {{"bogus", "x"}, {"digest", "nocolon"}, {"digest", "u:notbase64!!"}, {"digest", "u:p:q"},
                                {"digest", ":"}, {"world", "someone"}, {"world", ""}, {"ip", "999.1.1.1"},
                                {"ip", "10.0.0.0/40"}, {"ip", "10.0.0.0/-1"}, {"ip", "nonsense"}, {"ip", "1.2.3"},
                                {"ip", "::1"}, {"ip", "[::1]"}, {"ip", "127.0.0.1/"}, {"auth", ""}, {"auth", "x"},
                                {"x509", "CN=foo"}, {"super", "x"}, {"", ""}, {NULL, NULL}};
        for (int i = 0; ids[i][0]; i++) {
            char created[40], set_on[40];
            sprintf(created, "/ai%d", i);
            sprintf(set_on, "/as%d", i);
            struct ACL acl = {ZOO_PERM_ALL, {(char *)ids[i][0], (char *)ids[i][1]}};
            struct ACL_vector v = {1, &acl};
            int rc = zoo_create(h1, at(created), "", 0, &v, ZOO_PERSISTENT, NULL, 0);
            zoo_create(h1, at(set_on), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
            int rc2 = zoo_set_acl(h1, at(set_on), -1, &v);
            P("acl [31:%s:%s]: create -> %s, set_acl -> %s", ids[i][0], ids[i][1], rcn(rc), rcn(rc2));
            if (rc == ZOK) getacl(h1, at(created));
            if (rc2 == ZOK) getacl(h1, at(set_on));
        }
    }
    getacl(h1, a);
    P("-- odd perms, each on a fresh node");
    {
        int perms[] = {0, 1, 64, 0x7fffffff, -1, 32 | 1};
        for (int i = 0; i < (int)(sizeof perms / sizeof *perms); i++) {
            char rel[40], kid[40];
            sprintf(rel, "/ap%d", i);
            sprintf(kid, "/ap%d/k", i);
            struct ACL acl = {perms[i], {"world", "anyone"}};
            struct ACL_vector v = {1, &acl};
            P("create %s perms=%d -> %s", at(rel), perms[i], rcn(zoo_create(h1, at(rel), "z", 1, &v, ZOO_PERSISTENT, NULL, 0)));
            getacl(h1, at(rel));
            get(h1, at(rel), NULL, 10);
            set(h1, at(rel), "y", 1, -1);
            create(h1, at(kid), "", 0, NULL, ZOO_PERSISTENT);
            children(h1, at(rel), NULL);
            setacl(h1, at(rel), -1, ZOO_PERM_ALL, "world", "anyone");
            del(h1, at(kid), -1);
        }
    }
    P("-- ip ACLs (the client is 127.0.0.1)");
    {
        const char *ips[] = {"127.0.0.1", "10.1.2.3", "127.0.0.0/8", "127.0.0.1/32", "128.0.0.0/1", "0.0.0.0/0",
                             "127.0.0.2/31", "127.0.0.0/24", NULL};
        for (int i = 0; ips[i]; i++) {
            char rel[40];
            sprintf(rel, "/aip%d", i);
            struct ACL acl = {ZOO_PERM_ALL, {"ip", (char *)ips[i]}};
            struct ACL_vector v = {1, &acl};
            int rc = zoo_create(h1, at(rel), "z", 1, &v, ZOO_PERSISTENT, NULL, 0);
            struct Stat s;
            char b[10];
            int len = sizeof b;
            int rc2 = zoo_get(h1, at(rel), 0, b, &len, &s);
            int rc3 = zoo_set_acl(h1, at(rel), -1, &ZOO_OPEN_ACL_UNSAFE);
            P("ip acl %s: create -> %s get -> %s set_acl -> %s", ips[i], rcn(rc), rcn(rc2), rcn(rc3));
        }
    }
    P("-- digest");
    NODE(dg, "/dg");
    NODE(dg2, "/dg2");
    add_auth(h1, "digest", "alice:secret");
    add_auth(h1, "digest", "alice:secret");
    {
        P("create %s CREATOR_ALL -> %s", dg, rcn(zoo_create(h1, dg, "d", 1, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT, NULL, 0)));
        getacl(h1, dg);
        struct ACL two[2] = {{ZOO_PERM_ALL, {"auth", ""}}, {ZOO_PERM_READ, {"world", "anyone"}}};
        struct ACL_vector v2 = {2, two};
        P("create %s [auth ALL, world READ] -> %s", dg2, rcn(zoo_create(h1, dg2, "d", 1, &v2, ZOO_PERSISTENT, NULL, 0)));
        getacl(h1, dg2);
        struct ACL dup[2] = {{ZOO_PERM_READ, {"world", "anyone"}}, {ZOO_PERM_READ, {"world", "anyone"}}};
        struct ACL_vector vd = {2, dup};
        P("set_acl duplicate entries -> %s", rcn(zoo_set_acl(h1, a, -1, &vd)));
        getacl(h1, a);
        struct ACL au[1] = {{ZOO_PERM_ALL, {"auth", "ignored"}}};
        struct ACL_vector va = {1, au};
        P("set_acl [auth:ignored] -> %s", rcn(zoo_set_acl(h1, a, -1, &va)));
    }
    getacl(h1, a);
    get(h2, dg, NULL, 10);
    get(h2, dg2, NULL, 10);
    set(h2, dg2, "z", 1, -1);
    getacl(h2, dg);
    exists(h2, dg, NULL);
    children(h2, dg, NULL);
    del(h2, at("/dg/nokid"), -1);
    add_auth(h2, "digest", "alice:wrong");
    get(h2, dg, NULL, 10);
    add_auth(h2, "digest", "alice:secret");
    get(h2, dg, NULL, 10);
    /* the digest id of bob:pw (base64 of its sha1), written literally */
    setacl(h1, dg, -1, ZOO_PERM_READ, "digest", "bob:Ncb/2u0WeB8QIV6tWmK8slp1wNk=");
    get(h1, dg, NULL, 10);
    getacl(h1, dg);
    settle(hs, 2, "acl");
    P("-- CREATE and DELETE perms of the parent");
    setacl(h1, dg2, -1, ZOO_PERM_READ | ZOO_PERM_WRITE | ZOO_PERM_ADMIN, "world", "anyone");
    create(h1, at("/dg2/k"), "", 0, NULL, ZOO_PERSISTENT);
    setacl(h1, dg2, -1, ZOO_PERM_CREATE | ZOO_PERM_ADMIN, "world", "anyone");
    create(h1, at("/dg2/k"), "", 0, NULL, ZOO_PERSISTENT);
    del(h1, at("/dg2/k"), -1);
    setacl(h1, dg2, -1, ZOO_PERM_DELETE | ZOO_PERM_ADMIN, "world", "anyone");
    del(h1, at("/dg2/k"), -1);
    get(h1, dg2, NULL, 10);
    exists(h1, dg2, NULL);
    setacl(h1, dg2, -1, ZOO_PERM_ALL, "world", "anyone");
    P("-- auth schemes: a failed add_auth leaves the handle in AUTH_FAILED for good");
    {
        const char *schemes[][2] = {{"ip", "127.0.0.1"}, {"world", "anyone"}, {"digest", "nocolon"}, {"digest", ""},
                                    {"digest", "a:b:c"}, {"super", "x"}, {"bogus", "x"}, {NULL, NULL}};
        for (int i = 0; schemes[i][0]; i++) {
            zhandle_t *h5 = connect_h(5, HOST);
            int rc = add_auth(h5, schemes[i][0], schemes[i][1]);
            if (rc != ZOK && !wait_state(5, ZOO_AUTH_FAILED_STATE, 20000)) P("   no AUTH_FAILED session event");
            struct Stat s;
            char b[32];
            int rc2 = zoo_exists(h5, ROOT, 0, &s);
            P("   then: state=%s exists -> %s unrecoverable=%s", state_name(zoo_state(h5), b), rcn(rc2),
              is_unrecoverable(h5) == ZINVALIDSTATE ? "yes" : "no");
            if (rc != ZOK) add_auth(h5, "digest", "x:y");
            zookeeper_close(h5);
            flush_events("auth scheme");
        }
    }
}

static void sec_auth_ids(void) {
    P("\n=== auth ids in the auth scheme ===");
    zhandle_t *h5 = connect_h(5, HOST);
    add_auth(h5, "ip", "127.0.0.1");
    create(h5, at("/au0"), "", 0, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT);
    add_auth(h5, "digest", "bob:b");
    add_auth(h5, "digest", "al:a");
    add_auth(h5, "digest", "bob:b");
    add_auth(h5, "digest", "carl:c");
    create(h5, at("/au1"), "", 0, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT);
    getacl(h5, at("/au1"));
    struct ACL three[3] = {{ZOO_PERM_READ, {"auth", ""}}, {ZOO_PERM_ALL, {"world", "anyone"}}, {ZOO_PERM_WRITE, {"auth", ""}}};
    struct ACL_vector v = {3, three};
    P("create %s [auth R, world ALL, auth W] -> %s", at("/au2"), rcn(zoo_create(h5, at("/au2"), "", 0, &v, ZOO_PERSISTENT, NULL, 0)));
    getacl(h5, at("/au2"));
    struct ACL dup[3] = {{ZOO_PERM_READ, {"digest", "bob:x"}}, {ZOO_PERM_WRITE, {"digest", "bob:x"}}, {ZOO_PERM_READ, {"digest", "bob:x"}}};
    struct ACL_vector vd = {3, dup};
    P("create %s [digest bob:x R, W, R] -> %s", at("/au3"), rcn(zoo_create(h5, at("/au3"), "", 0, &vd, ZOO_PERSISTENT, NULL, 0)));
    getacl(h5, at("/au3"));
    zookeeper_close(h5);
    flush_events("auth ids");
}

static void print_results(int n, zoo_op_t *ops, zoo_op_result_t *res) {
    for (int i = 0; i < n; i++) {
        char extra[600] = "";
        if (ops[i].type == ZOO_CREATE_OP && res[i].err == ZOK) snprintf(extra, sizeof extra, " value=%s", res[i].value);
        if (ops[i].type == ZOO_SETDATA_OP && res[i].err == ZOK && res[i].stat) snprintf(extra, sizeof extra, " stat %s", stat_str(res[i].stat));
        P("  [%d] type=%d err=%s%s", i, ops[i].type, rcn(res[i].err), extra);
    }
}

static void sec_multi(void) {
    P("\n=== multi ===");
    NODE(m, "/m");
    NODE(ma, "/m/a");
    NODE(mb, "/m/b");
    create(h1, m, "m", 1, NULL, ZOO_PERSISTENT);
    char pb[6][600];
    struct Stat set_stat;
    zoo_op_t ops[8];
    zoo_op_result_t res[8];
    int rc;
    memset(res, 0, sizeof res);
    zoo_create_op_init(&ops[0], ma, "a", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pb[0], sizeof pb[0]);
    zoo_create_op_init(&ops[1], at("/m/s-"), "s", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, pb[1], sizeof pb[1]);
    zoo_set_op_init(&ops[2], ma, "a2", 2, 0, &set_stat);
    zoo_check_op_init(&ops[3], ma, 1);
    zoo_create_op_init(&ops[4], at("/m/e"), "e", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, pb[2], sizeof pb[2]);
    zoo_delete_op_init(&ops[5], at("/m/e"), 0);
    /* (a CONTAINER create in a multi trips an assertion in the C client, with either server) */
    zoo_create_op_init(&ops[6], at("/m/c"), "c", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pb[3], sizeof pb[3]);
    zoo_check_op_init(&ops[7], m, -1);
    P("multi of 8 that succeeds -> %s", rcn(zoo_multi(h1, 8, ops, res)));
    print_results(8, ops, res);
    children(h1, m, NULL);
    P("-- a multi that fails at op 2 (check of a wrong version)");
    memset(res, 0, sizeof res);
    zoo_create_op_init(&ops[0], mb, "b", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pb[0], sizeof pb[0]);
    zoo_set_op_init(&ops[1], ma, "a3", 2, -1, &set_stat);
    zoo_check_op_init(&ops[2], ma, 99);
    zoo_delete_op_init(&ops[3], ma, -1);
    zoo_create_op_init(&ops[4], mb, "b", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pb[1], sizeof pb[1]);
    P("multi failing at op 2 -> %s", rcn(zoo_multi(h1, 5, ops, res)));
    print_results(5, ops, res);
    exists(h1, mb, NULL);
    get(h1, ma, NULL, 10);
    P("-- more multis, most failing");
    static struct ACL_vector no_acl = {0, NULL};
    struct { const char *name; int n; } cases[] = {
        {"create-exists", 1}, {"delete-nonempty", 1}, {"create-then-create-same", 2}, {"delete-then-check", 2},
        {"check-missing", 1}, {"create-no-parent", 1}, {"create-under-ephemeral-in-same-multi", 2},
        {"set-badversion-last", 3}, {"delete-then-create-same", 2}, {"create-seq-twice", 2}, {"acl-noauth", 2},
        {"empty", 0}, {"check-ok-only", 1}, {"create-bad-acl", 1}};
    for (int c = 0; c < (int)(sizeof cases / sizeof *cases); c++) {
        memset(res, 0, sizeof res);
        switch (c) {
        case 0: zoo_create_op_init(&ops[0], ma, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[0], sizeof pb[0]); break;
        case 1: zoo_delete_op_init(&ops[0], m, -1); break;
        case 2: zoo_create_op_init(&ops[0], at("/m/n"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[0], sizeof pb[0]);
                zoo_create_op_init(&ops[1], at("/m/n"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]); break;
        case 3: zoo_delete_op_init(&ops[0], ma, -1);
                zoo_check_op_init(&ops[1], ma, -1); break;
        case 4: zoo_check_op_init(&ops[0], at("/m/zz"), -1); break;
        case 5: zoo_create_op_init(&ops[0], at("/m/zz/y"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[0], sizeof pb[0]); break;
        case 6: zoo_create_op_init(&ops[0], at("/m/eph"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, pb[0], sizeof pb[0]);
                zoo_create_op_init(&ops[1], at("/m/eph/k"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]); break;
        case 7: zoo_set_op_init(&ops[0], ma, "q", 1, -1, NULL);
                zoo_create_op_init(&ops[1], at("/m/q"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]);
                zoo_set_op_init(&ops[2], ma, "q", 1, 0, NULL); break;
        case 8: zoo_delete_op_init(&ops[0], ma, -1);
                zoo_create_op_init(&ops[1], ma, "new", 3, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]); break;
        case 9: zoo_create_op_init(&ops[0], at("/m/q-"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, pb[0], sizeof pb[0]);
                zoo_create_op_init(&ops[1], at("/m/q-"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, pb[1], sizeof pb[1]); break;
        case 10: zoo_create_op_init(&ops[0], at("/m/ro"), "", 0, &ZOO_READ_ACL_UNSAFE, 0, pb[0], sizeof pb[0]);
                 zoo_create_op_init(&ops[1], at("/m/ro/k"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]); break;
        case 11: break;
        case 12: zoo_check_op_init(&ops[0], m, 0); break;
        case 13: zoo_create_op_init(&ops[0], at("/m/badacl"), "", 0, &no_acl, 0, pb[0], sizeof pb[0]); break;
        }
        P("multi %s -> %s", cases[c].name, rcn(zoo_multi(h1, cases[c].n, ops, res)));
        print_results(cases[c].n, ops, res);
    }
    children(h1, m, NULL);
    get(h1, ma, NULL, 10);
    P("-- a TTL create in a multi (create_op.ttl set by hand)");
    memset(res, 0, sizeof res);
    zoo_create_op_init(&ops[0], at("/m/ttl"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL, pb[0], sizeof pb[0]);
    ops[0].create_op.ttl = 60000;
    P("multi create TTL -> %s", rcn(zoo_multi(h1, 1, ops, res)));
    print_results(1, ops, res);
    exists(h1, at("/m/ttl"), NULL);
    P("-- amulti");
    {
        struct waiter w = {0, 0};
        memset(res, 0, sizeof res);
        zoo_create_op_init(&ops[0], at("/m/am"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[0], sizeof pb[0]);
        zoo_check_op_init(&ops[1], at("/m/am"), 0);
        zoo_delete_op_init(&ops[2], at("/m/am"), 0);
        rc = zoo_amulti(h1, 3, ops, res, void_done, &w);
        P("amulti create/check/delete -> call %s completion %s", rcn(rc), wait_done(&w, 20000) ? rcn(w.rc) : "TIMEOUT");
        print_results(3, ops, res);
        struct waiter w2 = {0, 0};
        memset(res, 0, sizeof res);
        zoo_check_op_init(&ops[0], at("/m/am"), 0);
        zoo_create_op_init(&ops[1], at("/m/am"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]);
        rc = zoo_amulti(h1, 2, ops, res, void_done, &w2);
        P("amulti check-missing/create -> call %s completion %s", rcn(rc), wait_done(&w2, 20000) ? rcn(w2.rc) : "TIMEOUT");
        print_results(2, ops, res);
    }
}

/* ---------- a pipeline of async calls: completions in the order the answers came ---------- */

#define NASYNC 60
static char completions[NASYNC * 8][80];
static int ncompletions;

static void record(const char *s) {
    pthread_mutex_lock(&mu);
    if (ncompletions < (int)(sizeof completions / sizeof *completions))
        snprintf(completions[ncompletions++], sizeof completions[0], "%s", s);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
static const char *strip_root(const char *v) {
    size_t n = strlen(ROOT);
    return strncmp(v, ROOT, n) ? v : v + n;
}
static void on_string(int rc, const char *v, const void *d) {
    char b[200];
    snprintf(b, sizeof b, "%s:%s:%s", (const char *)d, rcn(rc), rc == ZOK && v ? strip_root(v) : "");
    record(b);
}
static void on_void(int rc, const void *d) {
    char b[200];
    snprintf(b, sizeof b, "%s:%s", (const char *)d, rcn(rc));
    record(b);
}
static void on_stat(int rc, const struct Stat *s, const void *d) {
    char b[200];
    snprintf(b, sizeof b, "%s:%s:v%d", (const char *)d, rcn(rc), rc == ZOK && s ? s->version : -9);
    record(b);
}
static void on_data(int rc, const char *v, int len, const struct Stat *s, const void *d) {
    char b[200];
    (void)s;
    snprintf(b, sizeof b, "%s:%s:%.*s", (const char *)d, rcn(rc), rc == ZOK && len > 0 ? (len > 20 ? 20 : len) : 0, v ? v : "");
    record(b);
}
static void on_children(int rc, const struct String_vector *v, const struct Stat *s, const void *d) {
    char b[200];
    (void)s;
    snprintf(b, sizeof b, "%s:%s:n%d", (const char *)d, rcn(rc), rc == ZOK && v ? v->count : -1);
    record(b);
}
static void on_acl(int rc, struct ACL_vector *a, struct Stat *s, const void *d) {
    char b[200];
    (void)s;
    snprintf(b, sizeof b, "%s:%s:n%d", (const char *)d, rcn(rc), rc == ZOK && a ? a->count : -1);
    record(b);
}
static void on_string_stat(int rc, const char *v, const struct Stat *s, const void *d) {
    char b[200];
    snprintf(b, sizeof b, "%s:%s:%s:v%d", (const char *)d, rcn(rc), rc == ZOK && v ? strip_root(v) : "", rc == ZOK && s ? s->version : -9);
    record(b);
}

static void sec_async(void) {
    P("\n=== async pipeline (completion paths without ROOT) ===");
    NODE(dir, "/as");
    create(h1, dir, "", 0, NULL, ZOO_PERSISTENT);
    static char tags[NASYNC * 8][24];
    static char paths[NASYNC + 1][600];
    int ntags = 0, issued = 0, rc;
    ncompletions = 0;
#define TAG(...) (snprintf(tags[ntags], sizeof tags[0], __VA_ARGS__), tags[ntags++])
    for (int i = 0; i <= NASYNC; i++) snprintf(paths[i], sizeof paths[i], "%s/n%02d", dir, i);
    for (int i = 0; i < NASYNC; i++) {
        char v[16];
        sprintf(v, "v%d", i);
        rc = zoo_acreate(h1, paths[i], v, strlen(v), &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, on_string, TAG("c%d", i)); issued += rc == ZOK;
        if (i % 10 == 5) { rc = zoo_acreate(h1, paths[i], "dup", 3, &ZOO_OPEN_ACL_UNSAFE, 0, on_string, TAG("dup%d", i)); issued += rc == ZOK; }
        if (i % 7 == 3) { rc = zoo_aget(h1, paths[i], 0, on_data, TAG("g%d", i)); issued += rc == ZOK; }
        if (i % 9 == 0) { rc = zoo_async(h1, paths[i], on_string, TAG("sync%d", i)); issued += rc == ZOK; }
        if (i % 11 == 4) { rc = zoo_aset(h1, paths[i], "S", 1, 0, on_stat, TAG("s%d", i)); issued += rc == ZOK; }
        if (i % 13 == 6) { rc = zoo_aget_children2(h1, dir, 0, on_children, TAG("k%d", i)); issued += rc == ZOK; }
        if (i % 17 == 2) { rc = zoo_adelete(h1, paths[i], 0, on_void, TAG("d%d", i)); issued += rc == ZOK; }
        if (i % 19 == 8) { rc = zoo_aget_acl(h1, paths[i], on_acl, TAG("acl%d", i)); issued += rc == ZOK; }
        if (i % 23 == 1) { rc = zoo_acreate2(h1, at("/as/q-"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, on_string_stat, TAG("cs%d", i)); issued += rc == ZOK; }
        if (i % 29 == 7) { rc = zoo_aexists(h1, paths[i + 1], 0, on_stat, TAG("x%d", i)); issued += rc == ZOK; }
    }
    rc = zoo_aget(h1, "bad", 0, on_data, TAG("badpath"));
    P("aget 'bad' -> call %s", rcn(rc));
    issued += rc == ZOK;
    for (int i = 0; i < NASYNC; i++) { rc = zoo_aget(h1, paths[i], 0, on_data, TAG("G%d", i)); issued += rc == ZOK; }
#undef TAG
    struct timespec ts;
    deadline(&ts, 30000);
    pthread_mutex_lock(&mu);
    while (ncompletions < issued)
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&mu);
    P("issued=%d completed=%d", issued, ncompletions);
    for (int i = 0; i < ncompletions; i++) P("  %3d %s", i, completions[i]);
    children(h1, dir, NULL);
}

static void sec_chroot(void) {
    P("\n=== chroot ===");
    NODE(croot, "/root");
    create(h1, croot, "", 0, NULL, ZOO_PERSISTENT);
    char host[700];
    snprintf(host, sizeof host, "%s%s", HOST, croot);
    zhandle_t *h6 = connect_h(6, host);
    create(h6, "/x", "x", 1, NULL, ZOO_PERSISTENT);
    create(h6, "/s-", "x", 1, NULL, ZOO_PERSISTENT_SEQUENTIAL);
    exists(h6, "/y", "CH-y");
    get(h6, "/x", "CH-x", 10);
    children(h6, "/", "CH-root");
    create(h6, "/y", "y", 1, NULL, ZOO_PERSISTENT);
    set(h6, "/x", "x2", 2, -1);
    zoo_op_t ops[2];
    zoo_op_result_t res[2];
    char pb[2][100];
    zoo_create_op_init(&ops[0], "/m-", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, pb[0], sizeof pb[0]);
    zoo_create_op_init(&ops[1], "/m2", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, pb[1], sizeof pb[1]);
    P("multi in the chroot -> %s", rcn(zoo_multi(h6, 2, ops, res)));
    print_results(2, ops, res);
    zhandle_t *hs[2] = {h6, h1};
    settle(hs, 2, "chroot");
    children(h1, croot, NULL);
    zookeeper_close(h6);
    flush_events("chroot closed");
}

/* ZooKeeper lists children in its HashSet's order: names whose Java hashCodes collide
   ("Aa" and "BB" do, so all their concatenations do), after growth, deletes, re-inserts */
static void sec_child_order(void) {
    P("\n=== child order (colliding Java hash codes, growth, deletes, re-inserts) ===");
    NODE(dir, "/ho");
    char names[32][16], p[1024];
    create(h1, dir, "", 0, NULL, ZOO_PERSISTENT);
    for (int m = 0; m < 32; m++) {
        names[m][0] = 0;
        for (int bit = 4; bit >= 0; bit--) strcat(names[m], (m >> bit) & 1 ? "BB" : "Aa");
    }
    for (int i = 0; i < 32; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[(i * 13 + 5) % 32]);
        zoo_create(h1, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    }
    children(h1, dir, NULL);
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "%s/k%d", dir, (i * 37) % 101);
        zoo_create(h1, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    }
    children(h1, dir, NULL);
    for (int i = 0; i < 32; i += 3) { snprintf(p, sizeof p, "%s/%s", dir, names[i]); zoo_delete(h1, p, -1); }
    for (int i = 0; i < 100; i += 2) { snprintf(p, sizeof p, "%s/k%d", dir, i); zoo_delete(h1, p, -1); }
    children(h1, dir, NULL);
    for (int i = 31; i >= 0; i -= 3) { snprintf(p, sizeof p, "%s/%s", dir, names[i]); zoo_create(h1, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0); }
    const char *odd[] = {"\xc3\xa9t\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "a b", "A", "a", "0", "-1",
                         "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "~", NULL};
    for (int i = 0; odd[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, odd[i]);
        int rc = zoo_create(h1, p, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc != ZOK) P("create odd name %d -> %s", i, rcn(rc));
    }
    children(h1, dir, NULL);
    struct String_vector v;
    int rc = zoo_get_children(h1, dir, 0, &v);
    P("get_children -> %s n=%d first=%s last=%s", rcn(rc), v.count, v.count ? v.data[0] : "", v.count ? v.data[v.count - 1] : "");
    if (rc == ZOK) deallocate_String_vector(&v);
}

/* ---------- multi-limit mode ---------- */

static int multi_limit(int n) {
    h1 = connect_h(1, HOST);
    create(h1, ROOT, "", 0, NULL, ZOO_PERSISTENT);
    zoo_op_t *ops = calloc(n, sizeof *ops);
    zoo_op_result_t *res = calloc(n, sizeof *res);
    char (*paths)[600] = calloc(n, sizeof *paths);
    for (int i = 0; i < n; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/n%04d", ROOT, i);
        zoo_create_op_init(&ops[i], paths[i], "v", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    }
    P("multi of %d creates -> %s", n, rcn(zoo_multi(h1, n, ops, res)));
    for (int i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && res[j].err == res[i].err; j++) {}
        if (j - i == 1) P("  [%d] err=%s", i, rcn(res[i].err));
        else P("  [%d..%d] err=%s", i, j - 1, rcn(res[i].err));
    }
    struct Stat s;
    int rc = zoo_exists(h1, ROOT, 0, &s);
    P("exists %s -> %s numChildren=%d", ROOT, rcn(rc), rc == ZOK ? s.numChildren : -1);
    P("zookeeper_close h1 -> %s", rcn(zookeeper_close(h1)));
    free(ops); free(res); free(paths);
    P("done");
    return 0;
}

int main(int argc, char **argv) {
    if ((argc != 3 && argc != 5) || (argc == 5 && strcmp(argv[3], "multi-limit")) || argv[2][0] != '/' || strlen(argv[2]) > 200) {
        fprintf(stderr, "usage: %s HOST:PORT /ROOT [multi-limit N]\n", argv[0]);
        return 2;
    }
    HOST = argv[1];
    ROOT = argv[2];
    signal(SIGPIPE, SIG_IGN);
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    if (argc == 5) return multi_limit(atoi(argv[4]));

    h1 = connect_h(1, HOST);
    h2 = connect_h(2, HOST);
    zhandle_t *hs[2] = {h1, h2};
    settle(hs, 2, "connected");
    void (*sections[])(void) = {sec_system_nodes, sec_create, sec_invalid_paths, sec_get_set, sec_watches,
                                sec_acl, sec_auth_ids, sec_multi, sec_async, sec_chroot, sec_child_order};
    for (int i = 0; i < (int)(sizeof sections / sizeof *sections); i++) {
        sections[i]();
        settle(hs, 2, "end of section");
    }
    P("\n=== close ===");
    P("zookeeper_close h2 -> %s", rcn(zookeeper_close(h2)));
    P("zookeeper_close h1 -> %s", rcn(zookeeper_close(h1)));
    return 0;
}

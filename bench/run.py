"""zetcd vs ZooKeeper, side by side in one run.

    python bench/run.py                      # full run: 10 s measured + 3 s warm-up per case
    python bench/run.py --quick              # 3 s + 1 s per case, 20,000-znode memory check
    python bench/run.py --ops get,set --levels 16x8 --no-memory
    python bench/run.py --json bench.json --markdown bench.md
    python bench/run.py --profile get,set    # extra zetcd runs under py-spy, hot spots printed

What it does: compiles bench/ZetcdBench.java (javac, cached under $TMPDIR by source hash), starts
a real etcd, a real ZooKeeper 3.8 (tests/servers.py) and zetcd on that etcd (tests/zetcd_server.py),
with the same tickTime. For every op (get, exists, children, set, create) and every concurrency level
(1 session x 1 outstanding, 16 sessions x 8 outstanding) it runs the Java load generator against
both servers with identical parameters, alternating which server goes first, and prints ops/s, p50
and p99 for each plus the ratio zetcd/ZooKeeper, marked against its target (reads >= 1.0x, writes
>= 0.5x). Then it measures the mirror's memory: N znodes of 100 bytes created through a fresh zetcd
(VmRSS from /proc/<pid>/status), and again in a zetcd restarted on that tree (the mirror loaded at
start-up), against the 1 GiB target.

The load generator is the stock Apache ZooKeeper Java client driven through its async API, so the
client side is never the bottleneck the way kazoo would be. Note the machine is shared by the
servers and the client; the load average at start is recorded with the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# zetcd runs as `python -m zetcd` from a scratch directory: make that this checkout's zetcd, not
# whatever the interpreter would find first (an editable install of another clone, say)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.etcd_alone import measure as measure_etcd_alone  # noqa: E402
from tests.servers import EtcdServer, ManagedServer, ZooKeeperServer, four_letter_word  # noqa: E402
from tests.zetcd_server import ZetcdServer  # noqa: E402
from zetcd.embedded import (  # noqa: E402
    BACKEND_BATCH_LIMIT,
    MAX_REQUEST_BYTES,
    MAX_TXN_OPS,
    TUNING_ARGS,
)

SOURCE = Path(__file__).resolve().parent / "ZetcdBench.java"
JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-nop.jar")
JAVA_OPTS = ("-Xms512m", "-Xmx1g", "-XX:+UseSerialGC")
READ_OPS = ("get", "exists", "children")
WRITE_OPS = ("set", "create")
ALL_OPS = READ_OPS + WRITE_OPS
TARGETS = {op: (1.0 if op in READ_OPS else 0.5) for op in ALL_OPS}
MEMORY_TARGET = 1 << 30
PROFILE_RATE = 200  # py-spy samples per second
TICK_TIME_MS = "2000"

console = Console(width=None if sys.stdout.isatty() else 160)


# ---------------------------------------------------------------------- the Java load generator


def compile_bench() -> Path:
    """Compile ZetcdBench.java once per source version; return the class directory."""
    javac = shutil.which("javac")
    if javac is None:
        raise SystemExit("javac not found: install a JDK (apt-get install openjdk-17-jdk-headless)")
    for jar in JARS:
        if not os.path.exists(jar):
            raise SystemExit(f"{jar} missing: run `make deps` (zookeeper, libslf4j-java)")
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(":".join(JARS).encode())
    cache = Path(tempfile.gettempdir()) / f"zetcd-bench-{digest.hexdigest()[:16]}"
    if (cache / "ZetcdBench.class").exists():
        return cache
    staging = Path(tempfile.mkdtemp(prefix="zetcd-bench-build-"))
    try:
        subprocess.run(
            [javac, "-nowarn", "-cp", ":".join(JARS), "-d", str(staging), str(SOURCE)],
            check=True,
            timeout=120,
        )
        try:
            staging.rename(cache)
        except OSError:  # another run compiled it concurrently
            if not (cache / "ZetcdBench.class").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache


@dataclasses.dataclass
class Params:
    seconds: float
    warmup: float
    keys: int
    value_size: int
    children: int
    children_parents: int


class Generator:
    """Runs ZetcdBench subprocesses."""

    def __init__(self, classes: Path) -> None:
        self.java = shutil.which("java") or "/usr/bin/java"
        self.classpath = ":".join([str(classes), *JARS])

    def argv(self, server: str, op: str, args: Sequence[str]) -> list[str]:
        return [
            self.java,
            *JAVA_OPTS,
            "-cp",
            self.classpath,
            "ZetcdBench",
            "--server",
            server,
            "--op",
            op,
            "-v",
            *args,
        ]

    def run(
        self,
        server: str,
        op: str,
        args: Sequence[str],
        timeout: float,
        on_window_start: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one case; return its JSON result (with "failure" set if something went wrong)."""
        proc = subprocess.Popen(
            self.argv(server, op, args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdout_lines: list[str] = []
        stderr_lines: list[str] = []

        def pump(stream: IO[str] | None, sink: list[str], watch: bool) -> None:
            assert stream is not None
            for line in stream:
                sink.append(line)
                if watch and on_window_start is not None and "window start" in line:
                    on_window_start()

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, stdout_lines, False), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, stderr_lines, True), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for thread in pumps:
            thread.join(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        stdout = "".join(stdout_lines)
        result: dict[str, Any] = {}
        for line in reversed(stdout.splitlines()):
            if line.startswith("{"):
                result = json.loads(line)
                break
        if proc.returncode != 0:
            tail = "".join(stderr_lines[-10:]).strip()
            result["failure"] = (
                f"exit {proc.returncode}: {tail}" if tail else f"exit {proc.returncode}"
            )
        return result


def case_args(op: str, sessions: int, inflight: int, p: Params) -> list[str]:
    keys = p.children_parents if op == "children" else p.keys
    return [
        "--sessions",
        str(sessions),
        "--inflight",
        str(inflight),
        "--seconds",
        str(p.seconds),
        "--warmup",
        str(p.warmup),
        "--keys",
        str(keys),
        "--value-size",
        str(p.value_size),
        "--children",
        str(p.children),
    ]


def case_timeout(p: Params) -> float:
    # setup (120) + warmup + window + drain (5) + cleanup (60) + JVM start and slack
    return 120 + p.warmup + p.seconds + 5 + 60 + 30


# ---------------------------------------------------------------------- process memory


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of a process, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if key.startswith(("Vm", "Rss")) and len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0]) * 1024
    return out


def node_count(host: str, port: int) -> int | None:
    try:
        text = four_letter_word(host, port, "srvr")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Node count:"):
            return int(line.split(":")[1])
    return None


def mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


# ---------------------------------------------------------------------- profiling (py-spy)


def find_py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return str(candidate)
    return shutil.which("py-spy")


PROJECT_DIRS = ("zetcd/", "oracle/", "fuzz/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def frame_function(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``: aggregate a function's lines."""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    file = m["file"]
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/lib/python3.":
                file = file.split("/", 1)[-1]
    return f"{m['func']} ({file})"


def summarize_raw_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Own ("self") and inclusive samples per function from py-spy's ``--format raw`` output.

    The recording is taken with ``--gil``, so a sample is a moment some thread held the GIL:
    with one interpreter saturating a core, that is where the CPU time goes.
    """
    own: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frame_function(frames[-1])] += count
        own_lines[frames[-1]] += count
        for name in {frame_function(f) for f in frames}:
            inclusive[name] += count

    def ranked(counter: Counter[str]) -> list[tuple[str, int, float]]:
        return [(name, n, 100.0 * n / max(total, 1)) for name, n in counter.most_common(top)]

    project = Counter(
        {
            name: n
            for name, n in inclusive.items()
            if name.endswith(".py)")
            and name.rpartition("(")[2].startswith(PROJECT_DIRS)
            and not name.endswith(("zetcd/__main__.py)", "zetcd/cli.py)"))
        }
    )
    return {
        "samples": total,
        "own": ranked(own),
        "inclusive_project": ranked(project),
        "own_lines": ranked(own_lines),
        "inclusive": ranked(inclusive),
    }


# ---------------------------------------------------------------------- the run


@dataclasses.dataclass
class Case:
    op: str
    sessions: int
    inflight: int
    zookeeper: dict[str, Any]
    zetcd: dict[str, Any]
    # with --rounds: every round's zetcd/ZooKeeper ratio, in the order run (zookeeper and
    # zetcd above are the results of the round with the median ratio)
    round_ratios: list[float | None] = dataclasses.field(default_factory=list)
    # a write at 1x1: etcd alone, one put at a time (bench/etcd_alone.py), in the same round
    etcd_alone: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def level(self) -> str:
        return f"{self.sessions}x{self.inflight}"

    def ratio_cell(self) -> str:
        ratio = self.ratio
        text = "-" if ratio is None else f"{ratio:.2f}x"
        known = [r for r in self.round_ratios if r is not None]
        if len(self.round_ratios) > 1 and known:
            text += f" ({min(known):.2f}-{max(known):.2f})"
        return text

    def over_zookeeper(self, res: dict[str, Any]) -> float | None:
        """``res``'s ops/s over ZooKeeper's in this case, if both ran without failure."""
        zk = self.zookeeper.get("ops_per_sec")
        other = res.get("ops_per_sec")
        if not zk or other is None or "failure" in res or "failure" in self.zookeeper:
            return None
        return float(other) / float(zk)

    @property
    def ratio(self) -> float | None:
        return self.over_zookeeper(self.zetcd)

    @property
    def target(self) -> float:
        return TARGETS[self.op]

    @property
    def etcd_alone_ratio(self) -> float | None:
        """etcd's own rate at 1x1 for zetcd's transaction (bench/etcd_alone.py) over
        ZooKeeper's ops/s: the most zetcd's ratio could be."""
        return self.over_zookeeper(self.etcd_alone)

    @property
    def met(self) -> bool | None:
        r = self.ratio
        return None if r is None else r >= self.target


def ensure_running(server: ManagedServer) -> None:
    if not server.running:
        console.print(f"[red]{server.kind} died; its log ends:[/red]\n{server.log_tail(20)}")
        server.stop()
        server.start()
        console.print(f"[yellow]{server.kind} restarted[/yellow]")


def run_matrix(
    gen: Generator,
    zk: ZooKeeperServer,
    ze: ZetcdServer,
    ops: Sequence[str],
    levels: Sequence[tuple[int, int]],
    p: Params,
    rounds: int = 1,
    etcd_endpoint: str | None = None,
) -> list[Case]:
    """Every case on both servers, ``rounds`` times in a row, which server goes first
    alternating from run to run; a case's figures are those of its round with the median
    ratio (the lower middle one of an even number). With ``etcd_endpoint``, every round of a
    write at 1x1 also measures etcd alone (bench/etcd_alone.py) right after both servers."""
    cases: list[Case] = []
    index = 0
    for op in ops:
        for sessions, inflight in levels:
            runs: list[Case] = []
            for r in range(rounds):
                results: dict[str, dict[str, Any]] = {}
                order: list[tuple[str, ManagedServer]] = [("zookeeper", zk), ("zetcd", ze)]
                if index % 2:
                    order.reverse()
                index += 1
                for name, server in order:
                    ensure_running(server)
                    address = zk.address if server is zk else ze.address
                    label = f"{op} {sessions}x{inflight} on {name}"
                    if rounds > 1:
                        label += f" (round {r + 1}/{rounds})"
                    with console.status(f"{label} ({p.warmup:g}+{p.seconds:g} s)"):
                        res = gen.run(
                            address, op, case_args(op, sessions, inflight, p), case_timeout(p)
                        )
                    res["loadavg_after"] = round(os.getloadavg()[0], 2)
                    results[name] = res
                    console.print(f"  {label}: {describe(res)}")
                case = Case(op, sessions, inflight, results["zookeeper"], results["zetcd"])
                if etcd_endpoint and op in WRITE_OPS and (sessions, inflight) == (1, 1):
                    label = f"{op} 1x1 on etcd alone"
                    if rounds > 1:
                        label += f" (round {r + 1}/{rounds})"
                    with console.status(f"{label} ({p.warmup:g}+{p.seconds:g} s)"):
                        case.etcd_alone = measure_etcd_alone(
                            etcd_endpoint, op, p.seconds, p.warmup, p.keys, p.value_size
                        )
                    line = describe(case.etcd_alone)
                    put = case.etcd_alone.get("put")
                    if put:
                        line += f" (a plain put: {describe(put)})"
                    console.print(f"  {label}: {line}")
                runs.append(case)
            ranked = sorted(runs, key=lambda c: -1.0 if c.ratio is None else c.ratio)
            median = ranked[(len(ranked) - 1) // 2]
            median.round_ratios = [c.ratio for c in runs] if rounds > 1 else []
            cases.append(median)
    return cases


def describe(res: dict[str, Any]) -> str:
    if "ops_per_sec" not in res:
        return f"[red]FAILED[/red] {res.get('failure', '')}"
    text = (
        f"{res['ops_per_sec']:,.0f} ops/s p50 {fmt_us(res['p50_us'])} p99 {fmt_us(res['p99_us'])}"
    )
    if res.get("error_count") or res.get("lost"):
        text += f" [red]errors {res.get('errors')} lost {res.get('lost')}[/red]"
    if "failure" in res:
        text += f" [red]{res['failure']}[/red]"
    return text


def fmt_us(us: float | int | None) -> str:
    if us is None:
        return "-"
    if us < 10_000:
        return f"{us / 1000:.3f} ms"
    return f"{us / 1000:.1f} ms"


def measure_memory(
    gen: Generator, etcd: EtcdServer, znodes: int, value_size: int
) -> dict[str, Any]:
    """Populate a fresh zetcd with ``znodes`` znodes; RSS after, and after a restart (reload)."""
    out: dict[str, Any] = {
        "znodes": znodes,
        "value_size": value_size,
        "target_bytes": MEMORY_TARGET,
    }
    prefix = f"/zetcd-bench-mem-{os.getpid()}/"
    populate = [
        "--sessions",
        "8",
        "--inflight",
        "32",
        "--keys",
        str(znodes),
        "--value-size",
        str(value_size),
        "--root",
        "/mem",
        "--setup-timeout",
        "900",
    ]
    ze = ZetcdServer(etcd.endpoint, prefix=prefix, extra_args=("--tick-time", TICK_TIME_MS))
    with ze:
        time.sleep(1.0)
        out["baseline"] = proc_status(ze.pid)
        with console.status(f"populating {znodes:,} znodes of {value_size} B through zetcd"):
            res = gen.run(ze.address, "populate", populate, timeout=1000)
        out["populate"] = res
        console.print(f"  populate: {res}")
        time.sleep(2.0)
        out["after_populate"] = proc_status(ze.pid)
        out["after_populate_node_count"] = node_count(ze.host, ze.port)
    # A new process on the same prefix: the mirror is loaded from etcd at start-up.
    ze2 = ZetcdServer(
        etcd.endpoint, prefix=prefix, extra_args=("--tick-time", TICK_TIME_MS), startup_timeout=300
    )
    t0 = time.monotonic()
    with ze2:
        deadline = time.monotonic() + 300
        count = node_count(ze2.host, ze2.port)
        while (count or 0) < znodes and time.monotonic() < deadline:
            time.sleep(0.5)
            count = node_count(ze2.host, ze2.port)
        out["reload_seconds"] = time.monotonic() - t0
        time.sleep(2.0)
        out["after_reload"] = proc_status(ze2.pid)
        out["after_reload_node_count"] = node_count(ze2.host, ze2.port)
    rss = max(out["after_populate"].get("VmRSS", 0), out["after_reload"].get("VmRSS", 0))
    out["rss_bytes"] = rss
    out["met"] = rss < MEMORY_TARGET
    return out


def measure_zookeeper_memory(gen: Generator, znodes: int, value_size: int) -> dict[str, Any]:
    """The same population in a ZooKeeper (context only: JVM RSS depends on its heap sizing)."""
    out: dict[str, Any] = {}
    with ZooKeeperServer() as zk:
        time.sleep(1.0)
        out["baseline"] = proc_status(zk.pid)
        args = ["--sessions", "8", "--inflight", "32", "--keys", str(znodes)]
        args += ["--value-size", str(value_size), "--root", "/mem", "--setup-timeout", "600"]
        out["populate"] = gen.run(zk.address, "populate", args, timeout=700)
        time.sleep(2.0)
        out["after_populate"] = proc_status(zk.pid)
        out["after_populate_node_count"] = node_count(zk.host, zk.port)
    return out


def profile_zetcd(
    gen: Generator,
    ze: ZetcdServer,
    ops: Sequence[str],
    level: tuple[int, int],
    p: Params,
    out_dir: Path,
) -> dict[str, Any]:
    """Extra runs at one level against zetcd, py-spy recording during the measured window."""
    py_spy = find_py_spy()
    if py_spy is None:
        console.print("[red]py-spy not found: pip install py-spy[/red]")
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, Any] = {}
    duration = max(int(p.seconds) - 2, 2)
    for op in ops:
        raw = out_dir / f"zetcd-{op}.txt"
        procs: list[subprocess.Popen[bytes]] = []

        def start_spy(raw: Path = raw, procs: list[subprocess.Popen[bytes]] = procs) -> None:
            procs.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(ze.pid),
                        "--duration",
                        str(duration),
                        "--rate",
                        str(PROFILE_RATE),
                        "--gil",
                        "--format",
                        "raw",
                        "--output",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        ensure_running(ze)
        sessions, inflight = level
        with console.status(f"profiling zetcd: {op} {sessions}x{inflight}"):
            args = case_args(op, sessions, inflight, p)
            res = gen.run(ze.address, op, args, case_timeout(p), start_spy)
        for proc in procs:
            try:
                proc.wait(duration + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        entry: dict[str, Any] = {"run": res, "raw": str(raw), "level": f"{sessions}x{inflight}"}
        if raw.exists():
            entry.update(summarize_raw_profile(raw))
            # Samples are taken only while some thread holds the GIL: their share of all
            # sampling instants says how close the interpreter is to saturating one core.
            entry["gil_busy"] = entry["samples"] / (PROFILE_RATE * duration)
        profiles[op] = entry
        console.print(f"  profiled {op}: {describe(res)}")
    return profiles


# ---------------------------------------------------------------------- reporting


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("PASS" if met else "MISS")


def ops_cell(res: dict[str, Any]) -> str:
    if "ops_per_sec" not in res:
        return "failed"
    cell = f"{res['ops_per_sec']:,.0f}"
    if res.get("error_count") or res.get("lost") or "failure" in res:
        cell += "*"
    return cell


def results_table(cases: Sequence[Case]) -> Table:
    table = Table(title="zetcd vs ZooKeeper (closed loop, Java async client)")
    table.add_column("op")
    table.add_column("SxK", justify="right")
    for name in ("ZooKeeper", "zetcd"):
        table.add_column(f"{name} ops/s", justify="right", no_wrap=True)
        table.add_column("p50", justify="right")
        table.add_column("p99", justify="right")
    table.add_column("zetcd/ZK", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")
    for c in cases:
        style = {True: "green", False: "red", None: "yellow"}[c.met]
        table.add_row(
            c.op,
            c.level,
            ops_cell(c.zookeeper),
            fmt_us(c.zookeeper.get("p50_us")),
            fmt_us(c.zookeeper.get("p99_us")),
            ops_cell(c.zetcd),
            fmt_us(c.zetcd.get("p50_us")),
            fmt_us(c.zetcd.get("p99_us")),
            c.ratio_cell(),
            f">= {c.target:.1f}x",
            f"[{style}]{verdict(c.met)}[/{style}]",
        )
    return table


def memory_lines(mem: dict[str, Any]) -> list[str]:
    if not mem:
        return []
    lines = []
    pop = mem.get("populate", {})
    rate = pop.get("creates_per_sec")
    lines.append(
        f"zetcd mirror memory, {mem['znodes']:,} znodes x {mem['value_size']} B: "
        f"VmRSS {mib(mem['after_populate'].get('VmRSS', 0))} after populating "
        f"(baseline {mib(mem['baseline'].get('VmRSS', 0))}, peak VmHWM "
        f"{mib(mem['after_populate'].get('VmHWM', 0))}; node count "
        f"{mem.get('after_populate_node_count')}; populate "
        f"{'-' if rate is None else f'{rate:,.0f}'} creates/s)"
    )
    lines.append(
        f"zetcd restarted on that tree: VmRSS {mib(mem['after_reload'].get('VmRSS', 0))} "
        f"(VmHWM {mib(mem['after_reload'].get('VmHWM', 0))}, node count "
        f"{mem.get('after_reload_node_count')}, ready in {mem.get('reload_seconds', 0):.1f} s)"
    )
    lines.append(
        f"target < {mib(MEMORY_TARGET)}: {verdict(mem.get('met'))} "
        f"(worst VmRSS {mib(mem.get('rss_bytes', 0))})"
    )
    zk = mem.get("zookeeper")
    if zk:
        zrate = zk.get("populate", {}).get("creates_per_sec")
        lines.append(
            f"for context, ZooKeeper (JVM, default heap) with the same tree: VmRSS "
            f"{mib(zk['after_populate'].get('VmRSS', 0))} (baseline "
            f"{mib(zk['baseline'].get('VmRSS', 0))}; populate "
            f"{'-' if zrate is None else f'{zrate:,.0f}'} creates/s)"
        )
    return lines


def etcd_alone_lines(cases: Sequence[Case]) -> list[str]:
    """For each write at 1x1: etcd's own rate for zetcd's transaction and for a plain put,
    beside ZooKeeper's, and what zetcd adds."""
    lines = []
    for c in cases:
        alone = c.etcd_alone
        if not alone:
            continue
        if "ops_per_sec" not in alone:
            lines.append(f"{c.op} 1x1, etcd alone: failed ({alone.get('failure', '')})")
            continue
        bound = c.etcd_alone_ratio
        line = (
            f"{c.op} 1x1, etcd alone (zetcd's transaction for one {c.op}, one at a time from"
            f" zetcd's etcd client, a watch open): {alone['ops_per_sec']:,.0f}/s, p50"
            f" {fmt_us(alone['p50_us'])}"
        )
        if bound is not None:
            line += f" = {bound:.2f}x ZooKeeper's {c.op} rate, the most zetcd's ratio could be"
        put = alone.get("put")
        if put:
            put_ratio = c.over_zookeeper(put)
            line += f"; a plain put: {put['ops_per_sec']:,.0f}/s, p50 {fmt_us(put['p50_us'])}" + (
                "" if put_ratio is None else f" = {put_ratio:.2f}x"
            )
        zetcd_p50 = c.zetcd.get("p50_us")
        if zetcd_p50 is not None:
            line += (
                f"; zetcd's p50 is {fmt_us(zetcd_p50 - alone['p50_us'])} above the transaction's"
            )
        lines.append(line)
    return lines


def rounds_note(meta: dict[str, Any]) -> str:
    rounds = meta.get("rounds", 1)
    if rounds <= 1:
        return ""
    return (
        f", {rounds} rounds per case (the round with the median ratio shown, the range of the"
        " ratios in brackets)"
    )


def markdown(report: dict[str, Any], cases: Sequence[Case]) -> str:
    meta = report["meta"]
    out = [
        "# zetcd vs ZooKeeper benchmark",
        "",
        f"{meta['date']}, {meta['cpus']} CPUs, load average at start {meta['loadavg']}; "
        f"{meta['params']['warmup']:g} s warm-up + {meta['params']['seconds']:g} s measured per "
        f"case{rounds_note(meta)}; {meta['params']['keys']} keys of {meta['params']['value_size']} B "
        f"(children: {meta['params']['children_parents']} parents x "
        f"{meta['params']['children']} children). Generator: bench/ZetcdBench.java "
        "(Apache ZooKeeper Java client, async API, closed loop). zetcd on Python "
        f"{meta['python']} ({meta.get('python_executable', 'interpreter not recorded')})."
        + (f" etcd run with `{' '.join(meta['etcd_args'])}`." if meta.get("etcd_args") else ""),
        "",
        "| op | sessions x inflight | ZooKeeper ops/s | p50 | p99 | zetcd ops/s | p50 | p99 "
        "| zetcd/ZK | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for c in cases:
        out.append(
            f"| {c.op} | {c.level} | {ops_cell(c.zookeeper)} | {fmt_us(c.zookeeper.get('p50_us'))} "
            f"| {fmt_us(c.zookeeper.get('p99_us'))} | {ops_cell(c.zetcd)} "
            f"| {fmt_us(c.zetcd.get('p50_us'))} | {fmt_us(c.zetcd.get('p99_us'))} "
            f"| {c.ratio_cell()} | >= {c.target:.1f}x "
            f"| {verdict(c.met)} |"
        )
    out.append("")
    out.append("`*` = the run had errors or lost requests (see the JSON).")
    alone = etcd_alone_lines(cases)
    if alone:
        out.append("")
        out.extend(f"- {line}" for line in alone)
    mem = report.get("memory")
    if mem:
        out.append("")
        out.extend(f"- {line}" for line in memory_lines(mem))
    for op, prof in report.get("profiles", {}).items():
        if "own" not in prof:
            continue
        run = prof.get("run", {})
        out += [
            "",
            f"zetcd hot spots, {op} {prof.get('level', '16x8')} (py-spy --gil, {prof['samples']} samples, GIL held "
            f"{100 * prof.get('gil_busy', 0):.0f}% of the time, {run.get('ops_per_sec', 0):,.0f} "
            "ops/s while profiled):",
            "",
            "| own % | function (own time) | incl % | zetcd function (inclusive) |",
            "|---:|---|---:|---|",
        ]
        pairs = zip(prof["own"], prof.get("inclusive_project", []), strict=False)
        for (name, _n, pct), (iname, _in, ipct) in pairs:
            out.append(f"| {pct:.1f} | `{name}` | {ipct:.1f} | `{iname}` |")
    out.append("")
    return "\n".join(out)


def parse_levels(text: str) -> list[tuple[int, int]]:
    levels = []
    for part in text.split(","):
        s, _, k = part.strip().partition("x")
        levels.append((int(s), int(k)))
    return levels


def render(path: Path, markdown_path: Path | None) -> int:
    """Print (and optionally write as markdown) a report saved with --json."""
    report = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(Case)}
    cases = [Case(**{k: v for k, v in c.items() if k in fields}) for c in report.get("cases", [])]
    console.print(results_table(cases))
    for line in etcd_alone_lines(cases) + memory_lines(report.get("memory", {})):
        console.print(line)
    if markdown_path:
        markdown_path.write_text(markdown(report, cases))
        console.print(f"markdown written to {markdown_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds per case [10]")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds per case [3]")
    ap.add_argument("--ops", default=",".join(ALL_OPS), help="comma separated ops [all]")
    ap.add_argument("--levels", default="1x1,16x8", help="sessions x inflight list [1x1,16x8]")
    ap.add_argument("--quick", action="store_true", help="3 s + 1 s per case, 20,000 znodes")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every case this many times on both servers and report the round with the"
        " median ratio, with the range of the ratios [1]",
    )
    ap.add_argument("--keys", type=int, default=1000, help="key znodes for get/exists/set")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--memory-znodes", type=int, default=None, help="[100000; --quick 20000]")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument("--zookeeper-memory", action="store_true", help="also populate a ZooKeeper")
    ap.add_argument("--profile", default="", help="ops to profile zetcd on (py-spy)")
    ap.add_argument(
        "--profile-level", default="16x8", help="sessions x inflight of the profiled runs [16x8]"
    )
    ap.add_argument("--profile-dir", type=Path, default=Path(tempfile.gettempdir()) / "zetcd-prof")
    ap.add_argument("--zetcd-arg", action="append", default=[], help="extra zetcd argument")
    ap.add_argument(
        "--etcd-max-txn-ops",
        type=int,
        default=MAX_TXN_OPS,
        help=f"etcd's --max-txn-ops, told to zetcd too (default {MAX_TXN_OPS}, as zetcd's"
        " embedded etcd)",
    )
    ap.add_argument(
        "--etcd-backend-batch-limit",
        type=int,
        default=BACKEND_BATCH_LIMIT,
        help=f"etcd's --backend-batch-limit (default {BACKEND_BATCH_LIMIT}, as zetcd's embedded"
        " etcd; 0: etcd's own default, 10,000)",
    )
    ap.add_argument("--json", type=Path, help="write results as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the results table as markdown here")
    ap.add_argument(
        "--render", type=Path, help="only re-render a --json report (with --markdown) and exit"
    )
    args = ap.parse_args(argv)
    if args.render:
        return render(args.render, args.markdown)

    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    for op in ops:
        if op not in ALL_OPS:
            ap.error(f"unknown op {op!r} (choose from {', '.join(ALL_OPS)})")
    profile_ops = [op.strip() for op in args.profile.split(",") if op.strip()]
    params = Params(
        seconds=args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0),
        keys=args.keys,
        value_size=args.value_size,
        children=10,
        children_parents=200,
    )
    memory_znodes = args.memory_znodes or (20_000 if args.quick else 100_000)
    levels = parse_levels(args.levels)
    (profile_level,) = parse_levels(args.profile_level)

    gen = Generator(compile_bench())
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        # zetcd runs on this interpreter: an unoptimized build (pyenv's default) costs it 15-20%
        "python_executable": os.path.realpath(sys.executable),
        "params": dataclasses.asdict(params),
        "levels": [f"{s}x{k}" for s, k in levels],
        "rounds": args.rounds,
        "java_opts": list(JAVA_OPTS),
    }
    console.print(
        f"[bold]zetcd vs ZooKeeper[/bold]: ops {', '.join(ops)}; levels {args.levels}; "
        f"{params.warmup:g}+{params.seconds:g} s per case{rounds_note(meta)}; load average "
        f"{meta['loadavg']}"
    )

    report: dict[str, Any] = {"meta": meta}
    cases: list[Case] = []
    txn_ops = str(args.etcd_max_txn_ops)
    zetcd_args = (
        "--tick-time",
        TICK_TIME_MS,
        "--etcd-max-txn-ops",
        txn_ops,
        "--etcd-max-request-bytes",
        str(MAX_REQUEST_BYTES),
        *args.zetcd_arg,
    )
    # the embedded etcd's flags (auto-compaction included), with the limits asked for
    tuning = dict(zip(TUNING_ARGS[::2], TUNING_ARGS[1::2], strict=True))
    tuning["--max-txn-ops"] = txn_ops
    if args.etcd_backend_batch_limit:
        tuning["--backend-batch-limit"] = str(args.etcd_backend_batch_limit)
    else:
        del tuning["--backend-batch-limit"]
    etcd_args = [word for flag in tuning.items() for word in flag]
    meta["etcd_args"] = etcd_args
    with EtcdServer(extra_args=etcd_args) as etcd:
        zk = ZooKeeperServer(config={"tickTime": TICK_TIME_MS})
        ze = ZetcdServer(etcd.endpoint, extra_args=zetcd_args)
        with zk, ze:
            console.print(
                f"etcd {etcd.address} ({' '.join(etcd_args)}), ZooKeeper {zk.address}, "
                f"zetcd {ze.address}"
            )
            cases = run_matrix(gen, zk, ze, ops, levels, params, args.rounds, etcd.endpoint)
            report["cases"] = [dataclasses.asdict(c) | {"ratio": c.ratio} for c in cases]
            zk.stop()
            if profile_ops:
                report["profiles"] = profile_zetcd(
                    gen, ze, profile_ops, profile_level, params, args.profile_dir
                )
        if not args.no_memory:
            report["memory"] = measure_memory(gen, etcd, memory_znodes, args.value_size)
            if args.zookeeper_memory:
                report["memory"]["zookeeper"] = measure_zookeeper_memory(
                    gen, memory_znodes, args.value_size
                )

    console.print()
    console.print(results_table(cases))
    for line in etcd_alone_lines(cases) + memory_lines(report.get("memory", {})):
        console.print(line)
    for op, prof in report.get("profiles", {}).items():
        if "own" not in prof:
            continue
        run = prof.get("run", {})
        title = (
            f"zetcd hot spots, {op} {prof.get('level', '16x8')} under py-spy --gil "
            f"({prof['samples']} samples, GIL held {100 * prof.get('gil_busy', 0):.0f}% of the "
            f"time; {run.get('ops_per_sec', 0):,.0f} ops/s while profiled)"
        )
        table = Table(title=title)
        table.add_column("own %", justify="right")
        table.add_column("function (own time)")
        table.add_column("incl %", justify="right")
        table.add_column("zetcd function (inclusive)")
        pairs = zip(prof["own"], prof["inclusive_project"], strict=False)
        for (name, _n, pct), (iname, _in, ipct) in pairs:
            table.add_row(f"{pct:.1f}", name, f"{ipct:.1f}", iname)
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"JSON written to {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(report, cases))
        console.print(f"markdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run kazoo's own test suite (``kazoo.tests``) against ZooKeeper 3.8 and zetcd and compare.

    .venv/bin/python -m tools.kazoo_suite                  # whole suite, table of every test
    .venv/bin/python -m tools.kazoo_suite --divergent-only --json reports/kazoo-suite.json
    .venv/bin/python -m tools.kazoo_suite --module test_lock --module test_watchers

Starts its own etcd, a standalone ZooKeeper 3.8 (tests/servers.py's settings: tickTime 2000,
...) and a zetcd, runs ``pytest --pyargs kazoo.tests`` once per server in a subprocess with
tests/kazoo_plugin.py pointing kazoo's harness at that server, and prints one row per kazoo
test: its outcome on ZooKeeper, on zetcd, and a verdict. Exits 1 if a test passes on ZooKeeper
but not on zetcd (a divergence), or if an entry of :data:`EXCLUDED_TESTS` passes on the
standalone ZooKeeper (the exclusion list is then stale). docs/kazoo-suite.md has the details;
tests/test_kazoo_suite.py runs the same suite against the test session's zetcd.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PLUGIN = "tests.kazoo_plugin"

# The superuser kazoo's own harness configures (super:test); test_add_remove_observer uses it.
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="

_ENSEMBLE = "needs a ZooKeeper ensemble (several servers); the target is a single server"
_RECONFIG = (
    "reconfig needs a quorum ensemble with reconfigEnabled; a standalone ZooKeeper 3.8 "
    "answers ReconfigDisabled (as zetcd does)"
)

# kazoo test modules whose every test skips here: tests/test_kazoo_suite.py does not run them.
EXCLUDED_MODULES: Mapping[str, str] = {
    "test_gevent_handler.py": "gevent is not installed (every test skips)",
    "test_eventlet_handler.py": "eventlet is not installed (every test skips)",
    "test_sasl.py": "needs puresasl (not installed) and a JAAS-configured server (every test skips)",
    "test_build.py": "runs only with CI set, to compare the server's version with ZOOKEEPER_VERSION",
}

# Short node id -> why it cannot pass against a single standalone server. Each entry fails
# (or skips) on a standalone ZooKeeper 3.8 as well: this tool checks that and reports any
# entry that passes there. tests/test_kazoo_suite.py deselects them.
EXCLUDED_TESTS: Mapping[str, str] = {
    "test_client.py::TestClient::test_update_host_list": (
        _ENSEMBLE + ": stops the client's server and expects it to stay connected to another"
    ),
    "test_client.py::TestSSLClient::test_create": (
        "needs the TLS client port and certificates kazoo's own ensemble harness generates"
    ),
    "test_client.py::TestReconfig::test_add_remove_observer": _RECONFIG,
    "test_client.py::TestReconfig::test_bad_input": _RECONFIG,
    "test_client.py::TestReconfig::test_no_super_auth": _RECONFIG,
    "test_connection.py::TestReadOnlyMode::test_read_only": (
        _ENSEMBLE + ": stops two servers of three to put the third in read-only mode"
    ),
    "test_utils.py::TestCreateTCPConnection::test_timeout_arg_eventlet": (
        "eventlet is not installed (skips)"
    ),
}

# Short node id -> diagnosis: tests that pass on ZooKeeper and fail on zetcd, to be fixed in
# zetcd and then removed from here. tests/test_kazoo_suite.py requires each of them to fail
# (so a fix cannot go unnoticed) and every other test to pass. Empty: on 2026-11-27 every
# kazoo test that passes on a standalone ZooKeeper 3.8 also passes on zetcd.
KNOWN_DIVERGENCES: Mapping[str, str] = {}


@dataclass(frozen=True)
class Outcome:
    """One kazoo test's result: outcome is passed, failed, error or skipped."""

    outcome: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"


def kazoo_tests_dir() -> Path:
    import kazoo.tests

    return Path(kazoo.tests.__file__).resolve().parent


def _short_id(nodeid: str) -> str:
    """``kazoo/tests/test_x.py::C::t`` (or a site-packages path) -> ``test_x.py::C::t``."""
    path, sep, rest = nodeid.partition("::")
    return Path(path).name + sep + rest


def run_kazoo_suite(
    address: str,
    *,
    modules: Sequence[str] = (),
    deselect: Iterable[str] = (),
    phase_timeout: float = 90.0,
    total_timeout: float = 1800.0,
    log_path: Path | None = None,
) -> dict[str, Outcome]:
    """Run kazoo's tests against the server at ``address``; ``{short nodeid: Outcome}``.

    ``modules`` restricts the run (``test_lock`` or ``test_lock.py``); ``deselect`` takes
    short node ids. pytest's output goes to ``log_path`` (default: discarded).
    """
    tests_dir = kazoo_tests_dir()
    if modules:
        targets = [str(tests_dir / (m if m.endswith(".py") else m + ".py")) for m in modules]
    else:
        targets = [str(tests_dir)]
    with tempfile.TemporaryDirectory(prefix="kazoo-suite-") as tmp:
        report = Path(tmp) / "report.json"
        # An empty ini file and a private rootdir: zetcd's own pytest settings (warnings as
        # errors, strict markers) are not kazoo's, and caches stay out of the tree.
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "ZETCD_KAZOO_TARGET": address,
            "ZETCD_KAZOO_REPORT": str(report),
            "ZETCD_KAZOO_TIMEOUT": str(phase_timeout),
        }
        for key in ("CI", "ZOOKEEPER_VERSION", "ZOOKEEPER_LOCAL_SESSION_RO"):
            env.pop(key, None)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ini),
            "--rootdir",
            str(tests_dir),
            "-p",
            PLUGIN,
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            *targets,
        ]
        for nodeid in deselect:
            argv += ["--deselect", nodeid]  # node ids are relative to --rootdir
        with contextlib.ExitStack() as stack:
            out = (
                stack.enter_context(log_path.open("w"))
                if log_path is not None
                else subprocess.DEVNULL
            )
            proc = subprocess.run(
                argv,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=total_timeout,
                check=False,
            )
        if not report.exists():
            raise RuntimeError(
                f"kazoo's suite wrote no report (pytest exit status {proc.returncode})"
            )
        raw: dict[str, dict[str, str]] = json.loads(report.read_text())
    return {_short_id(k): Outcome(v["outcome"], v["message"]) for k, v in raw.items()}


# -- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    test: str
    zookeeper: Outcome | None
    zetcd: Outcome | None

    @property
    def verdict(self) -> str:
        if self.zookeeper is None or self.zetcd is None:
            return "not compared"  # --only: one server was not run
        zk, ze = self.zookeeper.outcome, self.zetcd.outcome
        if zk == "passed" and ze != "passed":
            return "DIVERGENCE"
        if ze == "passed" and zk != "passed":
            return "zetcd only"
        if zk == ze == "passed":
            return "ok"
        return "both fail" if zk != "skipped" else "skipped"


def compare(zookeeper: Mapping[str, Outcome], zetcd: Mapping[str, Outcome]) -> list[Row]:
    """One row per test; with both runs, a test one of them did not collect is "absent"."""
    tests = sorted(set(zookeeper) | set(zetcd))
    absent = Outcome("absent", "not collected") if zookeeper and zetcd else None
    return [Row(t, zookeeper.get(t, absent), zetcd.get(t, absent)) for t in tests]


def format_table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    def cell(outcome: Outcome | None) -> str:
        return outcome.outcome if outcome else "absent"

    header = ("test", "ZooKeeper", "zetcd", "verdict")
    body = [(r.test, cell(r.zookeeper), cell(r.zetcd), r.verdict) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    )


# -- servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _servers(want_zookeeper: bool, want_zetcd: bool) -> Iterator[tuple[str | None, str | None]]:
    from tests.servers import EtcdServer, ZooKeeperServer
    from tests.zetcd_server import ZetcdServer

    with contextlib.ExitStack() as stack:
        zk_address = ze_address = None
        if want_zookeeper:
            zk = ZooKeeperServer(config={"DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
            zk_address = stack.enter_context(zk).address
        if want_zetcd:
            etcd = stack.enter_context(EtcdServer())
            zetcd = ZetcdServer(etcd.endpoint, extra_args=("--super-digest", SUPER_DIGEST))
            ze_address = stack.enter_context(zetcd).address
        yield zk_address, ze_address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kazoo_suite", description=__doc__)
    parser.add_argument("--module", action="append", default=[], help="kazoo test module")
    parser.add_argument("--only", choices=("zookeeper", "zetcd"), help="run one server only")
    parser.add_argument("--divergent-only", action="store_true", help="rows that differ only")
    parser.add_argument("--markdown", action="store_true", help="table in Markdown")
    parser.add_argument("--json", type=Path, help="write both runs' outcomes here")
    parser.add_argument("--logs", type=Path, help="directory for both runs' pytest output")
    parser.add_argument("--phase-timeout", type=float, default=90.0)
    args = parser.parse_args(argv)

    runs: dict[str, dict[str, Outcome]] = {"zookeeper": {}, "zetcd": {}}
    with _servers(args.only != "zetcd", args.only != "zookeeper") as (zk, ze):
        for kind, address in (("zookeeper", zk), ("zetcd", ze)):
            if address is None:
                continue
            log = None
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                log = args.logs / f"{kind}.log"
            started = time.monotonic()
            runs[kind] = run_kazoo_suite(
                address, modules=args.module, phase_timeout=args.phase_timeout, log_path=log
            )
            print(
                f"{kind}: {len(runs[kind])} tests in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
            )

    rows = compare(runs["zookeeper"], runs["zetcd"])
    quiet = ("ok", "skipped", "not compared")
    shown = [r for r in rows if r.verdict not in quiet] if args.divergent_only else rows
    print(format_table(shown, markdown=args.markdown))

    status = 0
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    print("\n" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    divergences = [r for r in rows if r.verdict == "DIVERGENCE"]
    for row in divergences:
        known = " (known)" if row.test in KNOWN_DIVERGENCES else ""
        message = row.zetcd.message if row.zetcd else "not run on zetcd"
        print(f"\nDIVERGENCE{known} {row.test}:\n{message}")
        status = 1
    if runs["zookeeper"]:
        for test in EXCLUDED_TESTS:
            outcome = runs["zookeeper"].get(test)
            if outcome is not None and outcome.ok:
                print(f"\nSTALE EXCLUSION {test}: passes on the standalone ZooKeeper")
                status = 1
    if runs["zetcd"]:
        for test in KNOWN_DIVERGENCES:
            outcome = runs["zetcd"].get(test)
            if outcome is not None and outcome.ok:
                print(f"\nFIXED {test}: passes on zetcd, remove it from KNOWN_DIVERGENCES")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {k: {t: vars(o) for t, o in v.items()} for k, v in runs.items()},
                indent=1,
                sort_keys=True,
            )
        )
    return status


if __name__ == "__main__":
    sys.exit(main())

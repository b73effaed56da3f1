"""A zetcd process for tests and benchmarks, run through its real command line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.servers import LOOPBACK, ZooKeeperTLS, _Server, four_letter_word, free_port


class ZetcdServer(_Server):
    """``python -m zetcd`` in front of a given etcd, under its own key prefix.

    Each instance gets a unique prefix, so several zetcd processes can share one etcd
    without seeing each other's trees (or share a prefix on purpose, to test resumption).
    """

    kind = "zetcd"

    def __init__(
        self,
        endpoint: str,
        *,
        prefix: str | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 30.0,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, base_dir=base_dir)
        self.etcd_endpoint = endpoint
        self.prefix = prefix or f"/zetcd-test-{uuid.uuid4().hex[:8]}/"
        self.extra_args = extra_args
        self.host = LOOPBACK
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        self.port = free_port()
        return [
            sys.executable,
            "-m",
            "zetcd",
            "--zkaddr",
            self.address,
            "--endpoints",
            self.etcd_endpoint,
            "--prefix",
            self.prefix,
            "--4lw-whitelist",
            "*",  # as the test ZooKeeper's 4lw.commands.whitelist
            "--max-client-cnxns",
            "0",  # as the test ZooKeeper's maxClientCnxns
            *self.extra_args,
        ]

    def _probe(self) -> bool:
        try:
            return four_letter_word(self.host, self.port, "ruok", timeout=1.0) == "imok"
        except OSError:
            return False


class SecureZetcd(ZetcdServer):
    """A zetcd serving TLS clients too (``secure_address``), with ``tls``'s server certificate
    and its ``ssl.clientAuth`` (with client certificates: trusting ``tls``'s trust store)."""

    def __init__(self, endpoint: str, tls: ZooKeeperTLS, *extra: str) -> None:
        self.secure_port = free_port()
        trust = ("--zk-cacert", str(tls.truststore)) if tls.client_auth != "none" else ()
        super().__init__(
            endpoint,
            extra_args=(
                "--secure-zkaddr",
                f"127.0.0.1:{self.secure_port}",
                "--zk-cert",
                str(tls.keystore),
                "--zk-client-auth",
                tls.client_auth,
                *trust,
                *extra,
            ),
        )

    @property
    def secure_address(self) -> str:
        return f"127.0.0.1:{self.secure_port}"


def zetcd_refusal(args: list[str]) -> str:
    """Run the zetcd command line (``-v 0``, on a free port unless ``args`` name --zkaddr) with
    ``args``, which must make it exit 2 at start-up without a traceback, and return what it
    printed on stderr: one line (``zetcd: ...``), or typer's usage box for a flag error
    ("Invalid value")."""
    argv = [sys.executable, "-m", "zetcd", "-v", "0"]
    if "--zkaddr" not in args:
        argv += ["--zkaddr", f"127.0.0.1:{free_port()}"]
    proc = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or "Invalid value" in proc.stderr, proc.stderr
    return proc.stderr

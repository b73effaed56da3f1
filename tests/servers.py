"""Real etcd and ZooKeeper servers on loopback, for tests, fuzz campaigns and benchmarks.

Theory of operation: each server runs as a child process in its own session (process group)
with a private temporary directory holding its data, configuration and log. ``start()`` returns
only once the server answers (etcd: ``GET /health``; ZooKeeper: ``ruok`` -> ``imok``), within a
bounded time; a server that dies or never answers raises :class:`ServerStartError` carrying the
tail of its log. ``stop()`` terminates the whole process group, reaps it and removes the
directory; it is idempotent, and all these classes are context managers. Ports come from
:func:`free_port`; a start that loses the race for its port (another process bound it between
``free_port`` and the server's own bind) is retried on fresh ports.

:class:`ZooKeeperEnsemble` runs three such ZooKeepers as one quorum (``QuorumPeerMain``), for
what only an ensemble shows (a session moved from one server to another); its ``start()``
returns once one server leads and the others follow.

Servers started from the main thread are also killed by the kernel if this Python process dies
(``PR_SET_PDEATHSIG``), so a crashed or killed test run leaves no JVM or etcd behind.

Needs the Debian packages installed by ``make deps``: etcd-server (``/usr/bin/etcd``),
zookeeper + libzookeeper-java (``/usr/share/java/zookeeper.jar``), libslf4j-java and
liblog4j1.2-java (server logging) and a Java runtime.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LOOPBACK = "127.0.0.1"

ETCD_BINARY = "/usr/bin/etcd"
ZOOKEEPER_JARS: tuple[str, ...] = (
    # zookeeper.jar's manifest Class-Path brings zookeeper-jute, netty, slf4j-api, jackson,
    # jetty, metrics, snappy and commons-*; the two jars below are the logging binding that
    # makes slf4j write through log4j 1.2 (without them the server logs nothing at all).
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
)
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
ZOOKEEPER_QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# With ``tls``: the secure port needs the Netty connection factory (the NIO one exits with "SSL
# isn't supported in NIOServerCnxn"), and that needs netty-codec, which zookeeper.jar's manifest
# does not bring (without it no connection works on either port).
ZOOKEEPER_TLS_JARS: tuple[str, ...] = ("/usr/share/java/netty-codec.jar",)
ZOOKEEPER_NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"

# Settings every test ZooKeeper gets; ``ZooKeeperServer(config=...)`` overrides or adds keys.
ZOOKEEPER_DEFAULT_CONFIG: Mapping[str, str] = {
    "tickTime": "2000",
    "maxClientCnxns": "0",
    "admin.enableServer": "false",
    "4lw.commands.whitelist": "*",
    # The transaction log preallocates 64 MiB per file by default; 1 MiB (the unit is KiB)
    # keeps a test server's footprint small.
    "preAllocSize": "1024",
    # Unknown keys become system properties "zookeeper.<key>": this one allows TTL nodes
    # (createTTL, opcode 21). It changes nothing else a client can see (checked on 3.8.0: the
    # standalone server's session ids start with byte 0x01 with or without it).
    "extendedTypesEnabled": "true",
}

# What an ensemble adds to ZOOKEEPER_DEFAULT_CONFIG: how many ticks a follower has to connect
# to and sync with its leader (initLimit), and to stay in sync (syncLimit).
ZOOKEEPER_ENSEMBLE_CONFIG: Mapping[str, str] = {
    "initLimit": "10",
    "syncLimit": "5",
}
# Three JVMs on a small machine: a small heap, the serial collector, and only the C1 compiler
# (the JIT's start-up cost, not its peak speed, matters to a test).
ZOOKEEPER_ENSEMBLE_JVM_OPTS: tuple[str, ...] = (
    "-Xms32m",
    "-Xmx128m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
)

_LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={log}
log4j.appender.FILE.Append=true
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t:%C{{1}}@%L] - %m%n
"""

_PORT_IN_USE_MARKERS = ("address already in use", "bindexception")
_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A server did not become ready; the message ends with the tail of its log."""


def freeze(pid: int, within: float = 5.0) -> None:
    """SIGSTOP a process and return once all of it has stopped: kill() returns before every
    thread of a busy process has, and a request sent in between may still be answered."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        tasks = Path(f"/proc/{pid}/task")
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        if all(state in "tT" for state in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop within {within} s")


def wait_until(check: Callable[[], object], within: float, why: str) -> None:
    """Poll ``check`` until it is true; fail with ``why`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago (bound to port 0, then released)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct TCP ports on ``host`` that were free a moment ago (all bound to port
    0 at once, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET)) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def four_letter_word(
    host: str, port: int, word: str, timeout: float = 5.0, payload: bytes = b""
) -> str:
    """Send a ZooKeeper four-letter word (``ruok``, ``srvr``, ...; ``stmk`` takes its mask as
    ``payload``) and return the whole answer."""
    if len(word) != 4:
        raise ValueError(f"four-letter word must have 4 letters: {word!r}")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii") + payload)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Process:
    """A child process in its own process group, logging to a file."""

    def __init__(self, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        in_main_thread = threading.current_thread() is threading.main_thread()
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # PDEATHSIG fires when the *thread* that forked exits, so only use it from the
                # main thread, whose exit is the process's.
                preexec_fn=_die_with_parent if in_main_thread else None,
            )

    def exited(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        """SIGTERM the process group, without waiting."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        else:
            # The leader is gone; make sure nothing it started lingers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)


class ManagedServer(abc.ABC):
    """Shared life cycle: temp dir, start with retries on a lost port race, stop, log tail.

    A subclass sets ``kind``, writes its files and returns its command line in ``_argv()``
    (called once per start attempt, inside a fresh ``self._dir``) and answers one readiness
    check in ``_probe()``.
    """

    kind = "server"
    startup_timeout: float
    _process: _Process | None
    _tmp: Path | None

    def __init__(self, *, startup_timeout: float, base_dir: str | os.PathLike[str] | None) -> None:
        self.startup_timeout = startup_timeout
        self._base_dir = base_dir
        self._process = None
        self._tmp = None

    @property
    def log_path(self) -> Path:
        return self._dir / "server.log"

    @property
    def _dir(self) -> Path:
        if self._tmp is None:
            raise RuntimeError(f"{self.kind} is not started")
        return self._tmp

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.kind} is not started")
        return self._process.popen.pid

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def start(self) -> Self:
        if self._process is not None:
            raise RuntimeError(f"{self.kind} already started")
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
                self._wait_ready()
                return self
            except ServerStartError as exc:
                lost_port_race = self.lost_port_race()
                self.stop()
                if not lost_port_race or attempt == attempts:
                    raise exc from None
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        """Make a fresh temp dir and start the process there, without waiting for it."""
        self._tmp = Path(tempfile.mkdtemp(prefix=f"zetcd-{self.kind}-", dir=self._base_dir))
        self._process = _Process(self._argv(), self.log_path, self._dir)

    def lost_port_race(self) -> bool:
        """Whether the log says a port was taken (by another process, since ``free_port``)."""
        if self._tmp is None:
            return False
        tail = self.log_tail(200).lower()
        return any(marker in tail for marker in _PORT_IN_USE_MARKERS)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM), without waiting: ``stop()`` still has to follow."""
        if self._process is not None:
            self._process.terminate()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.exited() is None

    @abc.abstractmethod
    def _argv(self) -> list[str]:
        """Prepare the temp dir (config files, ports) and return the command line."""

    @abc.abstractmethod
    def _probe(self) -> bool:
        """One bounded readiness check: True once the server answers."""

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.02
        while True:
            code = self._process.exited()
            if code is not None:
                raise ServerStartError(
                    f"{self.kind} exited with status {code} during startup; "
                    f"its log ends:\n{self.log_tail()}"
                )
            if self._probe():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.kind} not ready after {self.startup_timeout:.0f}s; "
                    f"its log ends:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class EtcdTLS:
    """PEM files for an etcd serving its clients over TLS: its certificate and key (for
    127.0.0.1), the CA that signed them, and, with ``client_auth``, etcd checks that clients
    present a certificate that CA signed (``--client-cert-auth``); ``client_cert`` and
    ``client_key`` are one (for the tests' own probes and clients)."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    client_auth: bool = False

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@dataclass(frozen=True)
class ZooKeeperTLS:
    """PEM files for a ZooKeeper serving clients over TLS on its ``secureClientPort``.

    ``keystore`` holds the server's private key in PKCS#8 (``BEGIN PRIVATE KEY``; 3.8 refuses
    a traditional EC/RSA key) and its certificate, in one file (``ssl.keyStore.location``);
    ``truststore`` is the CA (``ssl.trustStore.location``); ``ca`` is the CA for clients to
    trust (the same file). ``client_auth`` is ``ssl.clientAuth``: ``none``, ``want`` or
    ``need`` (ZooKeeper's own default is ``need``); ``ca_key`` signs client certificates
    (tests/pki.py).
    """

    keystore: Path
    truststore: Path
    ca: Path
    client_auth: str = "none"
    ca_key: Path | None = None  # the CA's private key (PEM), to issue client certificates

    def client_context(self) -> ssl.SSLContext:
        """A context trusting ``ca``, limited to TLS 1.2 as ZooKeeper 3.8 is by default."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context


def write_zk_tls(directory: Path, client_auth: str = "none") -> ZooKeeperTLS:
    """Make a CA and a server certificate for 127.0.0.1 and localhost (trustme) and write
    ``directory``/``server.pem`` (PKCS#8 key + certificate), ``ca.pem`` and ``ca-key.pem``."""
    # Test-only dependencies: imported here so that servers.py loads without them.
    import trustme
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    # trustme writes a traditional "BEGIN EC PRIVATE KEY"; ZooKeeper wants PKCS#8.
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tls = ZooKeeperTLS(
        keystore=directory / "server.pem",
        truststore=directory / "ca.pem",
        ca=directory / "ca.pem",
        client_auth=client_auth,
        ca_key=directory / "ca-key.pem",
    )
    ca.private_key_pem.write_to_path(str(tls.ca_key))
    tls.keystore.write_bytes(pkcs8 + b"".join(pem.bytes() for pem in server.cert_chain_pems))
    ca.cert_pem.write_to_path(str(tls.truststore))
    return tls


class EtcdServer(ManagedServer):
    """A single-member etcd on loopback with its own data directory.

    ``EtcdServer().start()`` (or ``with EtcdServer() as etcd:``) then use ``etcd.endpoint``
    (``http://127.0.0.1:P``, ``https://`` with ``tls``), ``etcd.host`` and ``etcd.port``.
    """

    kind = "etcd"

    def __init__(
        self,
        *,
        binary: str = ETCD_BINARY,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        base_dir: str | os.PathLike[str] | None = None,
        tls: EtcdTLS | None = None,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, base_dir=base_dir)
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.tls = tls
        self.host = LOOPBACK
        self.port = 0
        self.peer_port = 0

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _argv(self) -> list[str]:
        if not os.access(self.binary, os.X_OK):
            raise ServerStartError(f"{self.binary} not found: run `make deps` (etcd-server)")
        self.port = free_port(self.host)
        self.peer_port = free_port(self.host)
        client_url = self.endpoint
        peer_url = f"http://{self.host}:{self.peer_port}"
        name = "zetcd-test"
        tls: list[str] = []
        if self.tls is not None:
            tls = ["--cert-file", str(self.tls.cert), "--key-file", str(self.tls.key)]
            if self.tls.client_auth:
                tls += ["--client-cert-auth", "--trusted-ca-file", str(self.tls.ca)]
        return [
            self.binary,
            "--name",
            name,
            "--data-dir",
            str(self._dir / "data"),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"{name}={peer_url}",
            "--initial-cluster-state",
            "new",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            *tls,
            *self.extra_args,
        ]

    def _probe(self) -> bool:
        context = self.tls.client_context() if self.tls is not None else None
        try:
            with urllib.request.urlopen(
                f"{self.endpoint}/health", timeout=1.0, context=context
            ) as response:
                body: bytes = response.read()
        except (OSError, urllib.error.URLError):
            return False
        return b'"health":"true"' in body.replace(b" ", b"")


class ZooKeeperServer(ManagedServer):
    """A standalone ZooKeeper 3.8 (Debian package) on loopback.

    ``config`` overrides or adds ``zoo.cfg`` keys on top of :data:`ZOOKEEPER_DEFAULT_CONFIG`
    (``dataDir``, ``clientPort`` and ``clientPortAddress`` are always set here). ``jvm_opts``
    go to ``java`` before the class path (e.g. ``["-Xmx512m"]``). With ``tls`` (see
    :func:`write_zk_tls`) it also serves TLS clients on ``secure_port`` (``secure_address``),
    with the Netty connection factory; the plain ``port`` keeps working beside it.
    """

    kind = "zookeeper"
    main_class = ZOOKEEPER_MAIN

    def __init__(
        self,
        *,
        config: Mapping[str, str] | None = None,
        jvm_opts: Sequence[str] = (),
        java: str | None = None,
        startup_timeout: float = 60.0,
        base_dir: str | os.PathLike[str] | None = None,
        tls: ZooKeeperTLS | None = None,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, base_dir=base_dir)
        self.config = {**ZOOKEEPER_DEFAULT_CONFIG, **(config or {})}
        self.tls = tls
        self.jvm_opts = tuple(jvm_opts)
        self.java = java or shutil.which("java") or "/usr/bin/java"
        self.host = LOOPBACK
        self.port = 0
        self.secure_port = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secure_address(self) -> str:
        if self.tls is None:
            raise RuntimeError("this ZooKeeper has no secure port (no tls)")
        return f"{self.host}:{self.secure_port}"

    @property
    def conf_dir(self) -> Path:
        return self._dir / "conf"

    def four_letter_word(self, word: str, timeout: float = 5.0) -> str:
        return four_letter_word(self.host, self.port, word, timeout)

    def mode(self, timeout: float = 1.0) -> str | None:
        """The ``Mode:`` that ``srvr`` reports (``standalone``, ``leader``, ``follower``), or
        None while the server does not answer or serve requests."""
        try:
            answer = self.four_letter_word("srvr", timeout)
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def _pick_ports(self) -> None:
        if self.tls is None:
            self.port = free_port(self.host)
        else:
            self.port, self.secure_port = free_ports(2, self.host)

    def _argv(self) -> list[str]:
        jars = [*ZOOKEEPER_JARS, *(ZOOKEEPER_TLS_JARS if self.tls is not None else ())]
        missing = [jar for jar in jars if not os.path.exists(jar)]
        if missing:
            raise ServerStartError(f"missing {', '.join(missing)}: run `make deps` (zookeeper)")
        if not os.access(self.java, os.X_OK):
            raise ServerStartError(f"{self.java} not found: run `make deps` (default-jre-headless)")
        self._pick_ports()
        data_dir = self._dir / "data"
        data_dir.mkdir()
        self.conf_dir.mkdir()
        settings = {
            **self.config,
            "dataDir": str(data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": self.host,
        }
        if self.tls is not None:
            settings |= {
                "secureClientPort": str(self.secure_port),
                "secureClientPortAddress": self.host,
                "serverCnxnFactory": ZOOKEEPER_NETTY_FACTORY,
                "ssl.keyStore.location": str(self.tls.keystore),
                "ssl.trustStore.location": str(self.tls.truststore),
                "ssl.clientAuth": self.tls.client_auth,
            }
        cfg = self.conf_dir / "zoo.cfg"
        cfg.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        (self.conf_dir / "log4j.properties").write_text(_LOG4J_PROPERTIES.format(log=self.log_path))
        classpath = ":".join([str(self.conf_dir), *jars])
        return [
            self.java,
            *self.jvm_opts,
            "-Dzookeeper.log.dir=" + str(self._dir),
            "-cp",
            classpath,
            self.main_class,
            str(cfg),
        ]

    def _probe(self) -> bool:
        # ``ruok`` answers ``imok`` as soon as the connection factory runs, a few ms before the
        # ZooKeeperServer behind it serves requests (``srvr`` then says "This ZooKeeper instance
        # is not currently serving requests"), so wait for both.
        try:
            return self.four_letter_word("ruok", timeout=1.0) == "imok" and self.four_letter_word(
                "srvr", timeout=1.0
            ).startswith("Zookeeper version:")
        except OSError:
            return False


class _QuorumPeer(ZooKeeperServer):
    """One server of a :class:`ZooKeeperEnsemble`: its ``myid`` and its client port are given
    (every server's configuration names all the others' quorum and election ports); it is
    ready once it leads or follows."""

    kind = "zookeeper-peer"
    main_class = ZOOKEEPER_QUORUM_MAIN

    def __init__(self, myid: int, client_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.myid = myid
        self._client_port = client_port

    def _pick_ports(self) -> None:
        self.port = self._client_port

    def _argv(self) -> list[str]:
        argv = super()._argv()
        (self._dir / "data" / "myid").write_text(f"{self.myid}\n")
        return argv

    def _probe(self) -> bool:
        return self.mode() in ("leader", "follower")


class ZooKeeperEnsemble:
    """Three ZooKeeper 3.8 servers (Debian package) on loopback, one quorum.

    ``ZooKeeperEnsemble().start()`` (or ``with ZooKeeperEnsemble() as ensemble:``) returns once
    one server leads and the others follow; then ``addresses`` are the servers' client
    addresses (``127.0.0.1:P``, in ``myid`` order), ``leader`` is the leader's and
    ``followers`` the followers'. ``config`` overrides or adds ``zoo.cfg`` keys on top of
    :data:`ZOOKEEPER_DEFAULT_CONFIG` and :data:`ZOOKEEPER_ENSEMBLE_CONFIG`; ``jvm_opts`` go to
    each server's ``java`` (:data:`ZOOKEEPER_ENSEMBLE_JVM_OPTS` by default). A start that
    loses the race for a port is retried on fresh ports, as a single server's.
    """

    size = 3

    def __init__(
        self,
        *,
        config: Mapping[str, str] | None = None,
        jvm_opts: Sequence[str] = ZOOKEEPER_ENSEMBLE_JVM_OPTS,
        java: str | None = None,
        startup_timeout: float = 60.0,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = {**ZOOKEEPER_ENSEMBLE_CONFIG, **(config or {})}
        self.jvm_opts = tuple(jvm_opts)
        self.java = java
        self.startup_timeout = startup_timeout
        self._base_dir = base_dir
        self.servers: list[_QuorumPeer] = []
        self.leader = ""
        self.followers: list[str] = []

    @property
    def addresses(self) -> list[str]:
        return [server.address for server in self.servers]

    def _peers(self) -> list[_QuorumPeer]:
        # Each server: a client port, a quorum port (followers to the leader) and an election
        # port, all distinct.
        ports = free_ports(3 * self.size)
        client_ports = ports[: self.size]
        quorum_ports, election_ports = ports[self.size :: 2], ports[self.size + 1 :: 2]
        members = {
            f"server.{myid}": f"{LOOPBACK}:{quorum}:{election}"
            for myid, (quorum, election) in enumerate(
                zip(quorum_ports, election_ports, strict=True), start=1
            )
        }
        return [
            _QuorumPeer(
                myid,
                client_port,
                config={**self.config, **members},
                jvm_opts=self.jvm_opts,
                java=self.java,
                startup_timeout=self.startup_timeout,
                base_dir=self._base_dir,
            )
            for myid, client_port in enumerate(client_ports, start=1)
        ]

    def start(self) -> Self:
        if self.servers:
            raise RuntimeError("zookeeper ensemble already started")
        attempts = 3
        for attempt in range(1, attempts + 1):
            self.servers = self._peers()
            try:
                # All at once: none of them serves before a quorum of them runs.
                for server in self.servers:
                    server._launch()
                for server in self.servers:
                    server._wait_ready()
                self._find_leader()
                return self
            except ServerStartError as exc:
                lost_port_race = any(server.lost_port_race() for server in self.servers)
                self.stop()
                if not lost_port_race or attempt == attempts:
                    raise exc from None
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _find_leader(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            modes = {server.address: server.mode() for server in self.servers}
            leaders = [address for address, mode in modes.items() if mode == "leader"]
            followers = [address for address, mode in modes.items() if mode == "follower"]
            if len(leaders) == 1 and len(followers) == self.size - 1:
                self.leader, self.followers = leaders[0], followers
                return
            if time.monotonic() > deadline:
                raise ServerStartError(f"zookeeper ensemble has no single leader: {modes}")
            time.sleep(0.05)

    def stop(self) -> None:
        servers, self.servers = self.servers, []
        for server in servers:  # all at once: each JVM takes a moment to shut down
            server.terminate()
        for server in servers:
            server.stop()
        self.leader, self.followers = "", []

    def __enter__(self) -> Self:
        if not self.servers:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# The name this base class had first; tests/zetcd_server.py imports it.
_Server = ManagedServer

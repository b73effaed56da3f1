"""The ``zetcd`` command: all wiring happens here."""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import grpc
import trio
import typer

from zetcd import __version__

UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
INT32_MAX = 2**31 - 1

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode=None)
log = logging.getLogger("zetcd")

# Go zetcd spellings (single dash) of its flags, rewritten to ours so existing scripts keep
# working; Go's flag package also takes -name=value, -flag=true|false, and -h for help
GO_FLAGS = {
    "-zkaddr": "--zkaddr",
    "-endpoints": "--endpoints",
    "-logtostderr": "--logtostderr",
    "-debug-zkbridge": "--debug-zkbridge",
    "-debug-oracle": "--debug-oracle",
}
_TRUE, _FALSE = {"true", "t", "1"}, {"false", "f", "0"}


def translate_go_flags(
    argv: list[str],
    long_options: frozenset[str] = frozenset(),
    flags: frozenset[str] = frozenset({"--logtostderr"}),
) -> list[str]:
    """Go-style arguments rewritten to ours: the Go zetcd's flags, and ``-name`` for any of our
    ``long_options`` (``--name``), each also as ``-name=value`` (for the boolean ``flags``,
    ``-name=true|false``); ``-v=N``; ``-h``."""
    out: list[str] = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name in GO_FLAGS or (name.startswith("-") and "-" + name in long_options):
            ours = GO_FLAGS.get(name, "-" + name)
            if ours in flags and eq:
                if value.lower() in _TRUE:
                    arg = ours
                elif value.lower() in _FALSE:
                    arg = "--no-" + ours[2:]
                else:
                    arg = ours + eq + value  # rejected, with click's message
            else:
                arg = ours + eq + value
        elif name == "-v" and eq:
            out.append("-v")
            arg = value
        elif arg == "-h":
            arg = "--help"
        out.append(arg)
    return out


def parse_hostport(text: str, default_port: int, empty_host: str = "127.0.0.1") -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``:port`` (host ``empty_host``) or ``host``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        p = int(port)
    except ValueError:
        raise typer.BadParameter(f"bad port in {text!r}") from None
    if not 0 <= p <= 65535:
        raise typer.BadParameter(f"port out of range in {text!r}")
    return host.strip("[]") or empty_host, p


def parse_endpoints(text: str, tls: bool = False) -> list[str]:
    """The endpoints as URLs: a bare ``host:port`` gets ``https://`` if TLS settings are given
    (``tls``), else ``http://``."""
    eps = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        scheme, sep, _ = part.partition("://")
        if not sep:
            part = ("https://" if tls else "http://") + part
        elif scheme.lower() not in ("http", "https"):
            raise typer.BadParameter(
                f"{part}: endpoints are http://host:port, https://host:port or host:port"
            )
        eps.append(part)
    if not eps:
        raise typer.BadParameter("no endpoint given")
    from zetcd.etcd import endpoints_tls
    from zetcd.etcd import parse_endpoints as targets

    try:
        targets(eps)  # what the etcd client will make of them
        endpoints_tls(eps, tls)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return eps


def tls_context(cacert: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The SSL context for etcd from --cacert, --cert and --key; None when none is given."""
    if cacert is None and cert is None and key is None:
        return None
    if key is not None and cert is None:
        raise typer.BadParameter("--key needs --cert (the certificate it belongs to)")
    from zetcd.etcd import client_context

    return _load_tls(
        lambda: client_context(_str(cacert), _str(cert), _str(key)),
        {"--cacert": cacert, "--cert": cert, "--key": key},
        "",
    )


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _load_tls(
    build: Callable[[], ssl.SSLContext], files: dict[str, Path | None], purpose: str
) -> ssl.SSLContext:
    """``build()``'s context once every file given (flag: path; the last two the certificate
    and its key) exists; a flag error that says what is wrong with them otherwise."""
    for flag, path in files.items():
        if path is not None and not path.is_file():
            raise typer.BadParameter(f"{flag} {path}: no such file")
    try:
        return build()
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        (cert_flag, cert), (key_flag, key) = list(files.items())[-2:]
        hint = ""
        if cert is not None and key is None and isinstance(e, ssl.SSLError):
            hint = f" (if {cert_flag} does not hold its private key too, give {key_flag})"
        raise typer.BadParameter(f"cannot use the TLS files given{purpose}: {e}{hint}") from None


def client_tls_config(
    secure_zkaddr: str | None,
    cert: Path | None,
    key: Path | None,
    client_auth: str | None,
    cacert: Path | None = None,
) -> tuple[str, int, ssl.SSLContext] | None:
    """(host, port, context) of TLS for ZooKeeper clients from --secure-zkaddr, --zk-cert,
    --zk-key, --zk-client-auth and --zk-cacert; None without --secure-zkaddr."""
    from zetcd import client_tls

    if secure_zkaddr is None:
        for flag, given in (
            ("--zk-cert", cert),
            ("--zk-key", key),
            ("--zk-client-auth", client_auth),
            ("--zk-cacert", cacert),
        ):
            if given is not None:
                raise typer.BadParameter(f"{flag} is for TLS to clients: add --secure-zkaddr")
        return None
    if not secure_zkaddr.strip():
        raise typer.BadParameter("--secure-zkaddr is empty (:PORT serves on every interface)")
    host, port = parse_hostport(secure_zkaddr, 2281, empty_host="")
    mode = (client_auth or "need").strip().lower()
    if mode not in client_tls.CLIENT_AUTH_MODES:
        raise typer.BadParameter(
            f"--zk-client-auth {client_auth}: must be need, want or none (ZooKeeper's"
            " ssl.clientAuth)"
        )
    if cacert is not None and mode == "none":
        raise typer.BadParameter(
            "--zk-cacert is for client certificates, which --zk-client-auth none does not ask for"
        )
    if cacert is None and mode != "none":
        default = "" if client_auth is not None else " (ZooKeeper's default)"
        raise typer.BadParameter(
            f"--zk-client-auth {mode}{default} needs --zk-cacert, the CAs a client certificate"
            " must chain to (ZooKeeper's ssl.trustStore.location; without one its x509 provider"
            " refuses every certificate); or give --zk-client-auth none"
        )
    if cert is None:
        raise typer.BadParameter("--secure-zkaddr needs --zk-cert (the server's certificate)")
    context = _load_tls(
        lambda: client_tls.server_context(str(cert), _str(key), mode, _str(cacert)),
        {"--zk-cacert": cacert, "--zk-cert": cert, "--zk-key": key},
        " for clients",
    )
    return host, port, context


def _warn_plaintext_password(urls: list[str]) -> None:
    """The password goes to etcd in the clear over http:// to another host: say so."""
    for url in urls:
        scheme, _, rest = url.partition("://")
        host, _ = parse_hostport(rest, 2379)
        if scheme.lower() == "http" and host not in ("127.0.0.1", "localhost", "::1"):
            logging.getLogger("zetcd").warning(
                "the etcd password goes to %s unencrypted: use https:// endpoints", host
            )
            return


def parse_user(user: str | None, password: str | None) -> tuple[str, str] | None:
    """(name, password) from --user NAME[:PASSWORD] and --password, as etcdctl takes them."""
    if user is None:
        if password is not None:
            raise typer.BadParameter("--password (or ZETCD_ETCD_PASSWORD) needs --user")
        return None
    name, colon, inline = user.partition(":")
    if not name:
        raise typer.BadParameter("--user needs a user name (NAME:PASSWORD)")
    if colon and password is not None:
        raise typer.BadParameter(
            "the password is given twice: in --user and in --password (or ZETCD_ETCD_PASSWORD)"
        )
    if not colon and password is None:
        raise typer.BadParameter("--user needs a password: NAME:PASSWORD, or --password")
    return name, inline if colon else (password or "")


@app.callback(invoke_without_command=True)
def main_command(
    ctx: typer.Context,
    zkaddr: Annotated[
        str, typer.Option(help="Address to serve the ZooKeeper protocol on.")
    ] = "127.0.0.1:2181",
    secure_zkaddr: Annotated[
        str | None,
        typer.Option(
            help="Also serve ZooKeeper clients over TLS on HOST:PORT (ZooKeeper's "
            "secureClientPortAddress:secureClientPort); needs --zk-cert.",
            show_default=False,
        ),
    ] = None,
    zk_cert: Annotated[
        Path | None,
        typer.Option(
            help="TLS to clients: the server's certificate chain (PEM) and, unless --zk-key is "
            "given, its private key in the same file (as ZooKeeper's ssl.keyStore.location).",
            show_default=False,
        ),
    ] = None,
    zk_key: Annotated[
        Path | None,
        typer.Option(
            help="TLS to clients: the private key (PEM) of --zk-cert.", show_default=False
        ),
    ] = None,
    zk_client_auth: Annotated[
        str | None,
        typer.Option(
            help="TLS to clients: whether to ask for a client certificate, as ZooKeeper's "
            "ssl.clientAuth: need (its default), want or none. A client with one is "
            "authenticated in scheme x509 as its certificate's subject.",
            show_default=False,
        ),
    ] = None,
    zk_x509_superuser: Annotated[
        str | None,
        typer.Option(
            "--zk-x509-superuser",
            help="TLS to clients: the x509 id (a client certificate's subject, as whoAmI shows "
            "it) whose session may do anything, as ZooKeeper's "
            "X509AuthenticationProvider.superUser.",
            show_default=False,
        ),
    ] = None,
    zk_cacert: Annotated[
        Path | None,
        typer.Option(
            help="TLS to clients: the CA certificates (PEM) a client certificate must chain to "
            "(ZooKeeper's ssl.trustStore.location); needed by --zk-client-auth need and want.",
            show_default=False,
        ),
    ] = None,
    endpoints: Annotated[
        str | None,
        typer.Option(
            help="etcd endpoints, comma separated (http://host:port, https://host:port or "
            "host:port). Without it zetcd starts and owns a local etcd."
        ),
    ] = None,
    cacert: Annotated[
        Path | None,
        typer.Option(
            help="TLS to etcd: CA certificates (PEM) that etcd's certificate must chain to. "
            "Default for https:// endpoints: the system's trusted CAs.",
            show_default=False,
        ),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(
            help="TLS to etcd: client certificate (PEM) for an etcd run with --client-cert-auth.",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="TLS to etcd: the private key (PEM) of --cert.", show_default=False),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help="etcd user, for an etcd with authentication enabled: NAME:PASSWORD, or NAME "
            "with --password.",
            show_default=False,
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="Password of --user (better in the environment than on the command line, "
            "where other local users can read it).",
            envvar="ZETCD_ETCD_PASSWORD",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data directory of the embedded etcd (its log, etcd.log, goes beside it). "
            "Default: $XDG_DATA_HOME/zetcd/etcd, or ~/.local/share/zetcd/etcd.",
            show_default=False,
        ),
    ] = None,
    etcd_binary: Annotated[
        str | None, typer.Option(help="etcd binary for the embedded etcd.")
    ] = None,
    prefix: Annotated[str, typer.Option(help="etcd key prefix that holds the tree.")] = "/zetcd/",
    tick_time: Annotated[
        int, typer.Option(help="ZooKeeper tickTime in ms (session timeouts are 2..20 ticks).")
    ] = 2000,
    min_session_timeout: Annotated[
        int, typer.Option(help="Minimum session timeout in ms (0: 2 x tickTime).")
    ] = 0,
    max_session_timeout: Annotated[
        int, typer.Option(help="Maximum session timeout in ms (0: 20 x tickTime).")
    ] = 0,
    max_packet: Annotated[
        int, typer.Option(help="Largest accepted frame in bytes (ZooKeeper's jute.maxbuffer).")
    ] = 0xFFFFF,
    max_client_cnxns: Annotated[
        int,
        typer.Option(
            help="Connections one client address may hold open at once, 0 for no limit "
            "(ZooKeeper's maxClientCnxns). Over it, a new connection is closed at once."
        ),
    ] = 60,
    four_letter_words: Annotated[
        str,
        typer.Option(
            "--4lw-whitelist",
            help="Four-letter words to answer, comma separated; a * among them for all. srvr "
            "is always answered (as ZooKeeper's 4lw.commands.whitelist, whose default is srvr).",
        ),
    ] = "srvr",
    container_check_interval: Annotated[
        int,
        typer.Option(
            help="How often (ms) to delete empty containers and expired TTL nodes "
            "(ZooKeeper's znode.container.checkIntervalMs)."
        ),
    ] = 60000,
    super_digest: Annotated[
        str | None,
        typer.Option(
            help="A digest id (user:base64(sha1(user:password))) whose session may do "
            "anything, as ZooKeeper's DigestAuthenticationProvider.superDigest."
        ),
    ] = None,
    etcd_max_txn_ops: Annotated[
        int,
        typer.Option(
            help="The etcd cluster's --max-txn-ops: grouped writes stay within it "
            "(the embedded etcd allows 1024)."
        ),
    ] = 128,
    etcd_max_request_bytes: Annotated[
        int,
        typer.Option(
            help="The etcd cluster's --max-request-bytes: a write whose transaction needs "
            "more is refused with BadArguments (the embedded etcd allows 10 MiB)."
        ),
    ] = 1536 * 1024,
    metrics_addr: Annotated[
        str | None,
        typer.Option(help="Serve Prometheus metrics on HOST:PORT (/metrics)."),
    ] = None,
    logtostderr: Annotated[
        bool, typer.Option(help="Accepted for Go zetcd compatibility; logs always go to stderr.")
    ] = True,
    debug_zkbridge: Annotated[
        str | None,
        typer.Option(
            help="Cross-check mode: also send every request to the real ZooKeeper at HOST:PORT "
            "and record every difference from the etcd emulation."
        ),
    ] = None,
    debug_oracle: Annotated[
        str,
        typer.Option(help="Cross-check mode: whose answers the client gets, zk or etcd."),
    ] = "zk",
    divergence_log: Annotated[
        Path | None,
        typer.Option(help="Cross-check mode: append one JSON line per divergence to this file."),
    ] = None,
    fail_on_divergence: Annotated[
        bool,
        typer.Option(help="Cross-check mode: exit with status 1 at shutdown if anything diverged."),
    ] = False,
    v: Annotated[int, typer.Option("-v", help="Verbosity: 0 warnings, 1 info, 2 debug.")] = 1,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """zetcd: a ZooKeeper server whose tree lives in etcd."""
    if ctx.invoked_subcommand is not None:
        return
    if version:
        typer.echo(f"zetcd {__version__}")
        raise typer.Exit()
    logging.basicConfig(
        level=logging.WARNING if v <= 0 else logging.INFO if v == 1 else logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from zetcd.emulation.backend import Options
    from zetcd.emulation.sessions import SessionLimits
    from zetcd.runner import RunConfig, run

    logging.getLogger("hpack").setLevel(logging.WARNING)  # its DEBUG lines are per header
    if not zkaddr.strip():
        raise typer.BadParameter("--zkaddr is empty (:PORT serves on every interface)")
    host, port = parse_hostport(zkaddr, 2181, empty_host="")  # ":port": every interface, as Go
    if tick_time <= 0:
        raise typer.BadParameter("--tick-time must be positive")
    if not prefix:
        raise typer.BadParameter("--prefix must not be empty")
    if max_packet <= 0:
        raise typer.BadParameter("--max-packet must be positive")
    if max_client_cnxns < 0:
        raise typer.BadParameter("--max-client-cnxns must be 0 (no limit) or more")
    if min_session_timeout < 0 or max_session_timeout < 0:
        raise typer.BadParameter("session timeouts must be positive (0: the default)")
    if (min_session_timeout or 2 * tick_time) > INT32_MAX:
        # the negotiated timeout goes back to the client as a 32-bit int
        raise typer.BadParameter(
            f"the minimum session timeout (--min-session-timeout, else 2 x --tick-time) must not"
            f" exceed {INT32_MAX} ms"
        )
    # ZooKeeper refuses the same configuration (QuorumPeerConfig)
    if (min_session_timeout or 2 * tick_time) > (max_session_timeout or 20 * tick_time):
        raise typer.BadParameter(
            "--min-session-timeout must not be larger than --max-session-timeout"
        )
    if super_digest is not None and super_digest.count(":") != 1:
        raise typer.BadParameter("--super-digest must look like user:base64(sha1(user:password))")
    if etcd_max_txn_ops < 32:
        raise typer.BadParameter("--etcd-max-txn-ops must be at least 32")
    if etcd_max_request_bytes < 1536 * 1024:
        raise typer.BadParameter(
            "--etcd-max-request-bytes must be at least 1572864 (etcd's default)"
        )
    if container_check_interval <= 0:
        raise typer.BadParameter("--container-check-interval must be positive")
    secure = client_tls_config(secure_zkaddr, zk_cert, zk_key, zk_client_auth, zk_cacert)
    from zetcd import client_tls

    asks_certificates = secure is not None and client_tls.client_auth(secure[2]) != "none"
    if zk_x509_superuser is not None and not asks_certificates:
        raise typer.BadParameter(
            "--zk-x509-superuser is for client certificates: add --secure-zkaddr and"
            " --zk-client-auth need or want"
        )
    etcd_tls = tls_context(cacert, cert, key)
    if etcd_tls is not None and endpoints is None:
        raise typer.BadParameter(
            "--cacert, --cert and --key are for an etcd cluster of your own (--endpoints): the"
            " embedded etcd serves plain HTTP on loopback"
        )
    etcd_urls = parse_endpoints(endpoints, etcd_tls is not None) if endpoints is not None else None
    etcd_auth = parse_user(user, password)
    if etcd_auth is not None:
        if etcd_urls is None:
            raise typer.BadParameter(
                "--user is for an etcd cluster of your own (--endpoints): the embedded etcd has"
                " no authentication"
            )
        _warn_plaintext_password(etcd_urls)
    # as ZooKeeper reads 4lw.commands.whitelist: a "*" anywhere enables every word, and srvr
    # is always enabled (zkServer.sh status needs it)
    listed = [w.strip() for w in four_letter_words.split(",")]
    words = None if "*" in listed else frozenset(w for w in listed if w) | {"srvr"}
    config = RunConfig(
        host=host,
        port=port,
        endpoints=etcd_urls,
        etcd_tls=etcd_tls,
        etcd_auth=etcd_auth,
        data_dir=data_dir,
        etcd_binary=etcd_binary,
        options=Options(
            prefix=prefix.encode(),
            limits=SessionLimits(tick_time, min_session_timeout, max_session_timeout),
            container_check_interval=container_check_interval,
            super_digest=super_digest,
            etcd_max_txn_ops=etcd_max_txn_ops,
            etcd_max_request_bytes=etcd_max_request_bytes,
            x509=secure is not None,  # ZooKeeper registers the x509 provider then
            x509_superuser=zk_x509_superuser,
        ),
        max_packet=max_packet,
        secure=secure,
        max_client_cnxns=max_client_cnxns,
        four_letter_words=words,
        metrics_addr=parse_hostport(metrics_addr, 9181) if metrics_addr else None,
        own_process=True,
    )
    if debug_zkbridge is not None:
        from oracle.sides import Side
        from oracle.wiring import CrossCheckConfig

        zk_host, zk_port = parse_hostport(debug_zkbridge, 2181)
        try:
            answer = Side.from_flag(debug_oracle)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        if asks_certificates:
            raise typer.BadParameter(
                "cross-check mode serves TLS clients with --zk-client-auth none only: the"
                " bridge to ZooKeeper cannot present a client's certificate, so its x509 id"
                " would be on one side only"
            )
        _check_reachable(zk_host, zk_port)
        config.crosscheck = CrossCheckConfig(zk_host, zk_port, answer, divergence_log)
    else:
        for flag, given in (
            ("--debug-oracle", debug_oracle != "zk"),
            ("--divergence-log", divergence_log is not None),
            ("--fail-on-divergence", fail_on_divergence),
        ):
            if given:
                raise typer.BadParameter(f"{flag} is for cross-check mode: add --debug-zkbridge")
    try:
        divergences = trio.run(run, config)
    except Exception as e:
        message = _failure_message(e)
        if message is None:
            raise
        typer.echo(f"zetcd: {message}", err=True)
        raise typer.Exit(2) from None
    if fail_on_divergence and divergences:
        typer.echo(f"zetcd: cross-check recorded {divergences} divergences", err=True)
        raise typer.Exit(1)


def _check_reachable(host: str, port: int) -> None:
    """Cross-check mode needs its ZooKeeper from the start: say so now if it cannot be
    reached, rather than failing every client."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise typer.BadParameter(
            f"cannot reach ZooKeeper at {host}:{port}: {e.strerror or e}",
            param_hint="'--debug-zkbridge'",
        ) from None


def _failure_message(exc: BaseException) -> str | None:
    """The one line to print for a failure that is not a bug (etcd missing or refusing, an
    address that cannot be served, a data dir that cannot be used); None for anything else.
    trio may hand failures over in exception groups: the first one speaks for the rest when
    none of them is a bug."""
    leaves: list[BaseException] = []

    def collect(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                collect(inner)
        else:
            leaves.append(e)

    collect(exc)
    messages = [_known_failure(e) for e in leaves]
    if not messages or None in messages:
        return None
    return messages[0]


def _known_failure(exc: BaseException) -> str | None:
    from zetcd.embedded import EmbeddedEtcdError
    from zetcd.etcd import CompactedError, EtcdError, EtcdUnavailable

    if isinstance(exc, EmbeddedEtcdError | OSError | EtcdUnavailable | CompactedError):
        return str(exc)
    if isinstance(exc, EtcdError):
        hint = " (is the endpoint an etcd v3 server?)" if exc.code == UNIMPLEMENTED else ""
        return f"etcd refused a request{hint}: {exc}"
    return None


@app.command("report")
def report_command(
    path: Annotated[Path, typer.Argument(help="A divergence log (--divergence-log).")],
    markdown: Annotated[
        bool, typer.Option(help="Write Markdown for a CI job to publish, not tables.")
    ] = False,
) -> None:
    """Render a cross-check divergence log: counts by op and kind, then each divergence."""
    from oracle.report import main as report

    if hasattr(signal, "SIGPIPE"):  # `zetcd report log | head` ends quietly (never the server)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        report(path, as_markdown=markdown)
    except (OSError, ValueError) as e:
        typer.echo(f"zetcd report: {e}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    # SIGPIPE stays ignored (Python's default): a server writing to a connection its client
    # reset must get EPIPE, not be killed (tests/test_resets.py)
    command = typer.main.get_command(app)
    params = [p for p in command.params if getattr(p, "opts", None)]
    long_options = frozenset(o for p in params for o in p.opts if o.startswith("--"))
    flags = frozenset(
        o for p in params if getattr(p, "is_flag", False) for o in p.opts if o.startswith("--")
    )
    app(args=translate_go_flags(sys.argv[1:], long_options, flags), prog_name="zetcd")

"""ACL validation as ZooKeeper's PrepRequestProcessor.fixupACL does it, and digest ids.

Schemes known to a stock ZooKeeper 3.8 server: ``world`` (only ``anyone``), ``auth`` (replaced by
the session's authenticated ids), ``digest`` (``user:base64(sha1(user:password))``) and ``ip``
(an IPv4 address with an optional prefix length, read as ZooKeeper 3.8 reads it: no IPv6);
with a secure client port, also ``x509`` (an X.500 name, as Java's X500Principal parses it:
x500.py). Anything else is InvalidACL. A null id where ZooKeeper's fixupACL dereferences it
fails the whole request with MarshallingError.
"""

from __future__ import annotations

import base64
import hashlib
import re

from zetcd.emulation.errors import OpError, ServerCrash
from zetcd.emulation.javanum import java_parse_int
from zetcd.emulation.javaorder import concurrent_set_order
from zetcd.emulation.x500 import valid_x500_name
from zetcd.proto.constants import Err
from zetcd.proto.records import ACL, ANYONE_ID_UNSAFE, OPEN_ACL_UNSAFE, Id

WORLD_ANYONE = ANYONE_ID_UNSAFE

# schemes whose ids an ``auth`` ACL expands to (ip ids are not "authenticated" ids)
AUTHENTICATED_SCHEMES = frozenset(("digest", "sasl", "x509"))
# the authentication providers a stock ZooKeeper 3.8 always has (x509 joins them when a secure
# client port is configured)
PROVIDERS = frozenset(("digest", "ip"))


def digest_id(user_password: str) -> str:
    """The id stored for ``digest`` auth: ``user:base64(sha1("user:password"))``."""
    user = user_password.split(":", 1)[0]
    sha = hashlib.sha1(user_password.encode()).digest()
    return f"{user}:{base64.b64encode(sha).decode()}"


def _java_split_count(text: str, sep: str) -> int:
    """len(text.split(sep)) as Java counts it: trailing empty strings are dropped."""
    parts = text.split(sep)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""]:
        return 1
    return len(parts)


def _ipv4_bytes(addr: str) -> list[int] | None:
    """ZooKeeper 3.8's IPAuthenticationProvider reading an address: IPv4 only, four parts
    split on ".", each ``Integer.parseInt`` in 0..255 (so ``01``, ``+1`` and ``-0`` pass)."""
    parts = addr.split(".")
    if len(parts) != 4:
        return None
    out = []
    for part in parts:
        v = java_parse_int(part)
        if v is None or not 0 <= v <= 255:
            return None
        out.append(v)
    return out


def _ip_prefix(expr: str) -> tuple[list[int], int] | None:
    """An ip ACL id's address and prefix length (32 without one), None if ZooKeeper's
    isValid refuses it."""
    addr, *rest = expr.split("/", 1)
    octets = _ipv4_bytes(addr)
    if octets is None:
        return None
    bits = java_parse_int(rest[0]) if rest else 32
    if bits is None or not 0 <= bits <= 32:
        return None
    return octets, bits


def valid_ip_id(ident: str) -> bool:
    return _ip_prefix(ident) is not None


def has_provider(scheme: str, x509: bool = False) -> bool:
    """Has ZooKeeper an authentication provider for ``scheme``? (``x509`` has one only with
    ``x509``: a secure client port.)"""
    return scheme in PROVIDERS or (x509 and scheme == "x509")


def valid_id(scheme: str, ident: str, x509: bool = False) -> bool:
    """Would ZooKeeper's provider for ``scheme`` accept ``ident`` (isValid)? False for a
    scheme with no provider."""
    if not has_provider(scheme, x509):
        return False
    if scheme == "digest":
        return _java_split_count(ident, ":") == 2
    if scheme == "ip":
        return valid_ip_id(ident)
    return valid_x500_name(ident)


def fixup(
    acl: tuple[ACL, ...] | None, auth: tuple[tuple[str, str], ...], x509: bool = False
) -> tuple[ACL, ...]:
    """Validate and expand an ACL list; raise OpError(InvalidACL) like ZooKeeper, and
    ServerCrash where its fixupACL throws on a null id (the ``world`` scheme's, or one a
    provider is asked to validate). ``x509``: the x509 provider is registered (ZooKeeper
    registers it once a secure client port is configured)."""
    if acl is OPEN_ACL_UNSAFE:  # the common case (a shared tuple, see fastpaths)
        return acl
    if not acl:
        raise OpError(Err.INVALID_ACL)
    out: list[ACL] = []
    for a in dict.fromkeys(acl):  # without duplicates, in order
        scheme, ident = a.id.scheme, a.id.id
        if scheme is None:
            raise OpError(Err.INVALID_ACL)
        if scheme == "world":
            if ident is None:  # id.getId().equals("anyone") throws
                raise ServerCrash()
            if ident != "anyone":  # no provider for "world"
                raise OpError(Err.INVALID_ACL)
            out.append(a)
        elif scheme == "auth":
            found = False
            # ZooKeeper walks the connection's ids in its set's order (a ConcurrentHashMap's)
            for s, i in concurrent_set_order(auth):
                if s in AUTHENTICATED_SCHEMES:
                    found = True
                    out.append(ACL(a.perms, Id(s, i)))
            if not found:
                raise OpError(Err.INVALID_ACL)
        else:
            if not has_provider(scheme, x509):
                raise OpError(Err.INVALID_ACL)
            if ident is None:  # the provider's isValid(null) throws
                raise ServerCrash()
            if not valid_id(scheme, ident, x509):
                raise OpError(Err.INVALID_ACL)
            out.append(a)
    return tuple(out)


def _ip_matches(client: str, expr: str) -> bool:
    """IPAuthenticationProvider.matches: the client's address (IPv4 only) under the id's
    prefix."""
    acl = _ip_prefix(expr)
    remote = _ipv4_bytes(client)
    if acl is None or remote is None:
        return False
    octets, bits = acl
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return (
        int.from_bytes(bytes(remote), "big") & mask == int.from_bytes(bytes(octets), "big") & mask
    )


def allowed(acl: tuple[ACL, ...], perm: int, auth: tuple[tuple[str, str], ...]) -> bool:
    """ZooKeeper's checkACL: does any ACL entry with a ``perm`` bit match the session's ids?"""
    if not acl:
        return True
    first = acl[0]
    if first.perms & perm and (first.id is WORLD_ANYONE or first.id == WORLD_ANYONE):
        return True
    if any(s == "super" for s, _ in auth):
        return True
    for a in acl:
        if not a.perms & perm:
            continue
        acl_scheme, acl_id = a.id.scheme, a.id.id
        if acl_scheme == "world" and acl_id == "anyone":
            return True
        for s, i in auth:
            if s != acl_scheme or acl_id is None:
                continue
            if (s == "digest" or s == "x509") and i == acl_id:
                return True
            if s == "ip" and _ip_matches(i, acl_id):
                return True
    return False


def check(acl: tuple[ACL, ...], perm: int, auth: tuple[tuple[str, str], ...]) -> None:
    if not allowed(acl, perm, auth):
        raise OpError(Err.NO_AUTH)


# Java's ``:.*``: ``.`` stops at a line terminator, and the search goes on after it
_MASKED_PART = re.compile(":[^\n\r\x85\u2028\u2029]*")


def masked(acl: tuple[ACL, ...]) -> tuple[ACL, ...]:
    """What getACL shows a session without ADMIN: digest ids as ``user:x``, by ZooKeeper's
    ``id.replaceAll(":.*", ":x")`` (so ``a:b\nc:d`` shows as ``a:x\nc:x``)."""
    return tuple(
        ACL(a.perms, Id(a.id.scheme, _MASKED_PART.sub(":x", a.id.id or "")))
        if a.id.scheme == "digest"
        else a
        for a in acl
    )

"""Which strings Java's ``X500Principal(String)`` accepts: the x509 scheme's ACL ids.

ZooKeeper's X509AuthenticationProvider.isValid(id) is ``new X500Principal(id)`` not throwing,
and ZooKeeper registers that provider once a secure client port is configured, so with
``--secure-zkaddr`` an ``x509`` ACL id is valid exactly when Java's parser takes it. This is that
parser's acceptance, rule for rule, in Java's lenient default format (RFC 1779 and 2253 syntax
and their keywords mixed): names are split into RDNs at ``,`` and ``;``, RDNs into attribute
value assertions at ``+``, each one ``keyword=value``, with Java's own quirks kept (an odd
quote count keeps a separator in its RDN, only some characters may be escaped, a ``#`` value
must be hex that decodes to one BER value). Checked against a real ZooKeeper 3.8 on OpenJDK 17
by tests/test_client_tls.py. Not emulated: a ``#`` value in BER's indefinite-length form,
which Java converts and this refuses.
"""

from __future__ import annotations

import re

# keywords Java knows in its default format (AVAKeyword), upper case
KEYWORDS = frozenset(
    (
        "CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER",
        "DNQ", "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS",
        "UID", "SERIALNUMBER",
    )
)  # fmt: skip
_ESCAPABLE = ',=\n+<>#;\\" '  # may follow a backslash outside quotes
_ESCAPABLE_QUOTED = ',=\n+<>#;\\"'  # ... inside quotes
_MUST_ESCAPE = ',+<>;"'  # may not appear bare outside quotes
_TERMINATORS = "+,;"
_HEX = "0123456789abcdefABCDEF"
_JAVA_SPACE = "".join(chr(i) for i in range(0x21))  # what String.trim() strips
_COMPONENT = re.compile(r"[+-]?\d+")  # Integer.parseInt / BigInteger: a sign, then digits
MAX_OID_BYTES = 4096  # ObjectIdentifier's limit on its encoding


class _Invalid(Exception):
    pass


def valid_x500_name(name: str) -> bool:
    """Would ``new X500Principal(name)`` succeed?"""
    try:
        for rdn in _split_rdns(name):
            for ava in _split_avas(rdn):
                _parse_ava(ava)
    except _Invalid:
        return False
    return True


def _split_rdns(dn: str) -> list[str]:
    """X500Name.parseDN: RDNs at each ``,`` or ``;`` that is neither escaped nor after an odd
    number of quotes (counted since the last separator, so a third quote ends the quoting)."""
    if not dn:
        return []
    rdns = []
    start = search = quotes = 0
    while True:
        comma, semicolon = dn.find(",", search), dn.find(";", search)
        if comma < 0 and semicolon < 0:
            break
        end = semicolon if comma < 0 else comma if semicolon < 0 else min(comma, semicolon)
        quotes += _count_quotes(dn, search, end)
        if quotes != 1 and not _escaped(end, search, dn):
            rdns.append(dn[start:end])
            start = end + 1
            quotes = 0
        search = end + 1
    rdns.append(dn[start:])
    return rdns


def _split_avas(rdn: str) -> list[str]:
    """RDN(String): assertions at each ``+`` not right after a backslash nor inside quotes;
    an empty one is an error."""
    avas = []
    start = search = quotes = 0
    plus = rdn.find("+")
    while plus >= 0:
        quotes += _count_quotes(rdn, search, plus)
        if plus > 0 and rdn[plus - 1] != "\\" and quotes != 1:
            avas.append(rdn[start:plus])
            start = plus + 1
            quotes = 0
        search = plus + 1
        plus = rdn.find("+", search)
    avas.append(rdn[start:])
    if any(not ava for ava in avas):
        raise _Invalid("empty AVA in RDN")
    return avas


def _count_quotes(text: str, start: int, end: int) -> int:
    return sum(
        1 for i in range(start, end) if text[i] == '"' and (i == start or text[i - 1] != "\\")
    )


def _escaped(end: int, search: int, dn: str) -> bool:
    """X500Name.escaped: is the separator at ``end`` escaped? After two backslashes or more,
    by the parity of every backslash since ``search`` (Java counts them all, not only the run
    before the separator)."""
    if end == 1 and dn[0] == "\\":
        return True
    if end > 1 and dn[end - 1] == "\\":
        if dn[end - 2] != "\\":
            return True
        return dn.count("\\", search, end) % 2 != 0
    return False


def _parse_ava(ava: str) -> None:
    """AVA(Reader, DEFAULT): ``keyword=value``."""
    equals = ava.find("=")
    if equals < 0:
        raise _Invalid("Incorrect AVA format")
    _check_keyword(ava[:equals])
    pos = equals + 1
    while pos < len(ava) and ava[pos] in " \n":
        pos += 1
    if pos == len(ava):
        return  # an empty value
    if ava[pos] == "#":
        _check_hex(ava, pos + 1)
    elif ava[pos] == '"':
        _check_quoted(ava, pos + 1)
    else:
        _check_string(ava, pos)


def _check_keyword(keyword: str) -> None:
    """AVAKeyword.getOID: a known keyword, or an OID (``OID.`` optional) in dotted form."""
    word = keyword.upper().strip(_JAVA_SPACE)
    if word in KEYWORDS:
        return
    if word.startswith("OID."):
        word = word[4:]
    if not word or not "0" <= word[0] <= "9":
        raise _Invalid(f"Invalid keyword {word!r}")
    _check_oid(word)


def _check_oid(oid: str) -> None:
    """ObjectIdentifier.of: two components or more, each a signed decimal; the first 0-2, the
    second at most 39 unless the first is 2, none negative, the encoding within 4096 bytes."""
    parts = oid.split(".")
    if len(parts) < 2:
        raise _Invalid("an OID needs two components")
    size = 0
    first = 0
    for i, part in enumerate(parts):
        if not _COMPONENT.fullmatch(part):
            raise _Invalid(f"OID component {part!r}")
        value = int(part)
        if i == 0:
            if not 0 <= value <= 2:
                raise _Invalid("OID's first component")
            first = value
            continue
        if value < 0 or (i == 1 and first != 2 and value > 39):
            raise _Invalid("OID component out of range")
        if i == 1:
            value += 40 * first
        size += max(1, -(-value.bit_length() // 7))
        if size > MAX_OID_BYTES:
            raise _Invalid("OID too long")


def _check_hex(ava: str, pos: int) -> None:
    """parseHexString: hex digits up to a terminator (the rest is ignored), an even number
    of them, decoding to exactly one BER value (DerValue(byte[]))."""
    end = pos
    while end < len(ava) and ava[end] not in _TERMINATORS:
        if ava[end] not in _HEX:
            raise _Invalid("invalid hex digit")
        end += 1
    digits = ava[pos:end]
    if not digits or len(digits) % 2:
        raise _Invalid("zero or an odd number of hex digits")
    _check_ber(bytes.fromhex(digits))


def _check_ber(data: bytes) -> None:
    """DerValue(byte[]): a tag, a length (short or long form, up to four length bytes), and
    exactly that much content after it."""
    if len(data) < 2:
        raise _Invalid("Too short")
    length = data[1]
    pos = 2
    if length == 0x80:
        raise _Invalid("indefinite length (not emulated)")
    if length & 0x80:
        count = length & 0x7F
        if count > 4 or len(data) < 2 + count:
            raise _Invalid("length bytes")
        length = int.from_bytes(data[2 : 2 + count], "big")
        pos += count
        if length >= 1 << 31:  # a negative int in Java
            raise _Invalid("Invalid length bytes")
    if len(data) - pos != length:
        raise _Invalid("not enough content, or extra data at the end")


def _check_quoted(ava: str, pos: int) -> None:
    """parseQuotedString: up to the closing quote, backslash escapes of a special character
    or two hex digits; after it only spaces and newlines."""
    n = len(ava)
    while True:
        if pos >= n:
            raise _Invalid("Quoted string did not end in quote")
        c = ava[pos]
        pos += 1
        if c == '"':
            break
        if c != "\\":
            continue
        if pos >= n:
            raise _Invalid("Quoted string did not end in quote")
        pos = _escape(ava, pos, _ESCAPABLE_QUOTED)
    if ava[pos:].strip(" \n"):
        raise _Invalid("characters after the terminating quote")


def _check_string(ava: str, pos: int) -> None:
    """parseString: up to a terminator (the first character is taken whatever it is); a
    backslash escapes a special character, a space or two hex digits; some characters may not
    appear unescaped."""
    n = len(ava)
    while True:
        c = ava[pos]
        pos += 1
        if c == "\\":
            if pos >= n:
                raise _Invalid("Invalid trailing backslash")
            pos = _escape(ava, pos, _ESCAPABLE)
        elif c in _MUST_ESCAPE:
            raise _Invalid("a character that must be escaped")
        if pos >= n or ava[pos] in _TERMINATORS:
            return


def _escape(ava: str, pos: int, escapable: str) -> int:
    """After a backslash, at ``pos``: two hex digits (one byte), or one of ``escapable``.
    Where the escape ends."""
    c = ava[pos]
    if c in _HEX:
        if pos + 1 >= len(ava) or ava[pos + 1] not in _HEX:
            raise _Invalid("escaped hex value must include two valid digits")
        return pos + 2
    if c not in escapable:
        raise _Invalid("Invalid escaped character")
    return pos + 1

"""A client certificate's x509 id, as ZooKeeper 3.8's X509AuthenticationProvider makes it.

ZooKeeper names a client by its certificate's subject as Java writes it,
``X500Principal.getName()``: RFC 2253's form with Java's own choices (docs/zk-facts.md, section
11). The RDNs come last first, joined by ``,``; a multi-valued RDN's attributes in their encoded
order, joined by ``+``; an attribute is ``KEYWORD=value`` for the nine types RFC 2253 names (CN,
C, L, ST, O, OU, STREET, DC, UID), and ``dotted.oid=#hex`` (the value's whole encoding,
lower-case hex, its length in DER's shortest form) for any other type, or for a value that is
not one of the string types Java reads (UTF8String, PrintableString, T61String, IA5String,
GeneralString, BMPString; not UniversalString). Java reads every one of those as UTF-8, whatever
its type says (a BMPString ``AB``, ``00 41 00 42``, is ``\\00A\\00B``), and puts U+FFFD for
each malformed sequence as its decoder cuts them: as Python's does, except that an encoded
surrogate (``ED A0..BF``, with its third byte if that is a continuation byte) is one sequence,
where Python's sees one per byte. In a string value, each of ``,=+<>#;"\\`` takes a backslash,
NUL is written ``\\00``, and leading and trailing spaces (and carriage returns) take a backslash
too; every other character is written as is, non-ASCII and control characters included.
tests/test_client_certs.py checks this against Java's own X500Principal.

Java also refuses, while reading the certificate (a bad-certificate alert in the handshake),
some that OpenSSL accepts: an empty subject in a version 1 certificate, or in one with an
extensions field but no critical subjectAltName extension among them (none, or one not
critical: an empty subject is id ``''`` only with a critical one, or with no extensions field at
all), and a critical subjectAltName extension without a name, whatever the subject; a version 1
certificate with anything after its public key, a version 2 one with extensions. Those are
:class:`BadCertificate`, as are a name value whose tag number is over 30 and an object
identifier with a padded (``80``-led) subidentifier, which Java's reader refuses too.

Only what is needed is read: the DER of the certificate, which OpenSSL has already parsed and
verified in the handshake, down to the subject and the extensions.
"""

from __future__ import annotations

from zetcd.proto.javautf8 import decode_code_points

# attribute types RFC 2253 gives a keyword, which Java writes by name
RFC2253_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
SUBJECT_ALT_NAME = "2.5.29.17"

# DER string tags Java writes as text: UTF8String, PrintableString, TeletexString (T61),
# IA5String, GeneralString, BMPString
_STRING_TAGS = frozenset((0x0C, 0x13, 0x14, 0x16, 0x1B, 0x1E))
_ESCAPED = ',=+<>#;"\\'
_SEQUENCE, _SET, _OID, _BOOLEAN = 0x30, 0x31, 0x06, 0x01
MAX_OID_BYTES = 4096  # Java's ObjectIdentifier refuses a longer encoding
_DECIMAL_DIGITS = 1000
_DECIMAL_CHUNK = 10**_DECIMAL_DIGITS


class BadCertificate(ValueError):
    """A certificate ZooKeeper's Java refuses (or DER this reader cannot follow)."""


def client_id(cert_der: bytes) -> str:
    """The x509 id of the client whose certificate (DER) this is; BadCertificate for one
    ZooKeeper would refuse."""
    subject, version, extensions = _read_certificate(cert_der)
    san = (extensions or {}).get(SUBJECT_ALT_NAME)
    if san is not None and san[0] and san[1] == bytes([_SEQUENCE, 0]):
        raise BadCertificate("a critical subjectAltName extension without a name")
    if subject == bytes([_SEQUENCE, 0]):
        if version == 0:
            raise BadCertificate("an empty subject in a version 1 certificate")
        if extensions is not None and (san is None or not san[0]):
            raise BadCertificate("an empty subject without a critical subjectAltName extension")
    return name_rfc2253(subject)


def name_rfc2253(name_der: bytes) -> str:
    """A DER X.500 Name written as Java's ``X500Principal.getName()`` writes it."""
    tag, start, end = _tlv(name_der, 0)
    if tag != _SEQUENCE or end != len(name_der):
        raise BadCertificate("a name is not one DER SEQUENCE")
    rdns = []
    for rdn_tag, rdn_start, rdn_end, _ in _children(name_der, start, end):
        if rdn_tag != _SET:
            raise BadCertificate("an RDN is not a SET")
        avas = []
        for ava_tag, ava_start, ava_end, _ in _children(name_der, rdn_start, rdn_end):
            if ava_tag != _SEQUENCE:
                raise BadCertificate("an attribute is not a SEQUENCE")
            parts = _children(name_der, ava_start, ava_end)
            if len(parts) != 2 or parts[0][0] != _OID:
                raise BadCertificate("an attribute is not a type and a value")
            (_, oid_start, oid_end, _), (value_tag, value_start, value_end, _) = parts
            if value_tag > 0xFF:
                raise BadCertificate("a value whose tag number is over 30")
            oid = _oid(name_der[oid_start:oid_end])
            avas.append(_ava(oid, value_tag, name_der[value_start:value_end]))
        rdns.append("+".join(avas))
    return ",".join(reversed(rdns))


def _ava(oid: str, tag: int, value: bytes) -> str:
    keyword = RFC2253_KEYWORDS.get(oid)
    if keyword is None or tag not in _STRING_TAGS:
        encoded = bytes([tag]) + _der_length(len(value)) + value
        return f"{keyword or oid}=#{encoded.hex()}"
    text = decode_code_points(value)  # U+FFFD by Java's rules
    escaped = []
    for c in text:
        if c in _ESCAPED:
            escaped.append("\\" + c)
        elif c == "\0":
            escaped.append("\\00")
        else:
            escaped.append(c)
    # leading and trailing spaces and CRs take a backslash (counted after the escapes above)
    chars = "".join(escaped)
    lead = len(chars) - len(chars.lstrip(" \r"))
    trail = len(chars.rstrip(" \r"))
    out = [("\\" + c if i < lead or i >= trail else c) for i, c in enumerate(chars)]
    return f"{keyword}={''.join(out)}"


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _read_certificate(der: bytes) -> tuple[bytes, int, dict[str, tuple[bool, bytes]] | None]:
    """(the subject Name's DER, the version's number (0 for v1), the extensions by OID, each
    as (critical, extnValue's content): None without an extensions field)."""
    tag, start, _ = _tlv(der, 0)
    if tag != _SEQUENCE:
        raise BadCertificate("not a certificate")
    tbs_tag, tbs_start, tbs_end = _tlv(der, start)
    if tbs_tag != _SEQUENCE:
        raise BadCertificate("not a certificate")
    fields = _children(der, tbs_start, tbs_end)
    version = 0
    if fields and fields[0][0] == 0xA0:  # [0] version
        _, version_start, version_end = _tlv(der, fields[0][1])
        version = int.from_bytes(der[version_start:version_end], "big", signed=True)
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, then options
    if len(fields) < 6:
        raise BadCertificate("a certificate without a subject")
    _, _, subject_end, subject_header = fields[4]
    if version == 0 and len(fields) > 6:
        raise BadCertificate("a version 1 certificate with more after its public key")
    if version == 1 and any(f[0] not in (0x81, 0x82) for f in fields[6:]):
        raise BadCertificate("a version 2 certificate with extensions")
    extensions: dict[str, tuple[bool, bytes]] | None = None
    for field_tag, field_start, _, _ in fields[6:]:
        if field_tag != 0xA3:  # [3] extensions
            continue
        extensions = {}
        _, ext_start, ext_end = _tlv(der, field_start)
        for _, e_start, e_end, _ in _children(der, ext_start, ext_end):
            parts = _children(der, e_start, e_end)
            if len(parts) not in (2, 3) or parts[0][0] != _OID:
                raise BadCertificate("an extension is not an OID, criticality and value")
            critical = len(parts) == 3 and der[parts[1][1] : parts[1][2]] != b"\0"
            value = der[parts[-1][1] : parts[-1][2]]
            extensions[_oid(der[parts[0][1] : parts[0][2]])] = (critical, value)
    return der[subject_header:subject_end], version, extensions


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag, start, end, _ = _tlv_at(der, pos)
    return tag, start, end


def _tlv_at(der: bytes, pos: int) -> tuple[int, int, int, int]:
    header = pos
    try:
        tag = der[pos]
        pos += 1
        if tag & 0x1F == 0x1F:  # a high tag number: its bytes, kept in the tag's identity
            while der[pos] & 0x80:
                tag = (tag << 8) | der[pos]
                pos += 1
            tag = (tag << 8) | der[pos]
            pos += 1
        length = der[pos]
        pos += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4:
                raise BadCertificate("a DER length this reader does not take")
            length = int.from_bytes(der[pos : pos + count], "big")
            pos += count
    except IndexError:
        raise BadCertificate("DER cut short") from None
    if pos + length > len(der):
        raise BadCertificate("DER cut short")
    return tag, pos, pos + length, header


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, content start, content end, start) of each element from ``start`` to ``end``."""
    out = []
    pos = start
    while pos < end:
        tag, c_start, c_end, header = _tlv_at(der, pos)
        if c_end > end:
            raise BadCertificate("DER element overruns its parent")
        out.append((tag, c_start, c_end, header))
        pos = c_end
    return out


def _oid(content: bytes) -> str:
    if len(content) > MAX_OID_BYTES:
        raise BadCertificate("an object identifier longer than Java takes")
    arcs: list[int] = []
    value = 0
    for i, b in enumerate(content):
        if b == 0x80 and (i == 0 or not content[i - 1] & 0x80):
            raise BadCertificate("an object identifier with a padded subidentifier")
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or content[-1] & 0x80:
        raise BadCertificate("a malformed object identifier")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(_decimal, (first, arcs[0] - 40 * first, *arcs[1:])))


def _decimal(n: int) -> str:
    """``str(n)``, also past Python's limit on the digits str() writes (an arc of a
    4,096-byte object identifier may have about 8,600)."""
    if n < _DECIMAL_CHUNK:
        return str(n)
    high, low = divmod(n, _DECIMAL_CHUNK)
    return _decimal(high) + str(low).zfill(_DECIMAL_DIGITS)

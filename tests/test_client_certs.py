"""A client certificate's x509 id (zetcd/client_certs.py) against Java itself: every name here,
generated or fixed, goes through ``new X500Principal(der).getName()`` on OpenJDK 17 too
(tests/java/X500Names.java, one JVM for the module) and the two must agree. Names are built
with a DER encoder of this module's own, so that a multi-valued RDN keeps the order given and a
value may be of any type, bytes that are not valid in its charset included. docs/zk-facts.md,
section 11."""

from __future__ import annotations

import contextlib
import datetime
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from zetcd.client_certs import RFC2253_KEYWORDS, BadCertificate, client_id, name_rfc2253

JAVA_PROGRAM = Path(__file__).parent / "java" / "X500Names.java"

INTEGER, OCTET_STRING, NULL, OID, SEQUENCE, SET = 0x02, 0x04, 0x05, 0x06, 0x30, 0x31
UTF8, PRINTABLE, T61, IA5, GENERAL, UNIVERSAL, BMP = 0x0C, 0x13, 0x14, 0x16, 0x1B, 0x1C, 0x1E
# how each string type is meant to be encoded (what a careful CA would put in it)
CODECS = {
    UTF8: "utf-8",
    PRINTABLE: "ascii",
    T61: "latin-1",
    IA5: "ascii",
    GENERAL: "ascii",
    UNIVERSAL: "utf-32-be",
    BMP: "utf-16-be",
}
CN, OU, ORG, UID = "2.5.4.3", "2.5.4.11", "2.5.4.10", "0.9.2342.19200300.100.1.1"
DC = "0.9.2342.19200300.100.1.25"
EMAIL, SERIAL_NUMBER = "1.2.840.113549.1.9.1", "2.5.4.5"
OTHER_OIDS = (EMAIL, SERIAL_NUMBER, "2.5.4.12", "2.5.4.42", "2.5.4.4")


# -- Java ------------------------------------------------------------------------------------


class JavaRefused(Exception):
    """Java threw on the input (the message is its exception chain)."""


class Java:
    """tests/java/X500Names.java, one process, asked one DER value at a time."""

    def __init__(self, *args: str) -> None:
        java = shutil.which("java")
        assert java is not None, "java is needed (openjdk-17-jdk-headless)"
        self.proc = subprocess.Popen(
            [java, str(JAVA_PROGRAM), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="ascii",
        )

    def ask(self, der: bytes) -> str:
        """Java's ``getName()`` for ``der``; JavaRefused if Java threw."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(der.hex() + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.endswith("\n"), f"X500Names.java ended (exit {self.proc.poll()})"
        answer = line[:-1]
        if answer.startswith("ERR "):
            raise JavaRefused(answer[4:])
        if answer.startswith("U16 "):
            return bytes.fromhex(answer[4:]).decode("utf-16-be", "surrogatepass")
        return bytes.fromhex(answer).decode("utf-8")

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def java() -> Iterator[Java]:
    """Java's X500Principal, reading DER Names."""
    process = Java()
    yield process
    process.close()


@pytest.fixture(scope="module")
def java_certs() -> Iterator[Java]:
    """Java's CertificateFactory, reading DER certificates: the subject as X500Principal."""
    process = Java("cert")
    yield process
    process.close()


def java_name(java: Java, der: bytes) -> str | JavaRefused:
    """What Java makes of ``der``: the name, or the refusal."""
    try:
        return java.ask(der)
    except JavaRefused as refused:
        return refused


def java_or_refusal(java: Java, der: bytes) -> str | type[BadCertificate]:
    """Java's name, BadCertificate standing for its refusal."""
    name = java_name(java, der)
    return BadCertificate if isinstance(name, JavaRefused) else name


def ours(der: bytes) -> str | type[BadCertificate]:
    try:
        return name_rfc2253(der)
    except BadCertificate:
        return BadCertificate


# -- DER -------------------------------------------------------------------------------------


def der(tag: int, content: bytes) -> bytes:
    """One TLV, its length in DER's shortest form (long form from 128 bytes on)."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    octets = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def der_oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    content = bytearray()
    for arc in (40 * first + second, *rest):
        septets = [arc & 0x7F]
        while arc := arc >> 7:
            septets.append(0x80 | arc & 0x7F)
        content += bytes(reversed(septets))
    return der(OID, bytes(content))


def der_integer(value: int) -> bytes:
    return der(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def der_name(*rdns: list[tuple[str, bytes]]) -> bytes:
    """A Name of these RDNs, each a list of (OID, encoded value), kept in the order given (not
    the sorted order of a DER SET OF)."""
    return der(
        SEQUENCE,
        b"".join(
            der(SET, b"".join(der(SEQUENCE, der_oid(oid) + value) for oid, value in rdn))
            for rdn in rdns
        ),
    )


def utf8(text: str) -> bytes:
    return der(UTF8, text.encode())


# -- generated names -------------------------------------------------------------------------

CHARACTERS = st.one_of(
    st.sampled_from(',=+<>#;"\\ \r\n\t\0\x01\x1f\x7f'),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0x80, max_codepoint=0xFF),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
)
# bytes at the edges of UTF-8's sequences, alone and in pieces of sequences: continuations,
# overlong and surrogate leads, sequences cut short or too big
ODD_BYTES = st.lists(
    st.sampled_from(
        [bytes([b]) for b in b"\x00\x20\x41\x5c\x80\x8f\x90\x9f\xa0\xbf\xc0\xc1\xc2\xdf"]
        + [bytes([b]) for b in b"\xe0\xe1\xed\xef\xf0\xf4\xf5\xf8\xfe\xff"]
        + [b"\xed\xa0", b"\xed\xbf\xbf", b"\xed\x9f\xbf", b"\xe0\x9f", b"\xe0\xa0", b"\xef\xbf"]
        + [b"\xf0\x8f", b"\xf0\x90", b"\xf0\x90\x80", b"\xf4\x8f\xbf", b"\xf4\x90", b"\xc3\xa9"]
    )
    | st.binary(min_size=1, max_size=1),
    max_size=6,
).map(b"".join)

ARCS = st.lists(st.integers(0, 2**70), max_size=4)
OID_NAMES = st.one_of(
    st.sampled_from(sorted(RFC2253_KEYWORDS)),
    st.sampled_from(OTHER_OIDS),
    st.tuples(st.sampled_from((0, 1, 2)), st.integers(0, 39), ARCS),
    st.tuples(st.just(2), st.sampled_from((40, 999)) | st.integers(0, 2**70), ARCS),
).map(lambda oid: oid if isinstance(oid, str) else ".".join(map(str, (*oid[:2], *oid[2]))))


@st.composite
def values(draw: st.DrawFn) -> bytes:
    """An encoded attribute value: a string type holding text in its own charset, in UTF-8, or
    odd bytes (sometimes long enough for a long-form length), or an INTEGER, OCTET STRING or
    NULL."""
    kind = draw(st.sampled_from((*CODECS, INTEGER, OCTET_STRING, NULL)))
    if kind == NULL:
        return der(NULL, b"")
    if kind == INTEGER:
        return der_integer(draw(st.integers(-(2**80), 2**80)))
    text = st.text(CHARACTERS, max_size=12)
    content = draw(
        text.map(lambda t: t.encode(CODECS.get(kind, "utf-8"), "ignore"))
        | text.map(str.encode)
        | ODD_BYTES
    )
    return der(kind, content * draw(st.sampled_from((1, 1, 1, 1, 60))))


NAMES = st.lists(st.lists(st.tuples(OID_NAMES, values()), min_size=1, max_size=3), max_size=5)


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_generated_names_as_java_writes_them(
    java: Java, rdns: list[list[tuple[str, bytes]]]
) -> None:
    """For names of any RDNs, multi-valued ones unsorted, of keyword and other types (big arcs
    too), values of every string type with every character that matters where it matters, bytes
    their type does not allow, and values of other types: ours is exactly Java's getName() (and
    BadCertificate where Java refuses the name, which none of these has made it do)."""
    name = der_name(*rdns)
    assert ours(name) == java_or_refusal(java, name)


# -- fixed names -----------------------------------------------------------------------------

FIXED = [
    pytest.param(
        der_name([(CN, utf8("client1"))], [(OU, utf8("Eng"))], [(ORG, utf8("Acme Corp"))]),
        "O=Acme Corp,OU=Eng,CN=client1",
        id="last-rdn-first",
    ),
    pytest.param(
        der_name([(CN, utf8('a,b+c="d"<e>;f\\g#h'))]),
        'CN=a\\,b\\+c\\=\\"d\\"\\<e\\>\\;f\\\\g\\#h',
        id="escapes",
    ),
    pytest.param(der_name([(CN, utf8("  x  "))]), "CN=\\ \\ x\\ \\ ", id="edge-spaces"),
    pytest.param(der_name([(CN, utf8("\r\tx\n\r"))]), "CN=\\\r\tx\n\\\r", id="edge-cr"),
    pytest.param(der_name([(CN, utf8("#x\0y é中😀"))]), "CN=\\#x\\00y é中😀", id="raw-text"),
    pytest.param(
        der_name([(EMAIL, der(IA5, b"a@b.c"))]),
        "1.2.840.113549.1.9.1=#16056140622e63",
        id="emailAddress",
    ),
    pytest.param(
        der_name([(SERIAL_NUMBER, der(PRINTABLE, b"12345"))]),
        "2.5.4.5=#13053132333435",
        id="serialNumber",
    ),
    pytest.param(der_name(), "", id="empty"),
    pytest.param(
        der_name([(CN, utf8("u")), (UID, utf8("jdoe"))]), "CN=u+UID=jdoe", id="multi-valued"
    ),
    pytest.param(
        der_name([(UID, utf8("jdoe")), (CN, utf8("u"))]), "UID=jdoe+CN=u", id="multi-unsorted"
    ),
    pytest.param(
        der_name(
            *(
                [(oid, der(PRINTABLE, value.encode()))]
                for oid, value in (
                    ("2.5.4.6", "US"),
                    ("2.5.4.8", "California"),
                    ("2.5.4.7", "San Francisco"),
                    ("2.5.4.9", "1 Main St"),
                    (UID, "jdoe"),
                    (CN, "u"),
                )
            )
        ),
        "CN=u,UID=jdoe,STREET=1 Main St,L=San Francisco,ST=California,C=US",
        id="keywords",
    ),
    pytest.param(
        der_name([(DC, der(IA5, b"com"))], [(DC, der(IA5, b"example"))]),
        "DC=example,DC=com",
        id="dc",
    ),
    pytest.param(der_name([(CN, der(BMP, "AB".encode("utf-16-be")))]), "CN=\\00A\\00B", id="bmp"),
    pytest.param(der_name([(CN, der(T61, "é".encode("latin-1")))]), "CN=\ufffd", id="t61-latin1"),
    pytest.param(der_name([(CN, der(PRINTABLE, "é".encode()))]), "CN=é", id="printable-utf8"),
    pytest.param(
        der_name([(CN, der(UNIVERSAL, "A".encode("utf-32-be")))]),
        "CN=#1c0400000041",
        id="universal",
    ),
    pytest.param(
        der_name([(CN, der(UTF8, b"\xed\xa0\x80|\xed\xbf|\xed\xa0A|\xe0\x80\x80"))]),
        "CN=\ufffd|\ufffd|\ufffdA|\ufffd\ufffd\ufffd",
        id="malformed-utf8",
    ),
    pytest.param(
        der_name([(CN, b"\x04\x81\x01x")], [(CN, der(NULL, b""))]),
        "CN=#0500,CN=#040178",
        id="not-strings",
    ),
    pytest.param(
        der_name([("2.999.18446744073709551616", utf8("x" * 200))]),
        "2.999.18446744073709551616=#0c81c8" + "78" * 200,
        id="big-oid",
    ),
]


@pytest.mark.parametrize(("name", "expected"), FIXED)
def test_fixed_names(java: Java, name: bytes, expected: str) -> None:
    """The ids a live ZooKeeper gave (zk-facts 11), and Java's own choices: every string type
    read as UTF-8 (a BMPString's zero bytes are NULs), an encoded surrogate one U+FFFD, a value
    of any other type as its DER hex with the length made shortest."""
    assert java_name(java, name) == expected
    assert name_rfc2253(name) == expected


def _ava(oid_and_value: bytes) -> bytes:
    return der(SEQUENCE, der(SET, der(SEQUENCE, oid_and_value)))


REFUSED = [
    pytest.param(_ava(der(OID, b"\x55\x80\x04\x03") + utf8("x")), id="padded-oid"),
    pytest.param(_ava(der(OID, b"\x80\x55\x04\x03") + utf8("x")), id="padded-first-arc"),
    pytest.param(_ava(der(OID, b"") + utf8("x")), id="empty-oid"),
    pytest.param(_ava(der(OID, b"\x55\x04\x83") + utf8("x")), id="unended-oid"),
    pytest.param(_ava(der_oid(CN) + b"\x1f\x81\x00\x01x"), id="high-tag-value"),
    pytest.param(_ava(b"\x1f\x06\x03\x55\x04\x03" + utf8("x")), id="high-tag-type"),
    pytest.param(_ava(der_oid(CN) + utf8("x") + utf8("y")), id="three-part-ava"),
    pytest.param(_ava(der_oid(CN)), id="type-only-ava"),
    pytest.param(
        der(SEQUENCE, der(SEQUENCE, der(SEQUENCE, der_oid(CN) + utf8("x")))), id="rdn-seq"
    ),
    pytest.param(der(SEQUENCE, der(SET, der(SET, der_oid(CN) + utf8("x")))), id="ava-set"),
    pytest.param(
        _ava(der(OID, b"\x2a" + b"\x81" * 4095 + b"\x01") + utf8("x")), id="oid-over-4096-bytes"
    ),
]


def test_an_arc_of_thousands_of_digits(java: Java) -> None:
    """An object identifier of up to 4,096 bytes is Java's to write, whatever the length of
    its arcs in decimal (here about 4,400 digits, past what Python's str() writes)."""
    name = _ava(der(OID, b"\x2a" + b"\xff" * 2099 + b"\x7f") + utf8("x"))
    ours = name_rfc2253(name)
    assert java_name(java, name) == ours
    assert len(ours) > 4400


@pytest.fixture(scope="module")
def a_certificate(ca: CA) -> bytes:
    return ca.issue(_attributes((NameOID.COMMON_NAME, "damaged")), (DNS_SAN, False))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_damage_to_a_certificate_is_an_id_or_bad_certificate(
    a_certificate: bytes, data: st.DataObject
) -> None:
    """Whatever bytes come in place of a certificate (OpenSSL has parsed it, but this reader
    must not trust that), the answer is an id or BadCertificate, never another exception."""
    certificate = bytearray(a_certificate)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(certificate) - 1))
        certificate[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(certificate)))
    with contextlib.suppress(BadCertificate):
        assert isinstance(client_id(bytes(certificate[:cut])), str)


@pytest.mark.parametrize("name", REFUSED)
def test_names_java_refuses(java: Java, name: bytes) -> None:
    """A Name Java cannot read is BadCertificate here too, never an id Java would not give."""
    assert java_or_refusal(java, name) is BadCertificate
    assert ours(name) is BadCertificate


# -- certificates ----------------------------------------------------------------------------

ECDSA_SHA256 = der(SEQUENCE, der_oid("1.2.840.10045.4.3.2"))
SAN = "2.5.29.17"


@dataclass
class CA:
    """A CA that signs client certificates, built by cryptography or by hand."""

    key: ec.EllipticCurvePrivateKey
    name: x509.Name
    client_key: ec.EllipticCurvePrivateKey

    def issue(self, subject: x509.Name, *extensions: tuple[x509.ExtensionType, bool]) -> bytes:
        """A v3 client certificate (DER), as cryptography builds it."""
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(self.client_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def issue_by_hand(self, subject: bytes, version: int | None, extensions: bytes | None) -> bytes:
        """One cryptography does not build: no version field (v1) when ``version`` is None, and
        an extensions field of these encoded extensions (none when None)."""
        tbs = der(
            SEQUENCE,
            (b"" if version is None else der(0xA0, der_integer(version)))
            + der_integer(x509.random_serial_number())
            + ECDSA_SHA256
            + self.name.public_bytes()
            + der(SEQUENCE, der(0x17, b"000101000000Z") + der(0x17, b"491231235959Z"))
            + subject
            + self.client_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            + (b"" if extensions is None else der(0xA3, der(SEQUENCE, extensions))),
        )
        signature = self.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        return der(SEQUENCE, tbs + ECDSA_SHA256 + der(0x03, b"\0" + signature))


def der_san(critical: bool, general_names: bytes) -> bytes:
    flag = der(0x01, b"\xff") if critical else b""
    return der(SEQUENCE, der_oid(SAN) + flag + der(OCTET_STRING, der(SEQUENCE, general_names)))


@pytest.fixture(scope="module")
def ca() -> CA:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zetcd test CA")])
    return CA(
        ec.generate_private_key(ec.SECP256R1()), name, ec.generate_private_key(ec.SECP256R1())
    )


def _attributes(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


EMPTY = x509.Name([])
DNS_SAN = x509.SubjectAlternativeName([x509.DNSName("client.example")])
CLIENT_DNS = der(0x82, b"client.example")
CERTIFICATES: list[tuple[str, Callable[[CA], bytes], str | type[BadCertificate]]] = [
    (
        "named",
        lambda ca: ca.issue(
            _attributes(
                (NameOID.COMMON_NAME, "client1"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "Eng"),
                (NameOID.ORGANIZATION_NAME, "Acme Corp"),
            )
        ),
        "O=Acme Corp,OU=Eng,CN=client1",
    ),
    (
        "email-and-escapes",
        lambda ca: ca.issue(
            _attributes((NameOID.EMAIL_ADDRESS, "a@b.c"), (NameOID.COMMON_NAME, " a#b+c ")),
            (DNS_SAN, False),
        ),
        "CN=\\ a\\#b\\+c\\ ,1.2.840.113549.1.9.1=#16056140622e63",
    ),
    (
        "multi-valued",
        lambda ca: ca.issue(
            x509.Name(
                [
                    x509.RelativeDistinguishedName(
                        [
                            x509.NameAttribute(NameOID.COMMON_NAME, "u"),
                            x509.NameAttribute(NameOID.USER_ID, "jdoe"),
                        ]
                    )
                ]
            )
        ),
        "CN=u+UID=jdoe",
    ),
    ("empty-critical-san", lambda ca: ca.issue(EMPTY, (DNS_SAN, True)), ""),
    ("empty-san-not-critical", lambda ca: ca.issue(EMPTY, (DNS_SAN, False)), BadCertificate),
    ("empty-no-extensions", lambda ca: ca.issue(EMPTY), ""),
    (
        "empty-no-san",
        lambda ca: ca.issue(EMPTY, (x509.BasicConstraints(ca=False, path_length=None), True)),
        BadCertificate,
    ),
    ("empty-v1", lambda ca: ca.issue_by_hand(der_name(), None, None), BadCertificate),
    (
        "named-v1",
        lambda ca: ca.issue_by_hand(der_name([(CN, utf8("v1"))]), None, None),
        "CN=v1",
    ),
    (
        "empty-explicit-v1",
        lambda ca: ca.issue_by_hand(der_name(), 0, None),
        BadCertificate,
    ),
    ("empty-v2", lambda ca: ca.issue_by_hand(der_name(), 1, None), ""),
    (
        "empty-extensions-field",
        lambda ca: ca.issue_by_hand(der_name(), 2, b""),
        BadCertificate,
    ),
    (
        "empty-critical-san-via-hand",
        lambda ca: ca.issue_by_hand(der_name(), 2, der_san(True, CLIENT_DNS)),
        "",
    ),
    (
        "v1-with-extensions",
        lambda ca: ca.issue_by_hand(der_name([(CN, utf8("v1"))]), None, der_san(True, CLIENT_DNS)),
        BadCertificate,
    ),
    (
        "v2-with-extensions",
        lambda ca: ca.issue_by_hand(der_name([(CN, utf8("v2"))]), 1, der_san(True, CLIENT_DNS)),
        BadCertificate,
    ),
    (
        "critical-san-without-names",
        lambda ca: ca.issue_by_hand(der_name([(CN, utf8("n"))]), 2, der_san(True, b"")),
        BadCertificate,
    ),
    (
        "san-without-names-not-critical",
        lambda ca: ca.issue_by_hand(der_name([(CN, utf8("n"))]), 2, der_san(False, b"")),
        "CN=n",
    ),
]


@pytest.mark.parametrize(
    ("make", "expected"), [pytest.param(make, expected, id=i) for i, make, expected in CERTIFICATES]
)
def test_client_id(
    ca: CA,
    java_certs: Java,
    make: Callable[[CA], bytes],
    expected: str | type[BadCertificate],
) -> None:
    """A certificate's id is its subject in Java's form. The ones Java's CertificateFactory
    refuses are BadCertificate: an empty subject in a v1 certificate, or with extensions but no
    critical subjectAltName among them, and a critical subjectAltName without a name. An empty
    subject with a critical subjectAltName, or with no extensions field at all, is id ''."""
    certificate = make(ca)
    assert java_or_refusal(java_certs, certificate) == expected
    try:
        assert client_id(certificate) == expected
    except BadCertificate:
        assert expected is BadCertificate

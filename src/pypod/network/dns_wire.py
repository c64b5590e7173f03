"""The DNS wire format (RFC 1035), as much as pypod's responder needs: parse any message,
build answers, and the addresses in reverse (PTR) names.  Standard library C modules only (the
responder, pypod.network.dns_server, runs with `python -I -S`)."""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# --- the wire format (RFC 1035) -------------------------------------------------------------------

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
OPCODE_SHIFT = 11

HEADER_SIZE = 12
#: the largest UDP answer without EDNS (we do not speak EDNS: the client's limit is this)
UDP_MAX = 512
MAX_NAME = 255
MAX_LABEL = 63
#: how many compression pointers a name may follow (each must point backwards anyway)
MAX_POINTERS = 64

#: podman's search domain for container names (aardvark-dns filters it the same way)
SEARCH_DOMAIN = "dns.podman"
#: containers may be recreated with other addresses soon: keep caches short (aardvark: 60)
TTL = 60


class WireError(ValueError):
    """A DNS message that cannot be parsed."""


Name = tuple[bytes, ...]


class Question:
    __slots__ = ("labels", "qclass", "qtype")

    def __init__(self, labels: Name, qtype: int, qclass: int) -> None:
        self.labels = labels  #: as sent (the answer echoes the case)
        self.qtype = qtype
        self.qclass = qclass

    def lower(self) -> Name:
        return tuple(label.lower() for label in self.labels)


class Record:
    __slots__ = ("labels", "rclass", "rdata", "rtype", "ttl")

    def __init__(self, labels: Name, rtype: int, rclass: int, ttl: int, rdata: bytes) -> None:
        self.labels = labels
        self.rtype = rtype
        self.rclass = rclass
        self.ttl = ttl
        self.rdata = rdata


class Message:
    __slots__ = ("additional", "answers", "authority", "flags", "id", "questions")

    def __init__(self, id: int, flags: int) -> None:
        self.id = id
        self.flags = flags
        self.questions: list[Question] = []
        self.answers: list[Record] = []
        self.authority: list[Record] = []
        self.additional: list[Record] = []

    @property
    def opcode(self) -> int:
        return (self.flags >> OPCODE_SHIFT) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise WireError("message truncated")
    return (data[pos] << 8) | data[pos + 1]


def read_name(data: bytes, pos: int) -> tuple[Name, int]:
    """The name at `pos` (following compression pointers) and the offset after it."""
    labels: list[bytes] = []
    size = 0
    end = -1  # where the name ends in the message: after the first pointer, if any
    jumps = 0
    while True:
        if pos >= len(data):
            raise WireError("name runs past the end of the message")
        length = data[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            target = _u16(data, pos) & 0x3FFF
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > MAX_POINTERS or target >= pos:
                raise WireError("bad compression pointer")
            pos = target
            continue
        if kind != 0:
            raise WireError(f"unknown label type {kind:#x}")
        pos += 1
        if length == 0:
            break
        if pos + length > len(data):
            raise WireError("label runs past the end of the message")
        size += length + 1
        if size > MAX_NAME:
            raise WireError("name longer than 255 bytes")
        labels.append(data[pos : pos + length])
        pos += length
    return tuple(labels), (end if end >= 0 else pos)


def encode_name(labels: Iterable[bytes]) -> bytes:
    out = bytearray()
    for label in labels:
        if not label or len(label) > MAX_LABEL:
            raise WireError(f"bad label length {len(label)}")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_NAME:
        raise WireError("name longer than 255 bytes")
    return bytes(out)


def split_name(name: str) -> Name:
    """'web.dns.podman.' -> (b'web', b'dns', b'podman'); '.' or '' -> ()."""
    return tuple(part.encode() for part in name.strip(".").split(".") if part) if name else ()


def name_text(labels: Name) -> str:
    return ".".join(label.decode("latin-1") for label in labels)


def _read_record(data: bytes, pos: int) -> tuple[Record, int]:
    labels, pos = read_name(data, pos)
    if pos + 10 > len(data):
        raise WireError("record truncated")
    rtype, rclass = _u16(data, pos), _u16(data, pos + 2)
    ttl = int.from_bytes(data[pos + 4 : pos + 8], "big")
    rdlen = _u16(data, pos + 8)
    pos += 10
    if pos + rdlen > len(data):
        raise WireError("record data truncated")
    return Record(labels, rtype, rclass, ttl, data[pos : pos + rdlen]), pos + rdlen


def parse_message(data: bytes) -> Message:
    """Parse a whole message; WireError if it is malformed (never another exception)."""
    if len(data) < HEADER_SIZE:
        raise WireError("message shorter than a header")
    msg = Message(_u16(data, 0), _u16(data, 2))
    qd, an, ns, ar = (_u16(data, i) for i in (4, 6, 8, 10))
    pos = HEADER_SIZE
    for _ in range(qd):
        labels, pos = read_name(data, pos)
        if pos + 4 > len(data):
            raise WireError("question truncated")
        msg.questions.append(Question(labels, _u16(data, pos), _u16(data, pos + 2)))
        pos += 4
    for count, section in ((an, msg.answers), (ns, msg.authority), (ar, msg.additional)):
        for _ in range(count):
            rec, pos = _read_record(data, pos)
            section.append(rec)
    return msg


def encode_query(qid: int, name: str, qtype: int, *, rd: bool = True) -> bytes:
    """A standard query for `name` (a client's message; the tests and tools use it)."""
    flags = FLAG_RD if rd else 0
    header = _header(qid, flags, 1, 0, 0, 0)
    return header + encode_name(split_name(name)) + _pack16(qtype) + _pack16(CLASS_IN)


def _pack16(value: int) -> bytes:
    return (value & 0xFFFF).to_bytes(2, "big")


def _header(qid: int, flags: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return b"".join(_pack16(v) for v in (qid, flags, qd, an, ns, ar))


def build_response(
    query: Message,
    rcode: int,
    answers: Iterable[tuple[int, bytes]] = (),
    *,
    limit: int = 0,
) -> bytes:
    """The answer to `query`: its id, RD and first question echoed, RA set, `answers` as
    (type, rdata) records named like the question (a pointer to it), TTL 60.  With `limit`
    (UDP), an answer that would be longer is sent truncated (TC, no records)."""
    flags = FLAG_QR | (query.opcode << OPCODE_SHIFT) | (query.flags & FLAG_RD) | FLAG_RA | rcode
    question = b""
    records: list[bytes] = []
    if query.questions:
        q = query.questions[0]
        question = encode_name(q.labels) + _pack16(q.qtype) + _pack16(q.qclass)
        for rtype, rdata in answers:
            records.append(
                b"\xc0\x0c"
                + _pack16(rtype)
                + _pack16(CLASS_IN)
                + TTL.to_bytes(4, "big")
                + _pack16(len(rdata))
                + rdata
            )
    qd = 1 if question else 0
    out = _header(query.id, flags, qd, len(records), 0, 0) + question + b"".join(records)
    if limit and len(out) > limit:
        out = _header(query.id, flags | FLAG_TC, qd, 0, 0, 0) + question
    return out


def error_response(data: bytes, rcode: int) -> bytes | None:
    """An answer with `rcode` to a message we could not parse; None if not even the header is
    there (nothing to answer to) or it is itself a response."""
    if len(data) < HEADER_SIZE or data[2] & 0x80:
        return None
    query = Message(_u16(data, 0), _u16(data, 2))
    return build_response(query, rcode)


# --- addresses ------------------------------------------------------------------------------------


def pack_ip(text: str) -> bytes:
    """The packed address of an IPv4 or IPv6 address in text (scope dropped); ValueError else."""
    text = text.split("%", 1)[0]
    family = _socket.AF_INET6 if ":" in text else _socket.AF_INET
    try:
        return _socket.inet_pton(family, text)
    except (OSError, ValueError) as e:
        raise ValueError(f"not an IP address: {text!r}") from e


def unpack_ip(packed: bytes) -> str:
    family = _socket.AF_INET6 if len(packed) == 16 else _socket.AF_INET
    return _socket.inet_ntop(family, packed)


def reverse_name_ip(labels: Name) -> bytes | None:
    """The address a PTR question is about (`4.3.2.1.in-addr.arpa`, `...ip6.arpa`), or None."""
    if len(labels) == 6 and labels[4:] == (b"in-addr", b"arpa"):
        try:
            octets = [int(label) for label in reversed(labels[:4])]
        except ValueError:
            return None
        if all(
            0 <= o <= 255 and str(o).encode() == lab
            for o, lab in zip(octets, labels[3::-1], strict=False)
        ):
            return bytes(octets)
        return None
    if len(labels) == 34 and labels[32:] == (b"ip6", b"arpa"):
        nibbles = b"".join(reversed(labels[:32]))
        if len(nibbles) != 32:
            return None
        try:
            packed = bytes.fromhex(nibbles.decode("ascii"))
        except ValueError:
            return None
        return packed if len(packed) == 16 else None
    return None

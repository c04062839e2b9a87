"""PROXY protocol headers from peers that are not trusted with them, and malformed ones from the
trusted load balancer.

Seed 003 with ``proxyProtocol.trustedRanges: [127.0.0.1]`` on every connector. A PROXY header
would let its sender choose the client address the policy sees, so from anyone else it is
refused outright (``554 5.7.1`` and the close) whatever address it claims - here mostly the
on-list relay client 127.0.0.17, which would open the relay - and the attempt never turns into a
session. Bytes that are not a header at the start of the stream are ordinary SMTP. From the
trusted peer a header is required and anything malformed is ``421 4.7.0`` and the close; a
second header after the first is just an unknown command.
"""

from __future__ import annotations

import socket
import struct

import pytest

from advtest import read_all
from relaytest import RawSMTP

SEED = "003-anonymous-relay-ip-restricted"
TRUSTED = "127.0.0.1"
REFUSED = ["554 5.7.1", "<closed>"]
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


@pytest.fixture(scope="module")
def proxied003(module_relay):
    return module_relay(SEED, all_connectors={"proxyProtocol": {"trustedRanges": [TRUSTED]}})


def v1(src: str, dst: str = "127.0.0.1", proto: str = "TCP4", sport: int = 40000, dport: int = 25) -> bytes:
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str = "127.0.0.17", dst: str = "127.0.0.1", cmd: int = 0x21, fam: int = 0x11, extra: bytes = b"",
       length: int | None = None) -> bytes:
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", 40000, 25) + extra
    return SIG + bytes([cmd, fam]) + struct.pack("!H", len(addr) if length is None else length) + addr


ATTACK = b"EHLO attacker.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<victim@external.test>\r\nQUIT\r\n"
AS_OFF_LIST = ["250", "250 2.1.0", "550 5.7.54", "221 2.0.0", "<closed>"]

# (id, source, bytes sent right after the 220 greeting, replies after the greeting)
UNTRUSTED = [
    ("v1-claims-on-list", "127.0.0.2", v1("127.0.0.17") + ATTACK, REFUSED),
    ("v1-claims-externally-secured", "127.0.0.2", v1("127.0.0.25") + ATTACK, REFUSED),
    ("v1-tcp6", "127.0.0.2", v1("::1", "::1", "TCP6") + ATTACK, REFUSED),
    ("v1-unknown", "127.0.0.2", b"PROXY UNKNOWN\r\n" + ATTACK, REFUSED),
    ("v1-no-line-end", "127.0.0.2", b"PROXY TCP4 127.0.0.17 127.0.0.1 40000 25", REFUSED),
    ("v1-garbage-after-keyword", "127.0.0.2", b"PROXY banana\r\n" + ATTACK, REFUSED),
    ("v1-first-letter-only", "127.0.0.2", b"P", REFUSED),
    ("v2-proxy", "127.0.0.2", v2() + ATTACK, REFUSED),
    ("v2-local", "127.0.0.2", v2(cmd=0x20) + ATTACK, REFUSED),
    ("v2-signature-only", "127.0.0.2", SIG, REFUSED),
    ("v2-with-tlv", "127.0.0.2", v2(extra=b"\x04\x00\x01x") + ATTACK, REFUSED),
    ("on-list-client-claims-outsider", "127.0.0.17", v1("127.0.0.99") + ATTACK, REFUSED),
    ("externally-secured-client-sends-header", "127.0.0.25", v1("127.0.0.17") + ATTACK, REFUSED),
    # not a header at the start of the stream: plain SMTP, under the socket's own address
    ("header-after-ehlo", "127.0.0.2", b"EHLO x\r\n" + v1("127.0.0.17") + ATTACK[len(b"EHLO attacker.test\r\n"):],
     ["250", "500 5.3.3", "250 2.1.0", "550 5.7.54", "221 2.0.0", "<closed>"]),
    ("lowercase-keyword", "127.0.0.2", b"proxy TCP4 127.0.0.17 127.0.0.1 1 25\r\n" + ATTACK, ["500 5.3.3"] + AS_OFF_LIST),
    ("keyword-glued", "127.0.0.2", b"PROXYTCP4 127.0.0.17 127.0.0.1 1 25\r\n" + ATTACK, ["500 5.3.3"] + AS_OFF_LIST),
    ("empty-lines-like-v2", "127.0.0.2", b"\r\n\r\n" + ATTACK, ["500 5.3.3", "500 5.3.3"] + AS_OFF_LIST),
]


@pytest.mark.parametrize("source, data, expected", [pytest.param(s, d, e, id=i) for i, s, d, e in UNTRUSTED])
def test_proxy_header_from_an_untrusted_peer(proxied003, source, data, expected):
    r, hop = proxied003
    before = r.metric("kuberelay_connections_total", result="proxy_refused")
    with RawSMTP(r.port(), source=source, timeout=5) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert c.greeting().code == 220  # not a proxy: served directly, until it sends a header
        c.send(data)
        assert read_all(c) == expected
    hop.assert_nothing(forbidden=("victim",))
    refused = r.metric("kuberelay_connections_total", result="proxy_refused") - before
    assert refused == (1 if expected == REFUSED else 0)


# From the trusted peer: (id, bytes first, replies)
TRUSTED_MALFORMED = [
    ("no-header", ATTACK, ["421 4.7.0", "<closed>"]),
    ("port-out-of-range", v1("127.0.0.17", sport=99999), ["421 4.7.0", "<closed>"]),
    ("address-out-of-range", b"PROXY TCP4 127.0.0.300 127.0.0.1 1 25\r\n", ["421 4.7.0", "<closed>"]),
    ("address-leading-zeros", b"PROXY TCP4 127.000.000.017 127.0.0.1 1 25\r\n", ["421 4.7.0", "<closed>"]),
    ("negative-port", b"PROXY TCP4 127.0.0.17 127.0.0.1 -1 25\r\n", ["421 4.7.0", "<closed>"]),
    ("double-space", b"PROXY TCP4  127.0.0.17 127.0.0.1 1 25\r\n", ["421 4.7.0", "<closed>"]),
    ("unknown-protocol", v1("127.0.0.17", proto="TCP5"), ["421 4.7.0", "<closed>"]),
    ("family-mismatch", v1("::1", "::1", "TCP4"), ["421 4.7.0", "<closed>"]),
    ("v1-longer-than-107", b"PROXY TCP4 " + b"1" * 120 + b"\r\n", ["421 4.7.0", "<closed>"]),
    ("v1-never-ends", b"PROXY TCP4 127.0.0.17 127.0.0.1 1 25" + b" " * 200, ["421 4.7.0", "<closed>"]),
    ("v2-version-3", v2(cmd=0x31), ["421 4.7.0", "<closed>"]),
    ("v2-unknown-command", v2(cmd=0x22), ["421 4.7.0", "<closed>"]),
    ("v2-tcp6-with-ipv4-block", v2(fam=0x21), ["421 4.7.0", "<closed>"]),
    ("v2-unix-socket", v2(fam=0x31), ["421 4.7.0", "<closed>"]),
    ("v2-length-past-the-limit", v2(length=60000), ["421 4.7.0", "<closed>"]),
]


@pytest.mark.parametrize("data, expected", [pytest.param(d, e, id=i) for i, d, e in TRUSTED_MALFORMED])
def test_malformed_header_from_the_trusted_peer(proxied003, data, expected):
    r, hop = proxied003
    with RawSMTP(r.port(), source=TRUSTED, timeout=5) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(data)
        assert read_all(c) == expected
    hop.assert_nothing()


def test_a_second_header_from_the_trusted_peer_is_just_a_command(proxied003):
    # The first header names an outsider; a second one naming the on-list client changes nothing.
    r, hop = proxied003
    with RawSMTP(r.port(), source=TRUSTED, timeout=5, preamble=v1("127.0.0.99")) as c:
        assert c.greeting().code == 220
        c.send(v1("127.0.0.17") + ATTACK)
        assert read_all(c) == ["500 5.3.3"] + AS_OFF_LIST
    hop.assert_nothing(forbidden=("victim",))


def test_v2_unspec_from_the_trusted_peer_keeps_the_socket_address(proxied003):
    # AF_UNSPEC (health checks): the connection's own addresses are used, never the block's.
    r, hop = proxied003
    with RawSMTP(r.port(), source=TRUSTED, timeout=5, preamble=v2("127.0.0.17", fam=0x00)) as c:
        assert c.greeting().code == 220
        assert c.ehlo().lines[0] == "relay.test Hello [127.0.0.1]"
        c.send(ATTACK[len(b"EHLO attacker.test\r\n"):])
        assert read_all(c) == AS_OFF_LIST[1:]
    hop.assert_nothing(forbidden=("victim",))

"""Slowloris clients and connection floods.

Slowloris: seed 003 with ``connectionInactivityTimeout: 1s`` (idle time) and
``connectionTimeout: 2500ms`` (lifetime) on every connector. A client that goes quiet anywhere
(greeting, mid-line, mid-transaction, mid-DATA, mid-BDAT-chunk) is cut after the inactivity
timeout, one that drips a byte at a time is cut at the connection timeout; either way with
``421 4.4.1 Connection timed out`` and the close, and nothing of a half-sent message reaches the
next hop. Slow readers (never reading the replies) are cut at the connection timeout too.

Floods: ``maxInboundConnectionPerSource`` / ``maxInboundConnection`` per connector; the one over
the limit gets exactly ``421 4.3.2 The maximum number of concurrent connections has exceeded a
limit, closing transmission channel`` and the close, other sources and other connectors are not
affected, refused and aborted connections hold no slot.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from advtest import OFF_LIST, ON_LIST, SEED_003, read_all, session
from relaytest import RawSMTP

TIMED_OUT = "421 4.4.1 Connection timed out"
LIMIT_REPLY = ("421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
               "closing transmission channel")
INACTIVITY = 1.0
LIFETIME = 2.5


@pytest.fixture(scope="module")
def slow003(module_relay):
    return module_relay(SEED_003, all_connectors={"limits": {"connectionTimeout": "2500ms",
                                                             "connectionInactivityTimeout": "1s"}})


M = "MAIL FROM:<app@example.com>"
R = "RCPT TO:<someone@example.org>"

# (id, commands first (replies not checked here), bytes sent then (no line end), what to drip
# afterwards one byte at a time every 0.4 s (b"": stay silent), the timeout that must cut it)
SLOWLORIS = [
    ("silent-after-greeting", [], b"", b"", INACTIVITY),
    ("silent-after-ehlo", ["EHLO slow.test"], b"", b"", INACTIVITY),
    ("silent-mid-line", ["EHLO slow.test"], b"MAIL FROM:<app@exa", b"", INACTIVITY),
    ("silent-in-transaction", ["EHLO slow.test", M, R], b"", b"", INACTIVITY),
    ("silent-mid-data", ["EHLO slow.test", M, R, "DATA"], b"Subject: slow\r\n\r\nhalf a message", b"", INACTIVITY),
    ("silent-mid-bdat-chunk", ["EHLO slow.test", M, R], b"BDAT 100 LAST\r\nSubject: slow\r\n\r\nhalf", b"",
     INACTIVITY),
    ("drip-a-command", [], b"", b"EHLO slowloris.example.com\r\n", LIFETIME),
    ("drip-data", ["EHLO slow.test", M, R, "DATA"], b"", b"Subject: slow\r\n\r\nbody line\r\n", LIFETIME),
    ("drip-bdat-chunk", ["EHLO slow.test", M, R], b"BDAT 1000 LAST\r\n", b"xxxxxxxxxxxxxxxxxxxx", LIFETIME),
    ("drip-whole-noops", [], b"", b"NOOP\r\n", LIFETIME),
]


@pytest.mark.parametrize("commands, partial, drip, cut_at",
                         [pytest.param(c, p, d, t, id=i) for i, c, p, d, t in SLOWLORIS])
def test_slowloris_is_cut(slow003, commands, partial, drip, cut_at):
    r, hop = slow003
    with session(r.port(), ON_LIST, ehlo=False, timeout=8) as c:
        t0 = time.monotonic()
        for line in commands:
            assert c.cmd(line).code in (250, 354)
        if partial:
            c.send(partial)
        if drip:
            i = 0
            while time.monotonic() - t0 < cut_at + 2 and not c.eof and TIMED_OUT.encode() not in c.buf:
                try:
                    c.send(drip[i % len(drip):i % len(drip) + 1])
                except OSError:
                    break
                i += 1
                c.pending_bytes(0.4)
        got = []
        while not got or got[-1] != TIMED_OUT:
            got.append(str(c.reply(timeout=cut_at + 3)))
        elapsed = time.monotonic() - t0
        # dripped NOOPs complete (each gets its 250) but do not extend the connection's lifetime
        assert set(got[:-1]) <= ({"250 2.0.0 OK"} if drip == b"NOOP\r\n" else set()), got
        assert c.closed_by_peer(3)
    assert cut_at - 0.2 <= elapsed <= cut_at + 1.5, elapsed
    hop.assert_no_message(forbidden=("half", "body line", "xxxx"))


def test_slow_reader_is_cut_at_the_connection_timeout(relay, next_hop):
    # A client that pipelines commands and never reads the replies: the relay's writes block;
    # the connection's lifetime still ends (and its slot is freed).
    r = relay(SEED_003, next_hop, all_connectors={"limits": {"connectionTimeout": "2500ms",
                                                             "connectionInactivityTimeout": "1s"}})
    c = RawSMTP(r.port(), source=OFF_LIST, timeout=5)
    try:
        c.sock.setblocking(False)
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() - t0 < 1.0:
            try:
                sent += c.sock.send(b"HELP\r\n" * 2000)
            except BlockingIOError:
                time.sleep(0.02)
        assert sent > 1_000_000  # the relay read a lot and is stuck writing the replies
        connector = "default/internet-default"
        while time.monotonic() - t0 < LIFETIME + 6:
            if r.metric("kuberelay_connections_active", connector=connector) == 0:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        assert r.metric("kuberelay_connections_active", connector=connector) == 0
        assert LIFETIME - 0.2 <= elapsed <= LIFETIME + 6, elapsed  # bounded by the 5 s grace for the 421
    finally:
        c.close()
    next_hop.assert_nothing()


def test_silent_client_after_starttls_is_cut_at_the_inactivity_timeout(relay, next_hop):
    r = relay(SEED_003, next_hop, all_connectors={"limits": {"connectionTimeout": "30s",
                                                             "connectionInactivityTimeout": "1s"}})
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd("STARTTLS").status == "220 2.0.0"
        t0 = time.monotonic()
        # no ClientHello: the connection is idle and must be closed like any idle one
        closed = c.closed_by_peer(INACTIVITY + 2.5)
        elapsed = time.monotonic() - t0
    assert closed, f"still open after {elapsed:.1f}s with connectionInactivityTimeout 1s"


def test_silent_client_on_implicit_tls_is_cut_at_the_inactivity_timeout(relay, next_hop):
    r = relay("001-authenticated-submission", next_hop,
              connectors={"client-submission": {"tls": {"implicit": True},
                                                "limits": {"connectionTimeout": "30s",
                                                           "connectionInactivityTimeout": "1s"}}})
    s = socket.create_connection(("127.0.0.1", r.port(2587)), timeout=INACTIVITY + 2.5)
    try:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello, then nothing
        try:
            closed = s.recv(100) == b""
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            closed = False
    finally:
        s.close()
    assert closed, "a half ClientHello kept the implicit-TLS connection open past connectionInactivityTimeout"


# --------------------------------------------------------------------------------------------
# Floods

def _limits(per_source=20, total=5000) -> dict:
    return {"internet-default": {"limits": {"maxInboundConnectionPerSource": per_source,
                                            "maxInboundConnection": total}}}


def _open(r, source: str, preamble: bytes | None = None) -> RawSMTP:
    return RawSMTP(r.port(), source=source, timeout=5, preamble=preamble)


# (id, per-source limit, total limit (the per-source limit may not exceed it), sources of the
# connections held, the source over the limit, another source that must still get in (None:
# nobody can))
FLOODS = [
    ("per-source-1", 1, 5000, ["127.0.0.1"], "127.0.0.1", "127.0.0.2"),
    ("per-source-3", 3, 5000, ["127.0.0.1"] * 3, "127.0.0.1", "127.0.0.2"),
    ("per-source-3-others-around", 3, 5000, ["127.0.0.1"] * 3 + ["127.0.0.2"] * 2, "127.0.0.1", "127.0.0.2"),
    ("total-1", 1, 1, ["127.0.0.1"], "127.0.0.2", None),
    ("total-4", 4, 4, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"], "127.0.0.5", None),
    ("total-reached-by-one-source", 3, 3, ["127.0.0.1"] * 3, "127.0.0.2", None),
    ("per-source-below-total", 2, 4, ["127.0.0.1", "127.0.0.1", "127.0.0.2"], "127.0.0.1", "127.0.0.3"),
]


@pytest.mark.parametrize("per_source, total, held, attacker, other",
                         [pytest.param(p, t, h, a, o, id=i) for i, p, t, h, a, o in FLOODS])
def test_connection_flood(relay, next_hop, per_source, total, held, attacker, other):
    r = relay(SEED_003, next_hop, connectors=_limits(per_source, total))
    conns = []
    try:
        for src in held:
            conns.append(_open(r, src))
            assert conns[-1].greeting().code == 220
        for _ in range(5):  # the flood: every attempt over the limit is refused the same way
            with _open(r, attacker) as c:
                assert str(c.reply()) == LIMIT_REPLY
                assert c.closed_by_peer(3)
        if other:
            with _open(r, other) as c:
                assert c.greeting().code == 220
        # the on-list client is served by another connector, whose limits are its own
        with session(r.port(), ON_LIST) as c:
            replies = c.send_message("app@example.com", ["someone@example.org"], b"Subject: flood\r\n\r\nx\r\n")
            assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
    finally:
        for c in conns:
            c.close()
    result = "limit_total" if len(held) >= total else "limit_per_source"
    assert r.metric("kuberelay_connections_total", connector="default/internet-default", result=result) == 5
    next_hop.assert_one(["someone@example.org"], mail_from="app@example.com", content=b"Subject: flood\r\n\r\nx\r\n")


def test_refused_and_reset_connections_hold_no_slot(relay, next_hop):
    r = relay(SEED_003, next_hop, connectors=_limits(per_source=3, total=5000))
    held = [_open(r, OFF_LIST) for _ in range(3)]
    for c in held:
        assert c.greeting().code == 220
    for _ in range(20):
        with _open(r, OFF_LIST) as c:
            assert str(c.reply()) == LIMIT_REPLY
    # connections reset by the client (RST, no QUIT), some of them mid-DATA
    held[0].send(b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<someone@example.com>\r\nDATA\r\n")
    assert [held[0].reply().code for _ in range(4)] == [250, 250, 250, 354]
    held[0].send(b"Subject: aborted\r\n\r\nnever finished")
    for c in held:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    for _ in range(5):  # more rounds of open-and-reset
        burst = [_open(r, OFF_LIST) for _ in range(3)]
        for c in burst:
            c.greeting()
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
    deadline = time.monotonic() + 3
    while r.metric("kuberelay_connections_active", connector="default/internet-default") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.metric("kuberelay_connections_active", connector="default/internet-default") == 0
    again = [_open(r, OFF_LIST) for _ in range(3)]
    try:
        assert [c.greeting().code for c in again] == [220, 220, 220]
    finally:
        for c in again:
            c.close()
    next_hop.assert_no_message(forbidden=("never finished",))


def test_per_source_limit_counts_the_client_behind_a_trusted_proxy(relay, next_hop):
    # Behind a load balancer (PROXY from 127.0.0.1) the source is the address in the header.
    r = relay(SEED_003, next_hop, all_connectors={"proxyProtocol": {"trustedRanges": ["127.0.0.1"]}},
              connectors=_limits(per_source=2, total=5000))

    def v1(src):
        return f"PROXY TCP4 {src} 127.0.0.1 40000 25\r\n".encode()

    held = [_open(r, "127.0.0.1", v1("127.0.0.99")) for _ in range(2)]
    try:
        for c in held:
            assert c.greeting().code == 220
        with _open(r, "127.0.0.1", v1("127.0.0.99")) as c:
            assert str(c.reply()) == LIMIT_REPLY
        with _open(r, "127.0.0.1", v1("127.0.0.98")) as c:  # another client, same load balancer
            assert c.greeting().code == 220
    finally:
        for c in held:
            c.close()
    next_hop.assert_nothing()

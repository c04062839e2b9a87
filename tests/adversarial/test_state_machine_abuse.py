"""Pipelining and state-machine abuse, hostile command lines, BDAT and SIZE that lie, too many
recipients.

Seed 003 with ``maxMessageSize: 64Ki`` and ``maxRecipientsPerMessage: 3`` on every connector.
Most cases come from the on-list client 127.0.0.17, which *may* relay: whatever it slips past
the state machine would be delivered, so the next hop shows it. Every case sends its whole
script (usually in one TCP segment, the way a hostile pipelining client does), reads every
reply until the relay closes or goes quiet, and compares the exact sequence; then the next
hop must hold nothing, or exactly the one message the script legitimately completed. Last,
clients that vanish mid-transaction: nothing of theirs may leak into the next client's
transaction through the relay's pool of next-hop sessions.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from advtest import EXTERNAL, OFF_LIST, ON_LIST, SEED_003, read_all, session

LIMIT = 64 * 1024
M = b"MAIL FROM:<app@example.com>\r\n"
R = b"RCPT TO:<someone@example.org>\r\n"
BODY = b"Subject: state probe\r\n\r\nbody\r\n"
QUIT = b"QUIT\r\n"
END = ["221 2.0.0", "<closed>"]
ERRORS_CLOSE = ["421 4.7.0", "<closed>"]    # maxProtocolErrors (5) reached


@pytest.fixture(scope="module")
def seed003(module_relay):
    return module_relay(SEED_003, all_connectors={"limits": {"maxMessageSize": "64Ki", "maxRecipientsPerMessage": 3}})


def _run(r, hop, segments, expected, delivered=None, source=ON_LIST, silent_timeout=2.0,
         rcpts=("someone@example.org",), mail_from="app@example.com", forbidden=(), transactions=1):
    if isinstance(segments, bytes):
        segments = [segments]
    with session(r.port(), source) as c:
        for i, s in enumerate(segments):
            if i:
                time.sleep(0.05)
            c.send(s)
        assert read_all(c, timeout=silent_timeout) == expected
    if delivered is None:
        hop.assert_no_message(settle=0.1, forbidden=forbidden)
    else:
        hop.assert_one(list(rcpts), mail_from=mail_from, content=delivered, transactions=transactions)


def _bdat_line(n, last=False) -> bytes:
    return f"BDAT {n}{' LAST' if last else ''}\r\n".encode()


# (id, script, replies, delivered content or None)
SEQUENCE = [
    ("rcpt-before-mail", R + QUIT, ["503 5.5.1"] + END, None),
    ("data-before-mail", b"DATA\r\n" + BODY + b".\r\n" + QUIT,
     ["503 5.5.1", "500 5.3.3", "500 5.3.3", "500 5.3.3", "500 5.3.3"] + ERRORS_CLOSE, None),
    ("data-before-rcpt", M + b"DATA\r\n" + BODY + b".\r\n" + QUIT,
     ["250 2.1.0", "503 5.5.1", "500 5.3.3", "500 5.3.3", "500 5.3.3", "500 5.3.3"] + ERRORS_CLOSE, None),
    ("bdat-before-mail-skips-chunk", b"BDAT 4 LAST\r\nQUITNOOP\r\n" + QUIT, ["503 5.5.1", "250 2.0.0"] + END, None),
    ("bdat-before-rcpt-skips-chunk", M + _bdat_line(len(R), True) + R + b"NOOP\r\n" + QUIT,
     ["250 2.1.0", "503 5.5.1", "250 2.0.0"] + END, None),
    ("mail-twice", M + M + R + QUIT, ["250 2.1.0", "503 5.5.1", "250 2.1.5"] + END, None),
    ("second-sender-ignored", M + b"MAIL FROM:<ceo@example.com>\r\n" + R + b"DATA\r\n" + BODY + b".\r\n" + QUIT,
     ["250 2.1.0", "503 5.5.1", "250 2.1.5", "354", "250 2.0.0"] + END, BODY),
    ("commands-after-quit", QUIT + M + R + b"DATA\r\n" + BODY + b".\r\n", END, None),
    ("quit-with-argument", b"QUIT now\r\n" + M + R + QUIT, ["501 5.5.4", "250 2.1.0", "250 2.1.5"] + END, None),
    ("ehlo-resets-transaction", M + R + b"EHLO again.test\r\nDATA\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "250", "503 5.5.1"] + END, None),
    ("helo-resets-transaction", M + R + b"HELO again.test\r\nDATA\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "250", "503 5.5.1"] + END, None),
    ("rset-resets-transaction", M + R + b"RSET\r\nDATA\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1"] + END, None),
    ("rcpt-after-message", M + R + b"DATA\r\n" + BODY + b".\r\n" + b"RCPT TO:<two@example.org>\r\nDATA\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "503 5.5.1", "503 5.5.1"] + END, BODY),
    ("data-twice", M + R + b"DATA\r\n" + BODY + b".\r\nDATA\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "503 5.5.1"] + END, BODY),
    ("data-with-argument", M + R + b"DATA now\r\n" + QUIT, ["250 2.1.0", "250 2.1.5", "501 5.5.4"] + END, None),
    ("starttls-in-transaction", M + b"STARTTLS\r\n" + R + QUIT, ["250 2.1.0", "503 5.5.1", "250 2.1.5"] + END, None),
    ("auth-not-offered", b"AUTH PLAIN AGJvYgBib2I=\r\n" + QUIT, ["504 5.7.4"] + END, None),
    ("bdat-then-data", [M + R + b"BDAT 5\r\nhelloDATA\r\n", b"BDAT 0 LAST\r\n" + QUIT],
     ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1", "250 2.0.0"] + END, b"hello\r\n"),
    ("rcpt-between-chunks", M + R + b"BDAT 5\r\nhelloRCPT TO:<two@example.org>\r\nBDAT 0 LAST\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1", "250 2.0.0"] + END, b"hello\r\n"),
    ("bdat-after-last", M + R + b"BDAT 5 LAST\r\nhelloBDAT 5 LAST\r\nworldNOOP\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1", "250 2.0.0"] + END, b"hello\r\n"),
    ("hello-missing", M + QUIT, None, None),  # special-cased: no EHLO first
    ("unknown-verbs", b"XEXCH50 1 2\r\nTURN\r\nETRN example.com\r\nEXPN staff\r\n" + QUIT, ["500 5.3.3"] * 4 + END, None),
    ("verbs-without-arguments", b"HELO\r\nEHLO\r\nMAIL\r\nRCPT\r\n" + QUIT, ["501 5.5.4"] * 4 + END, None),
    ("empty-lines", b"\r\n" * 6, ["500 5.3.3"] * 5 + ERRORS_CLOSE, None),
]


@pytest.mark.parametrize("script, expected, delivered", [pytest.param(s, e, d, id=i) for i, s, e, d in SEQUENCE])
def test_sequence_abuse(seed003, request, script, expected, delivered):
    r, hop = seed003
    if request.node.callspec.id == "hello-missing":
        with session(r.port(), ON_LIST, ehlo=False) as c:
            c.send(script)
            assert read_all(c) == ["503 5.5.2"] + END
        hop.assert_nothing()
        return
    _run(r, hop, script, expected, delivered)


# Clients that try to claim another identity or address: (id, script, replies). From the off-list
# client: none of it may make the victim relayable.
IDENTITY = [
    ("xclient", b"XCLIENT ADDR=127.0.0.17 NAME=trusted.example\r\n"),
    ("xforward", b"XFORWARD ADDR=127.0.0.17\r\n"),
    ("xexch50", b"XEXCH50 100 2\r\n"),
    ("turn", b"ATRN example.com\r\n"),
]


@pytest.mark.parametrize("claim", [pytest.param(s, id=i) for i, s in IDENTITY])
def test_identity_claims_are_unknown_commands(seed003, claim):
    r, hop = seed003
    _run(r, hop, claim + M + b"RCPT TO:<victim@external.test>\r\n" + QUIT,
         ["500 5.3.3", "250 2.1.0", "550 5.7.54"] + END, source=OFF_LIST, forbidden=("victim",))


# Hostile command lines, from the off-list client: (id, segments, replies). A bare CR/LF or a NUL
# poisons the whole line up to the next CRLF (so nothing can hide a second command behind it).
LINES = [
    ("line-512", b"NOOP " + b"x" * 505 + b"\r\n" + QUIT, ["250 2.0.0"] + END),
    ("line-513", b"NOOP " + b"x" * 506 + b"\r\n" + QUIT, ["500 5.5.2"] + END),
    ("line-100k", b"NOOP " + b"x" * 100_000 + b"\r\n" + b"NOOP\r\n" + QUIT, ["500 5.5.2", "250 2.0.0"] + END),
    ("line-2m-in-pieces", [b"x" * 1_000_000, b"y" * 1_000_000, b"\r\nNOOP\r\n" + QUIT], ["500 5.5.2", "250 2.0.0"] + END),
    ("long-line-hides-command", b"NOOP " + b"x" * 600 + b"RCPT TO:<victim@external.test>\r\n" + QUIT,
     ["500 5.5.2"] + END),
    ("nul-in-verb", b"NO\x00OP\r\n" + QUIT, ["500 5.5.2"] + END),
    ("nul-after-command", b"NOOP\x00\r\n" + QUIT, ["500 5.5.2"] + END),
    ("nul-line", b"\x00\r\n" + QUIT, ["500 5.5.2"] + END),
    ("nul-hides-command", b"MAIL FROM:<a@example.com>\x00RCPT TO:<victim@external.test>\r\n" + QUIT, ["500 5.5.2"] + END),
    ("bare-lf-joins-lines", b"NOOP\nRCPT TO:<victim@external.test>\r\n" + QUIT, ["500 5.5.2"] + END),
    ("bare-cr-joins-lines", M + b"NOOP\rRCPT TO:<victim@external.test>\r\n" + QUIT, ["250 2.1.0", "500 5.5.2"] + END),
    ("lf-only-lines", b"NOOP\nNOOP\nNOOP\n\r\n" + QUIT, ["500 5.5.2"] + END),
    ("lf-only-lines-swallow-quit", b"NOOP\nQUIT\n", ["<silent>"]),
    ("crlf-split-across-segments", [b"NOOP\r", b"\n" + QUIT], ["250 2.0.0"] + END),
    ("cr-cr-lf", b"NOOP\r\r\n" + QUIT, ["500 5.5.2"] + END),
    ("high-bit-verb", b"NO\xd6OP\r\n" + QUIT, ["500 5.3.3"] + END),
    ("leading-space", b" NOOP\r\n" + QUIT, ["500 5.3.3"] + END),
    ("tab-separator", b"MAIL\tFROM:<a@example.com>\r\n" + QUIT, ["500 5.3.3"] + END),
    ("lowercase", b"mail from:<a@example.com>\r\nrcpt to:<someone@example.com>\r\nrset\r\n" + QUIT,
     ["250 2.1.0", "250 2.1.5", "250 2.0.0"] + END),
    ("telnet-iac", b"\xff\xf4\xff\xfdNOOP\r\n" + QUIT, ["500 5.3.3"] + END),
    ("many-errors-then-close", b"FOO\r\n" * 10 + M, ["500 5.3.3"] * 5 + ERRORS_CLOSE),
]


@pytest.mark.parametrize("segments, expected", [pytest.param(s, e, id=i) for i, s, e in LINES])
def test_hostile_command_lines(seed003, segments, expected):
    r, hop = seed003
    _run(r, hop, segments, expected, source=OFF_LIST, forbidden=("victim",))


_bdat = _bdat_line


# BDAT whose size lies: (id, segments after MAIL+RCPT, replies after theirs, delivered content)
BDAT_LIES = [
    ("more-than-announced", _bdat(10, True) + b"0123456789RCPT TO:<victim@external.test>\r\n" + QUIT,
     ["250 2.0.0", "503 5.5.1"] + END, b"0123456789\r\n"),
    ("more-than-announced-fake-transaction",
     _bdat(10, True) + b"0123456789MAIL FROM:<app@example.com>\r\nDATA\r\n" + BODY + b".\r\n" + QUIT,
     ["250 2.0.0", "250 2.1.0", "503 5.5.1", "500 5.3.3", "500 5.3.3", "500 5.3.3", "500 5.3.3"] + ERRORS_CLOSE,
     b"0123456789\r\n"),
    ("fewer-than-announced-then-quit", _bdat(100, True) + b"0123456789\r\n" + QUIT, ["<silent>"], None),
    ("fewer-then-the-rest-later", [_bdat(20, True) + b"0123456789", b"abcdefghij", QUIT], ["250 2.0.0"] + END,
     b"0123456789abcdefghij\r\n"),
    ("zero-size-last", _bdat(0, True) + QUIT, ["250 2.0.0"] + END, b""),
    ("declared-over-limit", _bdat(LIMIT + 1, True) + b"z" * (LIMIT + 1) + QUIT, ["552 5.3.4"] + END, None),
    ("chunks-sum-over-limit", _bdat(40000) + b"x" * 40000 + _bdat(40000, True) + b"y" * 40000 + QUIT,
     ["250 2.0.0", "552 5.3.4"] + END, None),
    ("declared-2-pow-64-minus-1", _bdat(2**64 - 1, True) + b"x" * 1000, ["<silent>"], None),
    ("size-21-digits", _bdat(10**20, True) + b"hello", ["501 5.5.4", "421 4.7.0", "<closed>"], None),
    ("size-negative", b"BDAT -5 LAST\r\nhello", ["501 5.5.4", "421 4.7.0", "<closed>"], None),
    ("size-not-a-number", b"BDAT five LAST\r\nhello", ["501 5.5.4", "421 4.7.0", "<closed>"], None),
    ("size-missing", b"BDAT\r\nhello", ["501 5.5.4", "421 4.7.0", "<closed>"], None),
    ("size-hex", b"BDAT 0x10 LAST\r\n0123456789abcdef", ["501 5.5.4", "421 4.7.0", "<closed>"], None),
    ("last-misspelt", b"BDAT 5 FINAL\r\nhello", ["501 5.5.4", "421 4.7.0", "<closed>"], None),
    ("chunk-holds-commands", _bdat(len(M + R), True) + M + R + QUIT, ["250 2.0.0"] + END, M + R),
]


@pytest.mark.parametrize("segments, expected, delivered", [pytest.param(s, e, d, id=i) for i, s, e, d in BDAT_LIES])
def test_bdat_size_lies(seed003, request, segments, expected, delivered):
    r, hop = seed003
    if isinstance(segments, bytes):
        segments = [segments]
    # the bytes past the announced size are commands: a MAIL among them opens a second
    # (empty) transaction at the next hop
    transactions = 2 if request.node.callspec.id.endswith("fake-transaction") else 1
    _run(r, hop, [M + R + segments[0]] + segments[1:], ["250 2.1.0", "250 2.1.5"] + expected, delivered,
         silent_timeout=1.0, forbidden=("victim",), transactions=transactions)


def _exact(n: int) -> bytes:
    """A message of exactly n octets (as the relay measures content: unstuffed, CRLF counted)."""
    head = b"Subject: size probe\r\n\r\n"
    lines = b""
    while len(head) + len(lines) + 1000 + 2 < n:
        lines += b"z" * 998 + b"\r\n"
    rest = n - len(head) - len(lines) - 2
    out = head + lines + b"w" * rest + b"\r\n"
    assert len(out) == n
    return out


# SIZE= that lies: (id, MAIL parameters, content (None: no DATA), replies from MAIL on, delivered)
SIZE_LIES = [
    ("small-declared-big-sent", b" SIZE=100", _exact(LIMIT + 5000), ["250 2.1.0", "250 2.1.5", "354", "552 5.3.4"], False),
    ("zero-declared-big-sent", b" SIZE=0", _exact(LIMIT + 1), ["250 2.1.0", "250 2.1.5", "354", "552 5.3.4"], False),
    ("limit-declared-one-more-sent", f" SIZE={LIMIT}".encode(), _exact(LIMIT + 1),
     ["250 2.1.0", "250 2.1.5", "354", "552 5.3.4"], False),
    ("no-size-exactly-the-limit", b"", _exact(LIMIT), ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"], True),
    ("no-size-one-over-the-limit", b"", _exact(LIMIT + 1), ["250 2.1.0", "250 2.1.5", "354", "552 5.3.4"], False),
    ("declared-over-limit", f" SIZE={LIMIT + 1}".encode(), None, ["552 5.3.4", "503 5.5.1"], False),
    ("declared-max-u64", b" SIZE=18446744073709551615", None, ["552 5.3.4", "503 5.5.1"], False),
    ("declared-overflow", b" SIZE=18446744073709551616", None, ["501 5.5.4", "503 5.5.1"], False),
    ("declared-negative", b" SIZE=-1", None, ["501 5.5.4", "503 5.5.1"], False),
    ("declared-twice", b" SIZE=10 SIZE=20", None, ["501 5.5.4", "503 5.5.1"], False),
    ("declared-small-bdat-big", b" SIZE=10", b"BDAT", ["250 2.1.0", "250 2.1.5", "552 5.3.4"], False),
]


@pytest.mark.parametrize("params, content, expected, delivered",
                         [pytest.param(p, c, e, d, id=i) for i, p, c, e, d in SIZE_LIES])
def test_size_lies(seed003, params, content, expected, delivered):
    r, hop = seed003
    script = b"MAIL FROM:<app@example.com>" + params + b"\r\n" + R
    if content == b"BDAT":
        big = _exact(LIMIT + 1000)
        script += _bdat(len(big), True) + big
        content = None
    elif content is not None:
        script += b"DATA\r\n" + content + b".\r\n"
    _run(r, hop, script + QUIT, expected + END, content if delivered else None)


# maxRecipientsPerMessage 3: (id, source, recipients, replies to them, recipients delivered to)
RECIPIENTS = [
    ("five", ON_LIST, [f"r{i}@example.org" for i in range(5)], ["250 2.1.5"] * 3 + ["452 4.5.3"] * 2,
     [f"r{i}@example.org" for i in range(3)]),
    ("two-hundred-pipelined", ON_LIST, [f"r{i}@example.org" for i in range(200)],
     ["250 2.1.5"] * 3 + ["452 4.5.3"] * 197, [f"r{i}@example.org" for i in range(3)]),
    ("same-recipient-four-times", ON_LIST, ["r@example.org"] * 4, ["250 2.1.5"] * 3 + ["452 4.5.3"],
     ["r@example.org"] * 3),
    ("refused-ones-do-not-count", OFF_LIST, [f"x{i}@external.test" for i in range(5)] +
     [f"r{i}@example.com" for i in range(4)], ["550 5.7.54"] * 5 + ["250 2.1.5"] * 3 + ["452 4.5.3"],
     [f"r{i}@example.com" for i in range(3)]),
    ("syntax-errors-do-not-count", ON_LIST, ["bad@@example.org", "r1@example.org", "bad@", "r2@example.org",
                                             "r3@example.org", "r4@example.org"],
     ["501 5.1.3", "250 2.1.5", "501 5.1.3", "250 2.1.5", "250 2.1.5", "452 4.5.3"],
     ["r1@example.org", "r2@example.org", "r3@example.org"]),
]


@pytest.mark.parametrize("source, rcpts, expected, delivered",
                         [pytest.param(s, r, e, d, id=i) for i, s, r, e, d in RECIPIENTS])
def test_too_many_recipients(seed003, source, rcpts, expected, delivered):
    r, hop = seed003
    script = M + b"".join(f"RCPT TO:<{x}>\r\n".encode() for x in rcpts) + b"DATA\r\n" + BODY + b".\r\n" + QUIT
    _run(r, hop, script, ["250 2.1.0"] + expected + ["354", "250 2.0.0"] + END, BODY, source=source,
         rcpts=delivered, forbidden=(EXTERNAL,))


def test_rset_resets_the_recipient_count(seed003):
    r, hop = seed003
    first = b"".join(f"RCPT TO:<a{i}@example.org>\r\n".encode() for i in range(3))
    second = b"".join(f"RCPT TO:<b{i}@example.org>\r\n".encode() for i in range(3))
    _run(r, hop, M + first + b"RSET\r\n" + M + second + b"DATA\r\n" + BODY + b".\r\n" + QUIT,
         ["250 2.1.0"] + ["250 2.1.5"] * 3 + ["250 2.0.0", "250 2.1.0"] + ["250 2.1.5"] * 3 + ["354", "250 2.0.0"] + END,
         BODY, rcpts=[f"b{i}@example.org" for i in range(3)], transactions=2)


# A client that vanishes mid-transaction, then another client: the relay keeps next-hop
# sessions in a pool, so an abandoned transaction must be reset (or its session dropped) before
# the next client's transaction uses it - nothing of the first may leak into the second.
@pytest.fixture(scope="module")
def pooled003(module_relay):
    return module_relay(SEED_003)  # default limits: 36Mi messages, so content streams at 64 KiB


A_MAIL = b"MAIL FROM:<vanisher@example.com>\r\n"
A_RCPT = b"RCPT TO:<victim-a@example.org>\r\n"
A_STREAMED = b"Subject: abandoned\r\n\r\n" + (b"a" * 998 + b"\r\n") * 80  # more than one 64 KiB flush

# (id, what the vanishing on-list client sends, how many replies it waits for before vanishing)
ABORTS = [
    ("after-mail", A_MAIL, 1),
    ("after-rcpt", A_MAIL + A_RCPT, 2),
    ("after-354", A_MAIL + A_RCPT + b"DATA\r\n", 3),
    ("mid-data", A_MAIL + A_RCPT + b"DATA\r\nSubject: abandoned\r\n\r\nnever finished\r\n", 3),
    ("mid-data-after-streaming", A_MAIL + A_RCPT + b"DATA\r\n" + A_STREAMED, 3),
    ("mid-data-before-its-354", A_MAIL + A_RCPT + b"DATA\r\nSubject: abandoned\r\n\r\nearly\r\n", 2),
    ("mid-bdat-chunk", A_MAIL + A_RCPT + b"BDAT 1000 LAST\r\nSubject: abandoned\r\n\r\nhalf", 2),
    ("between-bdat-chunks", A_MAIL + A_RCPT + b"BDAT 22\r\nSubject: abandoned\r\n\r\n", 3),
    ("after-refused-content", A_MAIL + A_RCPT + b"DATA\r\nSubject: abandoned\r\n\r\nbare\nlf\r\n.\r\n" + A_MAIL + A_RCPT, 6),
    ("quit-mid-transaction", A_MAIL + A_RCPT + b"QUIT\r\n", 3),
]


@pytest.mark.parametrize("how", ["reset", "close"])
@pytest.mark.parametrize("script, replies", [pytest.param(s, n, id=i) for i, s, n in ABORTS])
def test_abandoned_transaction_does_not_leak_into_the_next(pooled003, script, replies, how):
    r, hop = pooled003
    a = session(r.port(), ON_LIST)
    a.send(script)
    for _ in range(replies):
        a.reply()
    if how == "reset":
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()
    time.sleep(0.1)
    body = b"Subject: the next client\r\n\r\nfrom b\r\n"
    with session(r.port(), OFF_LIST) as b:
        replies_b = b.send_message("next@example.com", ["someone@example.com"], body)
        assert [x.status for x in replies_b] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
        assert b.cmd("QUIT").status == "221 2.0.0"
    transactions = len([c for c in hop.tap.commands() if c.startswith("MAIL")])
    hop.assert_one(["someone@example.com"], mail_from="next@example.com", content=body, transactions=transactions)
    [m] = hop.tap.messages()
    assert b"abandoned" not in m.content and b"victim-a" not in m.content

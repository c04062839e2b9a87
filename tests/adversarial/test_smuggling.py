"""SMTP smuggling: end-of-data variants followed by a second, fake transaction.

The off-list client of seed 003 (127.0.0.1, internet-default: example.com recipients only) sends
one message to someone@example.com whose content holds a fake end of data and then
``MAIL FROM:<ceo@example.com> / RCPT TO:<victim@external.test> / DATA / ...``. Only
``<CRLF>.<CRLF>`` ends DATA (RFC 5321 4.1.1.4); any bare CR or LF in content is refused
(550 5.6.11, the relay's smuggling protection; it does not normalise). So each variant either
ends as *one* message whose bytes reach the next hop exactly (the fake transaction is content,
dot-stuffed again by the relay), or is refused with nothing committed at the next hop. The
victim is never named to the next hop, and the sink never holds a second message.

Extends tests/integration/test_protocol.py (one `\\n.\\n` variant after streaming started) with
the table below: early and late (after 70 KiB were already streamed to the next hop), split
across TCP segments (the decoder's state between reads), and BDAT chunks (whose content may
legitimately hold `<CRLF>.<CRLF>`, which the relay must stuff when it forwards with DATA).
"""

from __future__ import annotations

import time

import pytest

from advtest import OFF_LIST, SEED_003, read_all, session, unstuff

SMUGGLED = (b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@external.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nsmuggled body\r\n")
REFUSED = "550 5.6.11"
ONE = "250 2.0.0"
CLOSE = ["221 2.0.0", "<closed>"]
# What the relay answers when the fake transaction turns out to be real commands (a true
# <CRLF>.<CRLF> came first): the client's own MAIL is accepted, its RCPT to the victim refused
# by the policy, DATA without a recipient refused, then the smuggled header and body lines are
# unknown commands until maxProtocolErrors (5) closes the session.
AS_COMMANDS = ["250 2.1.0", "550 5.7.54", "503 5.5.1", "500 5.3.3", "500 5.3.3", "500 5.3.3", "500 5.3.3",
               "421 4.7.0", "<closed>"]


@pytest.fixture(scope="module")
def seed003(module_relay):
    return module_relay(SEED_003)


def _head(test_id: str) -> bytes:
    return f"Subject: carrier\r\nX-Test-Id: {test_id}\r\n\r\nfirst line\r\nbefore".encode()


# (id, the bytes between "before" and the smuggled transaction, the reply to the real end of
# data, whether the carrier is delivered as one message)
EARLY = [
    ("lf-dot-lf", b"\n.\n", REFUSED),
    ("lf-dot-crlf", b"\n.\r\n", REFUSED),
    ("cr-dot-cr", b"\r.\r", REFUSED),
    ("crlf-dot-lf", b"\r\n.\n", REFUSED),
    ("cr-dot-lf", b"\r.\n", REFUSED),
    ("lf-dot-cr", b"\n.\r", REFUSED),
    ("crlf-dot-cr", b"\r\n.\r", REFUSED),
    ("cr-dot-crlf", b"\r.\r\n", REFUSED),
    ("crlf-dot-cr-crlf", b"\r\n.\r\r\n", REFUSED),
    ("crlf-dot-lf-crlf", b"\r\n.\n\r\n", REFUSED),
    ("lf-lf-dot-lf-lf", b"\n\n.\n\n", REFUSED),
    ("cr-cr-dot-cr-cr", b"\r\r.\r\r", REFUSED),
    ("lf-cr-dot-lf-cr", b"\n\r.\n\r", REFUSED),
    ("bare-lf", b"\n", REFUSED),
    ("bare-cr", b"\r", REFUSED),
    ("bare-lf-in-folded-line", b"\r\nX-Fold: a\n\tb\r\n", REFUSED),
    ("crlf-dot-nul-crlf", b"\r\n.\x00\r\n", ONE),
    ("crlf-nul-dot-crlf", b"\r\n\x00.\r\n", ONE),
    ("nul-crlf-dot-crlf-nul", b"\x00\r\n.\x00\r\n", ONE),
    ("crlf-space-dot-crlf", b"\r\n .\r\n", ONE),
    ("crlf-dot-space-crlf", b"\r\n. \r\n", ONE),
    ("crlf-dot-tab-crlf", b"\r\n.\t\r\n", ONE),
    ("crlf-dot-dot-crlf", b"\r\n..\r\n", ONE),
    ("crlf-three-dots-crlf", b"\r\n...\r\n", ONE),
    ("mid-line-dot-crlf", b".\r\n", ONE),
    ("crlf-nbsp-dot-crlf", "\r\n\u00a0.\r\n".encode(), ONE),
    ("crlf-fullwidth-dot-crlf", "\r\n\uff0e\r\n".encode(), ONE),
    ("crlf-dot-vt-crlf", b"\r\n.\x0b\r\n", ONE),
    ("crlf-dot-ff-crlf", b"\r\n.\x0c\r\n", ONE),
]


def _check(hop, delivered: bool, content: bytes, transactions: int = 1) -> None:
    if delivered:
        hop.assert_one(["someone@example.com"], mail_from="sender@example.com", content=content,
                       transactions=transactions)
    else:
        hop.assert_no_message(forbidden=("victim",))
    assert not [c for c in hop.tap.commands() if "victim" in c]


def _run_data(r, hop, segments: list[bytes], expected: list[str], delivered: bool, content: bytes,
              transactions: int = 1) -> None:
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd("MAIL FROM:<sender@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.com>").status == "250 2.1.5"
        assert c.cmd("DATA").code == 354
        for i, s in enumerate(segments):
            if i:
                time.sleep(0.05)  # separate reads at the relay (TCP_NODELAY is on)
            c.send(s)
        assert read_all(c) == expected
    _check(hop, delivered, content, transactions)


@pytest.mark.parametrize("term, end", [pytest.param(t, e, id=i) for i, t, e in EARLY])
def test_fake_end_of_data(seed003, request, term, end):
    r, hop = seed003
    data = _head(request.node.callspec.id) + term + SMUGGLED
    _run_data(r, hop, [data + b".\r\nQUIT\r\n"], [end] + CLOSE, end == ONE, unstuff(data))


LATE = ["lf-dot-lf", "lf-dot-crlf", "cr-dot-cr", "crlf-dot-lf", "cr-dot-crlf", "bare-cr", "crlf-nul-dot-crlf",
        "crlf-dot-dot-crlf"]


@pytest.mark.parametrize("term, end", [pytest.param(t, e, id=i) for i, t, e in EARLY if i in LATE])
def test_fake_end_of_data_after_streaming_started(seed003, request, term, end):
    # 70 KiB of content first: the relay has already streamed part of the message to the next
    # hop when it meets the fake terminator, so a refusal must abort the transaction there.
    r, hop = seed003
    data = _head(request.node.callspec.id) + b"\r\n" + (b"y" * 998 + b"\r\n") * 70 + b"tail" + term + SMUGGLED
    _run_data(r, hop, [data + b".\r\nQUIT\r\n"], [end] + CLOSE, end == ONE, unstuff(data))


# (id, the segments after the head, each sent as its own TCP segment, expected replies, whether
# the carrier is delivered, and what it holds after the head)
SPLIT = [
    ("crlf-dot | lf", [b"\r\n.", b"\n" + SMUGGLED + b".\r\nQUIT\r\n"], [REFUSED] + CLOSE, False),
    ("crlf-dot-cr | cr-lf", [b"\r\n.\r", b"\r\n" + SMUGGLED + b".\r\nQUIT\r\n"], [REFUSED] + CLOSE, False),
    ("lf | dot-lf", [b"\n", b".\n" + SMUGGLED + b".\r\nQUIT\r\n"], [REFUSED] + CLOSE, False),
    ("cr | dot-cr", [b"\r", b".\r" + SMUGGLED + b".\r\nQUIT\r\n"], [REFUSED] + CLOSE, False),
    ("crlf-dot-dot | crlf", [b"\r\n..", b"\r\n" + SMUGGLED + b".\r\nQUIT\r\n"], [ONE] + CLOSE, True),
    ("crlf-dot-nul | crlf", [b"\r\n.\x00", b"\r\n" + SMUGGLED + b".\r\nQUIT\r\n"], [ONE] + CLOSE, True),
    # a true terminator split anywhere is still the end: what follows is commands, not content
    ("cr | lf-dot-cr | lf", [b"\r", b"\n.\r", b"\n" + SMUGGLED + b".\r\nQUIT\r\n"], [ONE] + AS_COMMANDS, True),
    ("cr | lf | dot | cr | lf", [b"\r", b"\n", b".", b"\r", b"\n" + SMUGGLED + b".\r\nQUIT\r\n"],
     [ONE] + AS_COMMANDS, True),
    # a bare CR, then a true terminator: refused, and the rest is commands under the policy
    ("cr | crlf-dot-crlf", [b"\r", b"\r\n.\r\n" + SMUGGLED + b".\r\nQUIT\r\n"], [REFUSED] + AS_COMMANDS, False),
    ("cr-crlf-dot-crlf", [b"\r\r\n.\r\n" + SMUGGLED + b".\r\nQUIT\r\n"], [REFUSED] + AS_COMMANDS, False),
]


@pytest.mark.parametrize("segments, expected, delivered", [pytest.param(s, e, d, id=i) for i, s, e, d in SPLIT])
def test_terminator_split_across_segments(seed003, request, segments, expected, delivered):
    r, hop = seed003
    head = _head(request.node.callspec.id.replace(" ", ""))
    whole = head + b"".join(segments)
    if expected[1:] == AS_COMMANDS:
        content = head + b"\r\n"  # the carrier ends at the true terminator
    else:
        content = unstuff(whole[:whole.rindex(b".\r\nQUIT\r\n")])
    # when the fake transaction turned into commands, its MAIL FROM opened a second (empty)
    # transaction at the next hop
    transactions = 2 if expected[1:] == AS_COMMANDS else 1
    _run_data(r, hop, [head + segments[0]] + segments[1:], expected, delivered, content, transactions)
    if expected[1:] == AS_COMMANDS:
        # the fake MAIL FROM became a real one (this client may use that sender) and nothing else
        mails = [c for c in hop.tap.commands() if c.startswith("MAIL")]
        assert mails[-1] == "MAIL FROM:<ceo@example.com>", mails


def _bdat(chunk: bytes, last: bool = False) -> bytes:
    return f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk


# (id, chunks (the last one LAST), expected replies, whether delivered). BDAT content has no
# end mark: <CRLF>.<CRLF> in it is content, which the relay must dot-stuff towards the next hop.
BDAT = [
    ("crlf-dot-crlf-inside", [b"Subject: c\r\n\r\nx\r\n.\r\n" + SMUGGLED + b".\r\n"], [ONE] + CLOSE, True),
    ("starts-with-dot-line", [b".\r\n" + SMUGGLED], [ONE] + CLOSE, True),
    ("only-a-dot-line", [b".\r\n"], [ONE] + CLOSE, True),
    ("dot-lines-everywhere", [b"Subject: d\r\n\r\n.\r\n..\r\n.x\r\n.\r\n"], [ONE] + CLOSE, True),
    ("no-final-crlf", [b"Subject: c\r\n\r\nno line end"], [ONE] + CLOSE, True),
    ("crlf-across-chunks", [b"Subject: c\r\n\r\nx\r", b"\n.\r\n" + SMUGGLED], ["250 2.0.0", ONE] + CLOSE, True),
    ("dot-at-chunk-start", [b"Subject: c\r\n\r\nx\r\n", b".\r\n" + SMUGGLED], ["250 2.0.0", ONE] + CLOSE, True),
    ("fake-bdat-inside", [b"Subject: c\r\n\r\nx\r\nBDAT 5 LAST\r\nhello\r\n"], [ONE] + CLOSE, True),
    ("bare-lf-dot-lf", [b"Subject: c\r\n\r\nx\n.\n" + SMUGGLED], [REFUSED] + CLOSE, False),
    ("bare-cr-dot-cr", [b"Subject: c\r\n\r\nx\r.\r" + SMUGGLED], [REFUSED] + CLOSE, False),
    ("bare-cr-across-chunks", [b"Subject: c\r\n\r\nx\r", b".\r\n" + SMUGGLED], ["250 2.0.0", REFUSED] + CLOSE, False),
    ("bare-lf-in-first-chunk", [b"Subject: c\r\n\r\nx\n", b"y\r\n" + SMUGGLED], ["250 2.0.0", REFUSED] + CLOSE, False),
]


@pytest.mark.parametrize("chunks, expected, delivered", [pytest.param(c, e, d, id=i) for i, c, e, d in BDAT])
def test_bdat_content_is_never_a_terminator(seed003, chunks, expected, delivered):
    r, hop = seed003
    content = b"".join(chunks)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"  # the relay ends the last line before the next hop's end mark
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd("MAIL FROM:<sender@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.com>").status == "250 2.1.5"
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(0.05)
            c.send(_bdat(chunk, last=i == len(chunks) - 1) + (b"QUIT\r\n" if i == len(chunks) - 1 else b""))
        assert read_all(c) == expected
    _check(hop, delivered, content)

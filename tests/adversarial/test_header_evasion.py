"""Header firewall evasion and trace forgery by an anonymous client.

The off-list client of seed 003 (AnonymousUsers: ms-Exch-Accept-Headers-Routing, but neither
-Organization nor -Forest) may not hand X-MS-Exchange-Organization-* or X-MS-Exchange-Forest-*
fields to the next hop (docs/policy-semantics.md, header firewall). Each case is one message to
someone@example.com; the bytes the next hop receives after the relay's own Received field must
be exactly the expected header section and body. The relay's Received field is its own record of
the hop and must be exactly the three lines it writes - client bytes may not extend it.
"""

from __future__ import annotations

import re

import pytest

from advtest import OFF_LIST, SEED_003, read_all, session

ORG = b"X-MS-Exchange-Organization-AuthAs: Internal\r\n"
FOREST = b"X-MS-Exchange-Forest-RulesExecuted: relay\r\n"
SUBJECT = b"Subject: header probe\r\n"
BODY = b"\r\nbody\r\n"
TRACE = re.compile(rb"^Received: from client\.test \(\[127\.0\.0\.1\]\) by relay\.test \(KubeRelay, connector "
                   rb"default/internet-default\)\r\n\tid [0-9A-F]{16}\r\n\twith ESMTP; [^\r\n]+\r\n")


@pytest.fixture(scope="module")
def seed003(module_relay):
    return module_relay(SEED_003)


# (id, content sent, content the next hop gets after the relay's Received field)
CASES = [
    ("organization-header", SUBJECT + ORG + BODY, SUBJECT + BODY),
    ("forest-header", SUBJECT + FOREST + BODY, SUBJECT + BODY),
    ("lowercase-name", SUBJECT + ORG.lower() + BODY, SUBJECT + BODY),
    ("uppercase-name", SUBJECT + ORG.upper() + BODY, SUBJECT + BODY),
    ("space-before-colon", SUBJECT + b"X-MS-Exchange-Organization-SCL : -1\r\n" + BODY, SUBJECT + BODY),
    ("tab-before-colon", SUBJECT + b"X-MS-Exchange-Organization-SCL\t: -1\r\n" + BODY, SUBJECT + BODY),
    ("no-space-after-colon", SUBJECT + b"X-MS-Exchange-Organization-SCL:-1\r\n" + BODY, SUBJECT + BODY),
    ("folded-value", SUBJECT + b"X-MS-Exchange-Organization-AuthAs:\r\n Internal\r\n\tstill\r\n" + BODY, SUBJECT + BODY),
    ("first-field", ORG + SUBJECT + BODY, SUBJECT + BODY),
    ("last-field", SUBJECT + FOREST + ORG + BODY, SUBJECT + BODY),
    ("many", SUBJECT + ORG * 50 + FOREST * 50 + BODY, SUBJECT + BODY),
    ("after-a-line-without-colon", SUBJECT + b"NoColonLine\r\n" + ORG + BODY, SUBJECT + b"NoColonLine\r\n" + BODY),
    ("after-a-whitespace-only-line", SUBJECT + b"   \r\n" + ORG + BODY, SUBJECT + b"   \r\n" + BODY),
    ("no-body", SUBJECT + ORG, SUBJECT),
    ("in-the-body", SUBJECT + BODY + ORG, SUBJECT + BODY + ORG),  # the body passes untouched
    # a leading dot the client did not stuff: "X-..." once unstuffed, still the header
    ("unstuffed-dot-on-the-wire", SUBJECT + b".X-MS-Exchange-Organization-AuthAs: Internal\r\n" + BODY,
     SUBJECT + BODY),
    # a stuffed one: the field is ".X-...", another name, and stays one at the next hop
    ("stuffed-dot-is-another-field", SUBJECT + b".X-MS-Exchange-Organization-AuthAs: Internal\r\n" + BODY,
     SUBJECT + b".X-MS-Exchange-Organization-AuthAs: Internal\r\n" + BODY),
    ("received-kept", b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n" + SUBJECT + BODY,
     b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n" + SUBJECT + BODY),  # routing right held
]


def _send(r, content: bytes, stuff: bool = True) -> list[str]:
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd("MAIL FROM:<sender@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.com>").status == "250 2.1.5"
        assert c.cmd("DATA").code == 354
        stuffed = content
        if stuff:
            stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in content.split(b"\r\n"))
        c.send(stuffed + (b"" if content.endswith(b"\r\n") else b"\r\n") + b".\r\nQUIT\r\n")
        return read_all(c)


@pytest.mark.parametrize("content, expected", [pytest.param(c, e, id=i) for i, c, e in CASES])
def test_header_firewall_cannot_be_evaded(seed003, request, content, expected):
    r, hop = seed003
    stuff = request.node.callspec.id != "unstuffed-dot-on-the-wire"
    assert _send(r, content, stuff) == ["250 2.0.0", "221 2.0.0", "<closed>"]
    hop.assert_one(["someone@example.com"], mail_from="sender@example.com")
    [m] = hop.tap.messages()
    trace = TRACE.match(m.content)
    assert trace, m.content[:400]
    assert m.content[trace.end():] == expected



# Content whose first line is a continuation line: there is no field for it to continue but the
# relay's own Received field. Either refused, or delivered with that field intact and no client
# byte folded into it.
LEADING_FOLD = [
    pytest.param(b"\tby forged.example with ESMTP id FORGED\r\n" + SUBJECT + BODY, id="forged-trace"),
    pytest.param(b" " + ORG + SUBJECT + BODY, id="folded-organization-header"),
    pytest.param(b"\t(authenticated as ceo@example.com)\r\n" + SUBJECT + BODY, id="forged-authentication-note"),
]


@pytest.mark.parametrize("content", LEADING_FOLD)
def test_client_cannot_extend_the_relays_received_field(seed003, content):
    r, hop = seed003
    replies = _send(r, content)
    if replies[0].startswith("5"):
        assert replies == [replies[0], "221 2.0.0", "<closed>"]
        hop.assert_no_message()
        return
    assert replies == ["250 2.0.0", "221 2.0.0", "<closed>"]
    hop.assert_one(["someone@example.com"], mail_from="sender@example.com")
    [m] = hop.tap.messages()
    trace = TRACE.match(m.content)
    assert trace, m.content[:400]
    rest = m.content[trace.end():]
    assert not rest.startswith((b" ", b"\t")), f"client bytes continue the relay's Received field: {rest[:120]!r}"
    # The header section the next hop sees holds no client byte of the folded line.
    headers = m.content.split(b"\r\n\r\n")[0]
    assert b"forged" not in headers and b"X-MS-Exchange-Organization" not in headers, headers[:400]

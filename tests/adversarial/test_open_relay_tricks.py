"""Classic open-relay tricks against seed 003's Internet-facing connector.

``internet-default`` (every 127.0.0.x but 127.0.0.16-31) serves anonymous clients without
ms-Exch-SMTP-Accept-Any-Recipient: only recipients in the accepted domain example.com. Per
docs/policy-semantics.md (RCPT TO), a local part with ``%``, ``!`` or ``@`` is sender-specified
routing and counts as relaying even in an accepted domain (Postfix's allow_untrusted_routing =
no), domain matching is case-insensitive, and source routes are checked then dropped (RFC 5321
4.1.1.3). So an address form that a next hop could *rewrite* into an external destination is
refused (550 5.7.54) where the client may not relay, and passed through verbatim where it may
(``anonymous-relay``, 127.0.0.17): the relay never rewrites it itself.

Each case is one session: MAIL FROM, the hostile RCPT TO, and when it is accepted a message
whose exact bytes must reach the next hop once, for exactly the recipient shown; when it is
refused, the next hop must never be named that recipient (the tap sees no RCPT at all).
"""

from __future__ import annotations

import time

import pytest

from advtest import EXTERNAL, OFF_LIST, ON_LIST, SEED_003, session

RELAY_DENIED = "550 5.7.54"
BAD_RCPT = "501 5.1.3"
NON_ASCII = "553 5.6.7"
LINE_ERROR = "500 5.5.2"        # line too long, or a bare CR/LF/NUL in a command line
OK = "250 2.1.5"


@pytest.fixture(scope="module")
def seed003(module_relay):
    return module_relay(SEED_003)


def _addr_of_length(n: int, suffix: str = "." + EXTERNAL) -> str:
    """local@domain of exactly n octets: a 64-octet local part, labels of at most 63."""
    local = "a" * 64
    room = n - len(local) - 1 - len(suffix.lstrip("."))  # for "label." pieces before it
    labels = []
    while room > 0:
        take = min(63, room - 1)
        if room - (take + 1) == 1:
            take -= 1  # never leave a single octet: a label needs one plus its dot
        labels.append("d" * take)
        room -= take + 1
    domain = "".join(l + "." for l in labels) + suffix.lstrip(".")
    addr = f"{local}@{domain}"
    assert len(addr) == n, (len(addr), n)
    return addr


# (id, the bytes after "RCPT TO:" (or a whole RCPT line), expected status, the recipient the next
# hop must get, or None when nothing may reach it)
OFF_LIST_CASES = [
    # percent hack: user%external@accepted
    ("percent", b"<user%external.test@example.com>", RELAY_DENIED, None),
    ("percent-twice", b"<user%external.test%example.com@example.com>", RELAY_DENIED, None),
    ("percent-upper-accepted", b"<user%external.test@EXAMPLE.COM>", RELAY_DENIED, None),
    ("percent-quoted", b'<"user%external.test"@example.com>', RELAY_DENIED, None),
    ("percent-ip-literal", b"<user%[192.0.2.1]@example.com>", BAD_RCPT, None),
    ("percent-bare-path", b"user%external.test@example.com", RELAY_DENIED, None),
    # bang paths
    ("bang", b"<external.test!user@example.com>", RELAY_DENIED, None),
    ("bang-two-hops", b"<a.test!external.test!user@example.com>", RELAY_DENIED, None),
    ("bang-and-percent", b"<external.test!user%x.test@example.com>", RELAY_DENIED, None),
    ("bang-without-domain", b"<external.test!user>", BAD_RCPT, None),
    # source routes <@a,@b:user@c>: checked, then dropped
    ("route-to-external", b"<@example.com:user@external.test>", RELAY_DENIED, None),
    ("route-list-to-external", b"<@example.com,@example.com:user@external.test>", RELAY_DENIED, None),
    ("route-via-external-to-accepted", b"<@external.test:user@example.com>", OK, "user@example.com"),
    ("route-list-via-external", b"<@a.test,@external.test:user@example.com>", OK, "user@example.com"),
    ("route-to-percent", b"<@example.com:user%external.test@example.com>", RELAY_DENIED, None),
    ("route-empty-domain", b"<@:user@example.com>", BAD_RCPT, None),
    ("route-without-colon", b"<@external.test,user@example.com>", BAD_RCPT, None),
    ("route-ip-literal", b"<@[127.0.0.1]:user@example.com>", BAD_RCPT, None),
    ("route-no-mailbox", b"<@external.test:>", BAD_RCPT, None),
    # '@' in the local part
    ("double-at", b"<user@external.test@example.com>", BAD_RCPT, None),
    ("quoted-at", b'<"user@external.test"@example.com>', RELAY_DENIED, None),
    ("quoted-escaped-at", b'<"user\\@external.test"@example.com>', RELAY_DENIED, None),
    ("quoted-at-upper", b'<"user@external.test"@EXAMPLE.COM>', RELAY_DENIED, None),
    ("backslash-at-unquoted", b"<user\\@external.test@example.com>", BAD_RCPT, None),
    ("quoted-unterminated", b'<"user@external.test>', BAD_RCPT, None),
    ("quoted-no-domain", b'"user@external.test"', BAD_RCPT, None),
    ("quoted-plain", b'<"user"@example.com>', OK, "user@example.com"),
    ("quoted-space", b'<"a b"@example.com>', OK, '"a b"@example.com'),
    ("quoted-angle", b'<"a>b"@example.com>', OK, '"a>b"@example.com'),
    # IP literals
    ("ip-literal", b"<user@[127.0.0.1]>", RELAY_DENIED, None),
    ("ip-literal-test-net", b"<user@[192.0.2.1]>", RELAY_DENIED, None),
    ("ipv6-literal", b"<user@[IPv6:::1]>", RELAY_DENIED, None),
    ("ipv6-mapped-literal", b"<user@[IPv6:::ffff:127.0.0.1]>", RELAY_DENIED, None),
    ("numeric-domain", b"<user@127.0.0.1>", RELAY_DENIED, None),
    ("literal-with-name", b"<user@[example.com]>", BAD_RCPT, None),
    ("general-literal", b"<user@[tag:value]>", BAD_RCPT, None),
    ("literal-unclosed", b"<user@[127.0.0.1>", BAD_RCPT, None),
    # dots
    ("trailing-dot-external", b"<user@external.test.>", BAD_RCPT, None),
    ("trailing-dot-accepted", b"<user@example.com.>", BAD_RCPT, None),
    ("leading-dot-domain", b"<user@.example.com>", BAD_RCPT, None),
    ("empty-label", b"<user@example..com>", BAD_RCPT, None),
    ("local-trailing-dot", b"<user.@example.com>", BAD_RCPT, None),
    ("local-leading-dot", b"<.user@example.com>", BAD_RCPT, None),
    # case
    ("accepted-upper", b"<User@EXAMPLE.COM>", OK, "User@EXAMPLE.COM"),
    ("accepted-mixed", b"<user@Example.Com>", OK, "user@Example.Com"),
    ("external-upper", b"<user@EXTERNAL.TEST>", RELAY_DENIED, None),
    ("external-mixed", b"<user@External.Test>", RELAY_DENIED, None),
    ("lowercase-verb", b"rcpt to:<user@external.test>", RELAY_DENIED, None),
    ("double-space-verb", b"RCPT  TO:<user@external.test>", RELAY_DENIED, None),
    ("space-before-colon", b"RCPT TO :<user@example.com>", "501 5.5.4", None),
    # look-alikes of the accepted domain
    ("subdomain-of-accepted", b"<user@sub.example.com>", RELAY_DENIED, None),
    ("accepted-as-prefix", b"<user@example.com.external.test>", RELAY_DENIED, None),
    ("accepted-as-suffix", b"<user@notexample.com>", RELAY_DENIED, None),
    ("accepted-truncated", b"<user@example.co>", RELAY_DENIED, None),
    ("punycode-lookalike", b"<user@xn--exmple-cua.com>", RELAY_DENIED, None),
    # null path and postmaster
    ("null-recipient", b"<>", BAD_RCPT, None),
    ("postmaster", b"<postmaster>", OK, "postmaster"),
    ("postmaster-upper", b"<POSTMASTER>", OK, "POSTMASTER"),
    ("postmaster-accepted", b"<postmaster@example.com>", OK, "postmaster@example.com"),
    ("postmaster-external", b"<postmaster@external.test>", RELAY_DENIED, None),
    ("postmaster-external-upper", b"<POSTMASTER@EXTERNAL.TEST>", RELAY_DENIED, None),
    # lengths (RFC 5321 4.5.3.1: local part 64, domain label 63, path 256 with the brackets)
    ("local-64", b"<" + b"a" * 64 + b"@example.com>", OK, "a" * 64 + "@example.com"),
    ("local-65", b"<" + b"a" * 65 + b"@example.com>", BAD_RCPT, None),
    ("label-63", b"<u@" + b"l" * 63 + b".example.com>", RELAY_DENIED, None),
    ("label-64", b"<u@" + b"l" * 64 + b".example.com>", BAD_RCPT, None),
    ("path-256", b"<" + _addr_of_length(254).encode() + b">", RELAY_DENIED, None),
    ("path-257", b"<" + _addr_of_length(255).encode() + b">", BAD_RCPT, None),
    ("path-257-accepted", b"<" + _addr_of_length(255, ".example.com").encode() + b">", BAD_RCPT, None),
    ("line-over-512", b"<" + b"a" * 600 + b"@external.test>", LINE_ERROR, None),
    ("line-100k", b"<" + b"a" * 100_000 + b"@external.test>", LINE_ERROR, None),
    # UTF-8 without SMTPUTF8
    ("utf8-local", "<üser@example.com>".encode(), NON_ASCII, None),
    ("utf8-domain", "<user@exämple.com>".encode(), NON_ASCII, None),
    ("utf8-homograph", "<user@exаmple.com>".encode(), NON_ASCII, None),  # Cyrillic a
    ("utf8-quoted", '<"üser"@example.com>'.encode(), NON_ASCII, None),
    ("latin1-byte", b"<\xfcser@example.com>", NON_ASCII, None),
    ("overlong-utf8", b"<\xc0\xafuser@example.com>", NON_ASCII, None),
    # spaces, NUL, control characters
    ("space-in-local", b"<user @example.com>", BAD_RCPT, None),
    ("space-after-at", b"<user@ example.com>", BAD_RCPT, None),
    ("space-after-bracket", b"< user@example.com>", BAD_RCPT, None),
    ("space-before-bracket", b"<user@example.com >", BAD_RCPT, None),
    ("nul", b"<user\x00@example.com>", LINE_ERROR, None),
    ("nul-then-external", b"<user@example.com>\x00<user@external.test>", LINE_ERROR, None),
    ("bare-cr", b"<user\r@example.com>", LINE_ERROR, None),
    ("bare-lf-then-external", b"<user@example.com>\n<user@external.test>", LINE_ERROR, None),
    ("ctrl-a", b"<user\x01@example.com>", BAD_RCPT, None),
    ("del", b"<user\x7f@example.com>", BAD_RCPT, None),
    ("tab", b"<user\t@example.com>", BAD_RCPT, None),
    ("escape-sequence", b"<user\x1b[0m@example.com>", BAD_RCPT, None),
    # path syntax
    ("no-brackets-external", b"user@external.test", RELAY_DENIED, None),
    ("no-brackets-accepted", b"user@example.com", OK, "user@example.com"),
    ("space-before-path", b" <user@external.test>", RELAY_DENIED, None),
    ("unclosed-bracket", b"<user@external.test", BAD_RCPT, None),
    ("double-brackets", b"<<user@external.test>>", BAD_RCPT, None),
    ("second-path", b"<user@example.com> <user@external.test>", "501 5.5.4", None),
    ("glued-second-path", b"<user@example.com>user@external.test", BAD_RCPT, None),
    ("domain-after-bracket", b"<user@external.test>@example.com", BAD_RCPT, None),
    ("comment", b"<user@example.com(comment)>", BAD_RCPT, None),
    ("notify-parameter", b"<user@example.com> NOTIFY=NEVER", "555 5.5.4", None),
    ("orcpt-parameter", b"<user@example.com> ORCPT=rfc822;user@external.test", "555 5.5.4", None),
    ("empty-argument", b"", "501 5.5.4", None),
]


def _content(test_id: str) -> bytes:
    return f"Subject: open relay probe\r\nX-Test-Id: {test_id}\r\n\r\nbody\r\n".encode()


def _rcpt_line(arg: bytes) -> bytes:
    """A table entry is what follows "RCPT TO:", or a whole command line when it starts with
    the verb in any case."""
    return arg if arg[:4].upper() == b"RCPT" else b"RCPT TO:" + arg


def _probe(r, hop, source: str, rcpt_arg: bytes, expected: str, delivered: str | None, test_id: str) -> None:
    with session(r.port(), source) as c:
        assert c.cmd("MAIL FROM:<sender@example.com>").status == "250 2.1.0"
        assert c.cmd(_rcpt_line(rcpt_arg)).status == expected
        if delivered is not None:
            assert c.cmd("DATA").code == 354
            c.send(_content(test_id) + b".\r\n")
            assert c.reply().status == "250 2.0.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    if delivered is None:
        hop.assert_nothing()
    else:
        hop.assert_one([delivered], mail_from="sender@example.com", content=_content(test_id))


@pytest.mark.parametrize("rcpt, expected, delivered",
                         [pytest.param(a, e, d, id=i) for i, a, e, d in OFF_LIST_CASES])
def test_off_list_client_cannot_relay(seed003, request, rcpt, expected, delivered):
    r, hop = seed003
    _probe(r, hop, OFF_LIST, rcpt, expected, delivered, request.node.callspec.id)
    if delivered is None:
        # the external destination was never named to the next hop in any form
        hop.assert_nothing(settle=0, forbidden=(EXTERNAL, "external.TEST", "External.Test", "EXTERNAL"))


# The same forms from a client that may relay: accepted, and passed to the next hop exactly as
# the client wrote them (no percent/bang/quote rewriting by the relay), source routes dropped.
ON_LIST_CASES = [
    ("percent", b"<user%external.test@example.com>", OK, "user%external.test@example.com"),
    ("bang", b"<external.test!user@example.com>", OK, "external.test!user@example.com"),
    ("quoted-at", b'<"user@external.test"@example.com>', OK, '"user@external.test"@example.com'),
    ("quoted-escaped-at", b'<"user\\@external.test"@example.com>', OK, '"user\\@external.test"@example.com'),
    ("ip-literal", b"<user@[192.0.2.1]>", OK, "user@[192.0.2.1]"),
    ("ipv6-literal", b"<user@[IPv6:2001:db8::1]>", OK, "user@[IPv6:2001:db8::1]"),
    ("route", b"<@a.test,@b.test:user@external.test>", OK, "user@external.test"),
    ("external-upper", b"<User@EXTERNAL.TEST>", OK, "User@EXTERNAL.TEST"),
    ("quoted-space-external", b'<"a b"@external.test>', OK, '"a b"@external.test'),
    ("postmaster", b"<Postmaster>", OK, "Postmaster"),
    ("trailing-dot", b"<user@external.test.>", BAD_RCPT, None),
    ("utf8", "<üser@external.test>".encode(), NON_ASCII, None),
    ("local-65", b"<" + b"a" * 65 + b"@external.test>", BAD_RCPT, None),
    ("nul", b"<user@external.test\x00>", LINE_ERROR, None),
]


@pytest.mark.parametrize("rcpt, expected, delivered",
                         [pytest.param(a, e, d, id=i) for i, a, e, d in ON_LIST_CASES])
def test_on_list_client_routes_pass_verbatim(seed003, request, rcpt, expected, delivered):
    r, hop = seed003
    _probe(r, hop, ON_LIST, rcpt, expected, delivered, request.node.callspec.id)


# The null sender opens nothing: (MAIL FROM argument, MAIL status, RCPT TO argument, RCPT status,
# recipient delivered), from the off-list client.
NULL_SENDER_CASES = [
    ("null-to-external", b"<>", "250 2.1.0", b"<user@external.test>", RELAY_DENIED, None),
    ("null-to-percent", b"<>", "250 2.1.0", b"<user%external.test@example.com>", RELAY_DENIED, None),
    ("null-to-route", b"<>", "250 2.1.0", b"<@example.com:user@external.test>", RELAY_DENIED, None),
    ("null-to-ip-literal", b"<>", "250 2.1.0", b"<user@[127.0.0.1]>", RELAY_DENIED, None),
    ("null-to-accepted", b"<>", "250 2.1.0", b"<user@example.com>", OK, "user@example.com"),
    ("null-with-size", b"<> SIZE=100", "250 2.1.0", b"<user@external.test>", RELAY_DENIED, None),
    ("null-glued-parameter", b"<>SIZE=100", "501 5.1.7", None, None, None),
    ("null-with-route", b"<@a.test:>", "501 5.1.7", None, None, None),
    ("empty-argument", b"", "501 5.5.4", None, None, None),
    ("auth-parameter-forged", b"<> AUTH=<postmaster@example.com>", "250 2.1.0", b"<user@external.test>",
     RELAY_DENIED, None),
]


@pytest.mark.parametrize("mail, mail_status, rcpt, rcpt_status, delivered",
                         [pytest.param(*c[1:], id=c[0]) for c in NULL_SENDER_CASES])
def test_null_sender_does_not_open_relay(seed003, request, mail, mail_status, rcpt, rcpt_status, delivered):
    r, hop = seed003
    test_id = request.node.callspec.id
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd(b"MAIL FROM:" + mail).status == mail_status
        if rcpt is not None:
            assert c.cmd(b"RCPT TO:" + rcpt).status == rcpt_status
            if delivered:
                assert c.cmd("DATA").code == 354
                c.send(_content(test_id) + b".\r\n")
                assert c.reply().status == "250 2.0.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    if delivered:
        hop.assert_one([delivered], mail_from="", content=_content(test_id))
    else:
        hop.assert_nothing(forbidden=(EXTERNAL, "AUTH="))
    # a forged AUTH= parameter never reaches the next hop (the sender is whoever authenticated)
    assert not [c for c in hop.tap.commands() if "AUTH=" in c.upper()]


# UTF-8 addresses with SMTPUTF8 declared (RFC 6531). The smtp-sink next hop does not offer
# SMTPUTF8, so these run on the quickstart connector without its relay right (anonymous, only
# example.com), writing accepted mail to a drop directory - the next hop here.
@pytest.fixture(scope="module")
def quickstart_no_relay(module_relay):
    r, _ = module_relay("quickstart", next_hop=False, drop_files=("senderpermission.yaml",))
    return r


UTF8_CASES = [
    ("utf8-local-accepted", "<üser@example.com>".encode(), OK, "üser@example.com"),
    ("utf8-local-accepted-upper", "<ÜSER@EXAMPLE.COM>".encode(), OK, "ÜSER@EXAMPLE.COM"),
    ("utf8-domain", "<user@exämple.com>".encode(), RELAY_DENIED, None),
    ("utf8-homograph", "<user@exаmple.com>".encode(), RELAY_DENIED, None),
    ("utf8-external", "<üser@external.test>".encode(), RELAY_DENIED, None),
    ("utf8-percent", "<üser%external.test@example.com>".encode(), RELAY_DENIED, None),
    ("utf8-bang", "<external.test!üser@example.com>".encode(), RELAY_DENIED, None),
    ("utf8-quoted-at", '<"ü@external.test"@example.com>'.encode(), RELAY_DENIED, None),
    # U+FF20 is not "@": no routing character, so an example.com mailbox, passed on byte for
    # byte (the relay applies no NFKC folding that would turn it into a route)
    ("utf8-fullwidth-at", "<user＠external.test@example.com>".encode(), OK, "user＠external.test@example.com"),
    ("invalid-byte", b"<\xff@example.com>", BAD_RCPT, None),
    ("overlong", b"<\xc0\xafuser@example.com>", BAD_RCPT, None),
    ("surrogate", b"<\xed\xa0\x80@example.com>", BAD_RCPT, None),
    ("truncated-sequence", b"<user\xc3@example.com>", BAD_RCPT, None),
    ("past-u10ffff", b"<\xf4\x90\x80\x80@example.com>", BAD_RCPT, None),
]


@pytest.mark.parametrize("rcpt, expected, delivered", [pytest.param(a, e, d, id=i) for i, a, e, d in UTF8_CASES])
def test_utf8_addresses_with_smtputf8(quickstart_no_relay, request, rcpt, expected, delivered):
    r = quickstart_no_relay
    for f in r.drop_files():
        f.unlink()
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd("MAIL FROM:<sénder@example.com> SMTPUTF8").status == "250 2.1.0"
        assert c.cmd(b"RCPT TO:" + rcpt).status == expected
        if delivered:
            assert c.cmd("DATA").code == 354
            c.send(_content(request.node.callspec.id) + b".\r\n")
            assert c.reply().status == "250 2.6.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    files = r.drop_files()
    if delivered is None:
        assert files == []
    else:
        [f] = files
        data = f.read_bytes()
        head = data.split(b"\r\nReceived:", 1)[0]
        assert head == b"X-Sender: " + "sénder@example.com".encode() + b"\r\nX-Receiver: " + delivered.encode()
        assert data.endswith(b"\r\n" + _content(request.node.callspec.id))


def test_smtputf8_towards_a_next_hop_without_it_forwards_nothing(seed003):
    r, hop = seed003
    with session(r.port(), ON_LIST) as c:
        assert c.cmd("MAIL FROM:<app@example.com> SMTPUTF8").status == "451 4.5.3"
        assert c.cmd("RCPT TO:<üser@external.test>".encode()).status == "503 5.5.1"
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_nothing(forbidden=("SMTPUTF8", EXTERNAL))


# The same tricks against the connector in Audit mode: audit reports refusals instead of
# enforcing them, except anonymous relaying (docs/operations.md: "audit never creates an open
# relay"). Every expectation of the table holds unchanged.
@pytest.fixture(scope="module")
def audit003(module_relay):
    return module_relay(SEED_003, connectors={"internet-default": {"enforcement": "Audit",
                                                                   "limits": {"maxRecipientsPerMessage": 2}}})


@pytest.mark.parametrize("rcpt, expected, delivered",
                         [pytest.param(a, e, d, id=i) for i, a, e, d in OFF_LIST_CASES])
def test_audit_mode_never_opens_the_relay(audit003, request, rcpt, expected, delivered):
    r, hop = audit003
    _probe(r, hop, OFF_LIST, rcpt, expected, delivered, request.node.callspec.id)


# Past maxRecipientsPerMessage (2 here) on the Audit connector: (id, recipient, expected status,
# delivered to it)
BEYOND_LIMIT = [
    pytest.param("someone@example.com", OK, True, id="accepted-domain"),  # audited 452: proceeds
    pytest.param("victim@external.test", RELAY_DENIED, False, id="external"),
    pytest.param("victim%external.test@example.com", RELAY_DENIED, False, id="percent-hack"),
    pytest.param('"victim@external.test"@example.com', RELAY_DENIED, False, id="quoted-at"),
    pytest.param("victim@[192.0.2.1]", RELAY_DENIED, False, id="ip-literal"),
]


@pytest.mark.parametrize("rcpt, expected, delivered", BEYOND_LIMIT)
def test_audit_mode_recipient_limit_does_not_open_the_relay(audit003, rcpt, expected, delivered):
    r, hop = audit003
    body = b"Subject: beyond the limit\r\n\r\nx\r\n"
    with session(r.port(), OFF_LIST) as c:
        assert c.cmd("MAIL FROM:<sender@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<a@example.com>").status == OK
        assert c.cmd("RCPT TO:<b@example.com>").status == OK
        assert c.cmd(f"RCPT TO:<{rcpt}>").status == expected
        assert c.cmd("DATA").code == 354
        c.send(body + b".\r\n")
        assert c.reply().status == "250 2.0.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_one(["a@example.com", "b@example.com"] + ([rcpt] if delivered else []), content=body)
    assert delivered or "victim" not in hop.tap.raw().decode()


def test_audit_mode_default_recipient_limit_spam_run(relay, next_hop):
    # With the default limit (200): two hundred local recipients, then the victims.
    r = relay(SEED_003, next_hop, connectors={"internet-default": {"enforcement": "Audit"}})
    with session(r.port(), OFF_LIST) as c:
        c.send(b"MAIL FROM:<spammer@example.com>\r\n" + b"".join(f"RCPT TO:<u{i}@example.com>\r\n".encode()
                                                                  for i in range(200)))
        assert [c.reply().status for _ in range(201)] == ["250 2.1.0"] + [OK] * 200
        assert c.cmd("RCPT TO:<victim@external.test>").status == RELAY_DENIED
        assert c.cmd("QUIT").status == "221 2.0.0"
    # smtp-sink dumps the abandoned envelope of the 200 local recipients too; what matters: no
    # message was completed at the next hop and the victim was never named to it.
    time.sleep(0.2)
    assert not next_hop.tap.messages()
    assert b"victim" not in next_hop.tap.raw()

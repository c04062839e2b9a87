"""Sender spoofing by an authenticated user without sender rights (seed 001).

On ``client-submission`` (port 2587, Tls + BasicAuth + BasicAuthRequireTLS, ExchangeUsers),
bob@example.com holds no ms-Exch-SMTP-Accept-Authoritative-Domain-Sender nor Accept-Any-Sender:
per docs/policy-semantics.md (MAIL FROM) he may send as his own address (compared
case-insensitively, in any of its RFC 5321 spellings) or with the null sender, and nothing else
(550 5.7.1). The address tricks of the recipient table, aimed at the sender: every refused
sender must leave the next hop untouched; every accepted one must reach it as the same mailbox.
Then the same tricks against an anti-spoofing ``deny`` SenderPermission for anonymous clients.
"""

from __future__ import annotations

import pytest

from advtest import session

EXAMPLE = "001-authenticated-submission"
BOB = ("bob@example.com", "Bob-Pass-001")
SEND_AS_DENIED = "550 5.7.1"
BAD_SENDER = "501 5.1.7"


@pytest.fixture(scope="module")
def seed001(module_relay):
    return module_relay(EXAMPLE)


# (id, the bytes after "MAIL FROM:", expected status, the reverse-path the next hop must get)
SENDER_CASES = [
    ("own", b"<bob@example.com>", "250 2.1.0", "bob@example.com"),
    ("own-upper", b"<BOB@EXAMPLE.COM>", "250 2.1.0", "BOB@EXAMPLE.COM"),
    ("own-mixed", b"<Bob@Example.Com>", "250 2.1.0", "Bob@Example.Com"),
    ("own-quoted", b'<"bob"@example.com>', "250 2.1.0", "bob@example.com"),
    ("own-source-route", b"<@evil.test:bob@example.com>", "250 2.1.0", "bob@example.com"),
    ("own-no-brackets", b"bob@example.com", "250 2.1.0", "bob@example.com"),
    ("null", b"<>", "250 2.1.0", ""),
    ("forged-auth-parameter", b"<bob@example.com> AUTH=<mail.express@example.com>", "250 2.1.0", "bob@example.com"),
    ("trailing-dot", b"<bob@example.com.>", BAD_SENDER, None),
    ("percent", b"<bob%evil.test@example.com>", SEND_AS_DENIED, None),
    ("plus-tag", b"<bob+tag@example.com>", SEND_AS_DENIED, None),
    ("colleague", b"<mail.express@example.com>", SEND_AS_DENIED, None),
    ("postmaster-accepted", b"<postmaster@example.com>", SEND_AS_DENIED, None),
    ("postmaster-bare", b"<Postmaster>", BAD_SENDER, None),
    ("external", b"<bob@evil.test>", SEND_AS_DENIED, None),
    ("quoted-own-at-external", b'<"bob@example.com"@evil.test>', SEND_AS_DENIED, None),
    ("quoted-escaped-at", b'<"bob\\@example.com"@example.com>', SEND_AS_DENIED, None),
    ("bang", b"<evil.test!bob@example.com>", SEND_AS_DENIED, None),
    ("ip-literal", b"<bob@[127.0.0.1]>", SEND_AS_DENIED, None),
    ("subdomain", b"<bob@sub.example.com>", SEND_AS_DENIED, None),
    ("source-route-to-colleague", b"<@example.com:mail.express@example.com>", SEND_AS_DENIED, None),
    ("double-at", b"<bob@example.com@evil.test>", BAD_SENDER, None),
    ("homograph-utf8", "<bob@exаmple.com>".encode(), "553 5.6.7", None),
    ("homograph-smtputf8", "<bob@exаmple.com> SMTPUTF8".encode(), SEND_AS_DENIED, None),
    ("space-in-local", b"<bob @example.com>", BAD_SENDER, None),
    ("nul", b"<bob@example.com\x00>", "500 5.5.2", None),
    ("local-65", b"<" + b"b" * 65 + b"@example.com>", BAD_SENDER, None),
    ("second-path", b"<bob@example.com> <ceo@example.com>", "501 5.5.4", None),
]


def _content(test_id: str) -> bytes:
    return f"Subject: spoof probe\r\nX-Test-Id: {test_id}\r\n\r\nbody\r\n".encode()


@pytest.mark.parametrize("sender, expected, delivered",
                         [pytest.param(a, e, d, id=i) for i, a, e, d in SENDER_CASES])
def test_authenticated_user_cannot_spoof_senders(seed001, request, sender, expected, delivered):
    r, hop = seed001
    test_id = request.node.callspec.id
    with session(r.port(2587)) as c:
        assert c.starttls().status == "220 2.0.0"
        assert c.ehlo().code == 250
        assert c.auth_plain(*BOB).status == "235 2.7.0"
        assert c.cmd(b"MAIL FROM:" + sender).status == expected
        if delivered is not None:
            assert c.cmd("RCPT TO:<someone@external.test>").status == "250 2.1.5"
            assert c.cmd("DATA").code == 354
            c.send(_content(test_id) + b".\r\n")
            assert c.reply().status == "250 2.0.0"
        else:
            # no transaction was opened: the recipient is not even considered
            assert c.cmd("RCPT TO:<someone@external.test>").status == "503 5.5.1"
        assert c.cmd("QUIT").status == "221 2.0.0"
    if delivered is None:
        hop.assert_nothing(forbidden=("evil.test", "mail.express", "ceo@"))
        assert not [x for x in hop.tap.commands() if x.upper().startswith("MAIL")]
    else:
        hop.assert_one(["someone@external.test"], mail_from=delivered, content=_content(test_id))
        assert [x for x in hop.tap.commands() if x.upper().startswith("MAIL")] == [f"MAIL FROM:<{delivered}>"]


# Anti-spoofing on the Internet-facing connector (seed 003's internet-default, anonymous): a
# deny SenderPermission forbids ceo@example.com and every board.example.com address. The
# address forms of one mailbox must all be refused; other mailboxes stay allowed.
DENY = [{"apiVersion": "smtp.kuberelay.io/v1alpha1", "kind": "SenderPermission",
         "metadata": {"name": "no-spoofing-the-ceo"},
         "spec": {"connector": "internet-default", "principal": "Anonymous",
                  "extendedRights": ["ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"], "deny": True,
                  "sendAs": ["ceo@example.com", "*@board.example.com"]}}]
ANON_DENIED = "550 5.7.1"


@pytest.fixture(scope="module")
def seed003_deny(module_relay):
    return module_relay("003-anonymous-relay-ip-restricted", extra_files={"deny.yaml": DENY})


DENY_CASES = [
    pytest.param(b"<ceo@example.com>", ANON_DENIED, None, id="exact"),
    pytest.param(b"<CEO@EXAMPLE.COM>", ANON_DENIED, None, id="upper"),
    pytest.param(b"<Ceo@Example.Com>", ANON_DENIED, None, id="mixed"),
    pytest.param(b'<"ceo"@example.com>', ANON_DENIED, None, id="quoted"),
    pytest.param(b"<@relay.test:ceo@example.com>", ANON_DENIED, None, id="source-route"),
    pytest.param(b"ceo@example.com", ANON_DENIED, None, id="no-brackets"),
    pytest.param(b"<ceo@example.com> SIZE=10 BODY=8BITMIME", ANON_DENIED, None, id="with-parameters"),
    pytest.param(b'<"c\\eo"@example.com>', ANON_DENIED, None, id="quoted-pair"),
    pytest.param(b'<"\\c\\e\\o"@example.com>', ANON_DENIED, None, id="all-quoted-pairs"),
    pytest.param(b"<ceo@example.com.>", "501 5.1.7", None, id="trailing-dot"),
    pytest.param(b"<x@board.example.com>", ANON_DENIED, None, id="wildcard"),
    pytest.param(b"<X@BOARD.EXAMPLE.COM>", ANON_DENIED, None, id="wildcard-upper"),
    pytest.param(b'<"\\x"@board.example.com>', ANON_DENIED, None, id="wildcard-quoted-pair"),
    pytest.param(b"<x@sub.board.example.com>", "250 2.1.0", "x@sub.board.example.com", id="below-the-wildcard-domain"),
    pytest.param(b"<ceo+tag@example.com>", "250 2.1.0", "ceo+tag@example.com", id="other-mailbox-plus"),
    pytest.param(b"<cfo@example.com>", "250 2.1.0", "cfo@example.com", id="other-mailbox"),
    pytest.param(b"<ceo@sub.example.com>", "250 2.1.0", "ceo@sub.example.com", id="other-domain"),
    pytest.param(b'<"ceo "@example.com>', "250 2.1.0", '"ceo "@example.com', id="quoted-with-space"),
    pytest.param(b"<>", "250 2.1.0", "", id="null-sender"),
]


@pytest.mark.parametrize("sender, expected, delivered", DENY_CASES)
def test_sendas_deny_cannot_be_evaded(seed003_deny, request, sender, expected, delivered):
    r, hop = seed003_deny
    test_id = request.node.callspec.id
    with session(r.port()) as c:
        assert c.cmd(b"MAIL FROM:" + sender).status == expected
        if delivered is not None:
            assert c.cmd("RCPT TO:<someone@example.com>").status == "250 2.1.5"
            assert c.cmd("DATA").code == 354
            c.send(_content(test_id) + b".\r\n")
            assert c.reply().status == "250 2.0.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    if delivered is None:
        hop.assert_nothing()
        assert not [x for x in hop.tap.commands() if x.upper().startswith("MAIL")]
    else:
        hop.assert_one(["someone@example.com"], mail_from=delivered, content=_content(test_id))

"""STARTTLS command injection, AUTH before TLS, and the session state after TLS.

Seed 001's ``client-submission`` (port 2587: Tls, BasicAuth, BasicAuthRequireTLS, ExchangeUsers,
no anonymous submission) is the target: credentials must only ever be taken inside TLS, and
nothing the client said in plaintext may count after the handshake (RFC 3207 4.2; the
CVE-2011-0411 family: plaintext pipelined behind STARTTLS, read before the handshake, executed
inside it). Seed 003's on-list client (127.0.0.17) plays the variant where the injected bytes
wait in the relay's pipelining queue while the next hop answers an earlier command. Last,
protocol and cipher downgrades inside STARTTLS.
"""

from __future__ import annotations

import base64
import ssl
import warnings

import pytest

from advtest import ON_LIST, SEED_003, read_all, session
from relaytest import ca_file

BOB = ("bob@example.com", "Bob-Pass-001")
MAIL = b"MAIL FROM:<bob@example.com>\r\n"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


PLAIN_OK = f"AUTH PLAIN {b64(chr(0) + BOB[0] + chr(0) + BOB[1])}"


@pytest.fixture(scope="module")
def seed001(module_relay):
    return module_relay("001-authenticated-submission")


@pytest.fixture(scope="module")
def seed003(module_relay):
    return module_relay(SEED_003)


def _assert_fresh_tls_session(c) -> None:
    """Inside TLS: no hello yet, not authenticated, no transaction, connection still open."""
    assert c.cmd("MAIL FROM:<bob@example.com>").status == "503 5.5.2"  # send hello first
    ehlo = c.ehlo()
    assert ehlo.code == 250 and "AUTH PLAIN LOGIN" in ehlo.lines  # offered: nobody is logged in
    assert c.cmd("RCPT TO:<someone@external.test>").status == "503 5.5.1"  # no transaction
    assert c.cmd("MAIL FROM:<bob@example.com>").status == "530 5.7.1"  # anonymous
    assert c.cmd("NOOP").status == "250 2.0.0"


# (id, plaintext pipelined behind "STARTTLS\r\n" in the same TCP segment)
INJECTIONS = [
    ("mail", MAIL),
    ("ehlo", b"EHLO injected.test\r\n"),
    ("auth-plain-valid", (PLAIN_OK + "\r\n").encode()),
    ("auth-login-valid", f"AUTH LOGIN\r\n{b64(BOB[0])}\r\n{b64(BOB[1])}\r\n".encode()),
    ("ehlo-auth-mail-rcpt-data",
     f"EHLO x\r\n{PLAIN_OK}\r\n".encode() + MAIL + b"RCPT TO:<victim@external.test>\r\nDATA\r\nSubject: i\r\n\r\nx\r\n.\r\n"),
    ("quit", b"QUIT\r\n"),
    ("rset", b"RSET\r\n"),
    ("starttls-again", b"STARTTLS\r\n"),
    ("partial-line", b"MAIL FROM:<bob@exa"),
    ("noop-without-line-end", b"NOOP"),
    ("bare-lf-line", b"MAIL FROM:<bob@example.com>\n"),
    ("ten-kilobytes-of-noop", b"NOOP\r\n" * 1700),
    ("fake-tls-record-then-mail", b"\x16\x03\x01\x00\x05hello" + MAIL),
]


@pytest.mark.parametrize("injected", [pytest.param(b, id=i) for i, b in INJECTIONS])
def test_plaintext_pipelined_behind_starttls_is_discarded(seed001, injected):
    r, hop = seed001
    with session(r.port(2587)) as c:
        c.send(b"STARTTLS\r\n" + injected)
        assert c.reply().status == "220 2.0.0"
        assert c.buf == b"", "a second plaintext reply: the injected bytes were read as commands"
        c.upgrade()
        assert c.pending_bytes(0.2) == b"", "a stray reply inside TLS to a plaintext command"
        _assert_fresh_tls_session(c)
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_nothing(forbidden=("victim", "bob@example.com"))
    hop.assert_no_transaction()  # not even a MAIL FROM reached the next hop


def test_plaintext_sent_after_the_220_breaks_the_handshake(seed001):
    # The injected command arrives in its own segment after the 220, before the ClientHello: it
    # is the first thing the TLS layer reads, so the handshake fails; it never runs as SMTP.
    r, hop = seed001
    with session(r.port(2587)) as c:
        assert c.cmd("STARTTLS").status == "220 2.0.0"
        c.send(MAIL)
        with pytest.raises(OSError):  # ssl.SSLError is an OSError
            c.upgrade()
    hop.assert_nothing()
    hop.assert_no_transaction()


# Injected bytes queued while the relay waits for the next hop (in-line forwarding of MAIL):
# processed later, but still nothing behind STARTTLS may survive the handshake.
QUEUED = [
    ("mail-rset-starttls", b"MAIL FROM:<app@example.com>\r\nRSET\r\nSTARTTLS\r\n",
     ["250 2.1.0", "250 2.0.0", "220 2.0.0"]),
    ("mail-rcpt-rset-starttls", b"MAIL FROM:<app@example.com>\r\nRCPT TO:<one@example.org>\r\nRSET\r\nSTARTTLS\r\n",
     ["250 2.1.0", "250 2.1.5", "250 2.0.0", "220 2.0.0"]),
    ("noop-ehlo-starttls", b"NOOP\r\nEHLO again.test\r\nSTARTTLS\r\n", ["250 2.0.0", "250", "220 2.0.0"]),
]


@pytest.mark.parametrize("before, expected", [pytest.param(b, e, id=i) for i, b, e in QUEUED])
def test_injection_queued_behind_a_next_hop_wait(seed003, before, expected):
    r, hop = seed003
    with session(r.port(), ON_LIST) as c:
        c.send(before + b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@external.test>\r\nDATA\r\n")
        assert [c.reply().status for _ in expected] == expected
        assert c.buf == b""
        c.upgrade()
        assert c.pending_bytes(0.2) == b""
        assert c.ehlo().code == 250
        assert c.cmd("RCPT TO:<victim@external.test>").status == "503 5.5.1"
        assert c.cmd("DATA").status == "503 5.5.1"
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_no_message(forbidden=("victim", "evil@"))


# AUTH before STARTTLS on a BasicAuthRequireTLS connector: (id, plaintext lines, their replies).
# 538 5.7.11 (RFC 4954 4: encryption required) comes before any SASL exchange, so a credential
# line that follows is just an unknown command; no password is ever checked in plaintext.
AUTH_BEFORE_TLS = [
    ("plain-initial-response", [PLAIN_OK], ["538 5.7.11"]),
    ("plain-then-credentials", ["AUTH PLAIN", PLAIN_OK.split()[-1]], ["538 5.7.11", "500 5.3.3"]),
    ("login-then-credentials", ["AUTH LOGIN", b64(BOB[0]), b64(BOB[1])], ["538 5.7.11", "500 5.3.3", "500 5.3.3"]),
    ("login-initial-response", [f"AUTH LOGIN {b64(BOB[0])}", b64(BOB[1])], ["538 5.7.11", "500 5.3.3"]),
    ("lowercase", [PLAIN_OK.replace("AUTH PLAIN", "auth plain")], ["538 5.7.11"]),
    ("empty-response", ["AUTH PLAIN ="], ["538 5.7.11"]),
    ("unknown-mechanism", ["AUTH CRAM-MD5"], ["504 5.7.4"]),
    ("wrong-passwords-not-counted", [f"AUTH PLAIN {b64(chr(0) + BOB[0] + chr(0) + 'wrong')}"] * 4,
     ["538 5.7.11"] * 4),
    ("mail-anonymous", ["MAIL FROM:<bob@example.com>"], ["530 5.7.1"]),
    ("mail-with-auth-parameter", ["MAIL FROM:<bob@example.com> AUTH=<bob@example.com>"], ["530 5.7.1"]),
    ("helo-then-auth", ["HELO plain.test", PLAIN_OK], ["250", "538 5.7.11"]),
]


@pytest.mark.parametrize("lines, expected", [pytest.param(l, e, id=i) for i, l, e in AUTH_BEFORE_TLS])
def test_auth_before_tls_is_refused(seed001, lines, expected):
    r, hop = seed001
    with session(r.port(2587)) as c:
        ehlo = c.ehlo()
        assert not any(l.startswith("AUTH") for l in ehlo.lines)  # not offered in plaintext
        assert [c.cmd(l).status for l in lines] == expected
        assert c.starttls().status == "220 2.0.0"
        _assert_fresh_tls_session(c)
        assert c.auth_plain(*BOB).status == "235 2.7.0"  # no lockout from plaintext attempts
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_nothing()
    hop.assert_no_transaction()


def test_auth_before_hello_and_before_tls(seed001):
    r, hop = seed001
    with session(r.port(2587), ehlo=False) as c:
        assert c.cmd(PLAIN_OK).status == "503 5.5.2"
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_nothing()


# The handshake resets the session: EHLO must be sent again (RFC 3207 4.2). (id, the first
# commands after the handshake, their replies.)
NO_EHLO_AFTER_TLS = [
    ("mail", ["MAIL FROM:<bob@example.com>"], ["503 5.5.2"]),
    ("rcpt", ["RCPT TO:<someone@example.com>"], ["503 5.5.2"]),
    ("data", ["DATA"], ["503 5.5.2"]),
    ("auth", [PLAIN_OK], ["503 5.5.2"]),
    ("starttls", ["STARTTLS"], ["503 5.5.2"]),
    ("auth-then-mail", [PLAIN_OK, "MAIL FROM:<bob@example.com>"], ["503 5.5.2", "503 5.5.2"]),
    ("noop-rset-vrfy", ["NOOP", "RSET", "VRFY bob"], ["250 2.0.0", "250 2.0.0", "252 2.5.2"]),
    ("helo-is-enough", ["HELO after.test", PLAIN_OK, "MAIL FROM:<bob@example.com>"], ["250", "235 2.7.0", "250 2.1.0"]),
]


@pytest.mark.parametrize("lines, expected", [pytest.param(l, e, id=i) for i, l, e in NO_EHLO_AFTER_TLS])
def test_ehlo_must_be_reissued_after_tls(seed001, lines, expected):
    r, hop = seed001
    with session(r.port(2587)) as c:
        assert c.starttls().status == "220 2.0.0"
        assert [c.cmd(l).status for l in lines] == expected
        assert c.cmd("RSET").status == "250 2.0.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_nothing()


def test_bdat_before_ehlo_after_tls_skips_its_chunk(seed001):
    r, hop = seed001
    with session(r.port(2587)) as c:
        assert c.starttls().status == "220 2.0.0"
        chunk = b"MAIL FROM:<bob@example.com>\r\n"
        c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk + b"NOOP\r\n")
        assert read_all(c, timeout=1) == ["503 5.5.2", "250 2.0.0", "<silent>"]
    hop.assert_nothing()


def test_the_hello_name_from_before_tls_is_forgotten(seed001):
    r, hop = seed001
    with session(r.port(2587), ehlo=False) as c:
        assert c.ehlo("before-tls.test").code == 250
        assert c.starttls().status == "220 2.0.0"
        assert c.ehlo("after-tls.test").code == 250
        assert c.auth_plain(*BOB).status == "235 2.7.0"
        replies = c.send_message(BOB[0], ["someone@external.test"], b"Subject: helo\r\n\r\nx\r\n")
        assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
    m = hop.assert_one(["someone@external.test"], mail_from=BOB[0], content=b"Subject: helo\r\n\r\nx\r\n")
    received = m.header("Received")[0]
    assert received.startswith("from after-tls.test ([127.0.0.1])") and "with ESMTPSA" in received
    assert "before-tls" not in m.content


# Downgrades inside STARTTLS: (id, protocol version the client insists on (None: any), cipher
# list it offers). The relay must refuse with a TLS alert - the error must come from the server
# ("alert" in the message), not from a client unable to offer the suite.
DOWNGRADES = [
    ("tls-1.0", ssl.TLSVersion.TLSv1, "ALL:@SECLEVEL=0"),
    ("tls-1.1", ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0"),
    ("null-cipher", ssl.TLSVersion.TLSv1_2, "NULL:@SECLEVEL=0"),
    ("anonymous-dh", ssl.TLSVersion.TLSv1_2, "aNULL:@SECLEVEL=0"),
    ("static-rsa-cbc", ssl.TLSVersion.TLSv1_2, "AES128-SHA:@SECLEVEL=0"),
    ("dhe-rsa-cbc", ssl.TLSVersion.TLSv1_2, "DHE-RSA-AES128-SHA:@SECLEVEL=0"),
]


@pytest.mark.parametrize("version, ciphers", [pytest.param(v, c, id=i) for i, v, c in DOWNGRADES])
def test_tls_downgrade_is_refused(seed001, version, ciphers):
    r, hop = seed001
    with session(r.port(2587)) as c:
        assert c.cmd("STARTTLS").status == "220 2.0.0"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        ctx.set_ciphers(ciphers)
        with pytest.raises(ssl.SSLError, match="alert"):
            ctx.wrap_socket(c.sock, server_hostname="localhost")
    hop.assert_nothing()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls-1.2", "tls-1.3"])
def test_current_tls_versions_are_accepted(seed001, version):
    r, hop = seed001
    with session(r.port(2587)) as c:
        assert c.cmd("STARTTLS").status == "220 2.0.0"
        ctx = ssl.create_default_context(cafile=str(ca_file()))
        ctx.minimum_version = ctx.maximum_version = version
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        assert c.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert c.ehlo().code == 250
        assert c.auth_plain(*BOB).status == "235 2.7.0"
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_nothing()

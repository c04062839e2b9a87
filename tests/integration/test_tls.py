"""STARTTLS and implicit TLS with the example certificate (CN=localhost), AUTH advertisement under
BasicAuthRequireTLS, and plaintext pipelined after STARTTLS (CVE-2011-0411 style injection)."""

import smtplib
import socket
import time

import pytest

from relaytest import (RawSMTP, ca_file, client_tls_context, curl_smtp, message, received_by_relay, statuses,
                       status, transaction, quit_quietly)

SUBMISSION = "000-anonymous-web-app"
ANON = ("anonuser@example.com", "AnonUser-Pass-000")



def test_starttls_certificate_and_auth_advertisement(relay, sink):
    r = relay(SUBMISSION, sink)
    with RawSMTP(r.port(2587)) as c:
        assert c.greeting().code == 220
        before = c.ehlo().lines
        assert "STARTTLS" in before
        assert not any(l.startswith("AUTH") for l in before)
        assert c.starttls().status == "220 2.0.0"
        cert = c.sock.getpeercert()
        assert ("commonName", "localhost") in [x for rdn in cert["subject"] for x in rdn]
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        after = c.ehlo().lines
        assert "AUTH PLAIN LOGIN" in after
        assert "STARTTLS" not in after
        assert c.cmd("STARTTLS").status == "503 5.5.1"  # TLS already active
        assert c.auth_plain(*ANON).status == "235 2.7.0"
        assert not any(l.startswith("AUTH") for l in c.ehlo().lines)  # already authenticated
        assert c.cmd("QUIT").status == "221 2.0.0"


def test_starttls_forgets_pre_tls_state(relay, sink):
    # RFC 3207 4.2: after the handshake the client starts over; a HELO name learnt before is gone.
    r = relay(SUBMISSION, sink)
    with RawSMTP(r.port(2587)) as c:
        c.greeting()
        c.ehlo("before-tls.test")
        assert c.starttls().status == "220 2.0.0"
        assert c.cmd(f"MAIL FROM:<{ANON[0]}>").status == "503 5.5.2"  # send hello first


def test_plaintext_pipelined_after_starttls_is_discarded(relay, sink):
    r = relay("003-anonymous-relay-ip-restricted", sink)
    with RawSMTP(r.port(2525), source="127.0.0.17") as c:
        c.greeting()
        c.ehlo()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"STARTTLS\r\nNOOP\r\n")  # one segment
        assert c.reply().status == "220 2.0.0"
        assert c.buf == b"", "a reply after 220 in plaintext"
        c.upgrade()
        assert c.pending_bytes(0.5) == b"", "a stray reply (to the plaintext NOOP) arrived over TLS"
        ehlo = c.ehlo()
        assert ehlo.code == 250 and ehlo.lines[0].startswith("relay.test Hello")
        assert c.cmd("NOOP").status == "250 2.0.0"
        assert c.pending_bytes(0.3) == b""


def test_plaintext_mail_injected_before_tls_does_not_count(relay, sink):
    r = relay("003-anonymous-relay-ip-restricted", sink)
    with RawSMTP(r.port(2525), source="127.0.0.17") as c:
        c.greeting()
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<attacker@example.net>\r\n")
        assert c.reply().status == "220 2.0.0"
        c.upgrade()
        c.ehlo()
        # the injected MAIL FROM was dropped: there is no transaction
        assert c.cmd("RCPT TO:<victim@example.org>").status == "503 5.5.1"
    sink.assert_empty()


def test_implicit_tls_plaintext_client_gets_no_banner(relay, sink):
    r = relay(SUBMISSION, sink, connectors={"web-app-submission": {"tls": {"implicit": True}}})
    assert "tls=implicit" in r.log()
    s = socket.create_connection(("127.0.0.1", r.port(2587)), timeout=5)
    try:
        s.sendall(b"EHLO plaintext.test\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        assert b"220" not in data and b"250" not in data
    finally:
        s.close()


def test_implicit_tls_smtplib(relay, sink):
    r = relay(SUBMISSION, sink, connectors={"web-app-submission": {"tls": {"implicit": True}}})
    c = smtplib.SMTP_SSL("127.0.0.1", r.port(2587), local_hostname="smtps.test",
                         context=client_tls_context(), timeout=10)
    try:
        code, _ = c.ehlo()
        assert code == 250
        assert "starttls" not in c.esmtp_features  # already TLS
        assert c.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN"]
        c.user, c.password = ANON
        assert status(c.auth("PLAIN", c.auth_plain)) == "235 2.7.0"
        assert transaction(c, ANON[0], ["someone@example.org"], message(test_id="smtps")) == [
            "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    finally:
        quit_quietly(c)
    [m] = sink.wait_for(1)
    assert "with ESMTPSA" in received_by_relay(m)


def test_implicit_tls_curl_smtps(relay, sink):
    r = relay(SUBMISSION, sink, connectors={"web-app-submission": {"tls": {"implicit": True}}})
    code, replies, err = curl_smtp(f"smtps://127.0.0.1:{r.port(2587)}", ANON[0], ["someone@example.org"],
                                   message(test_id="curl-smtps"), "--cacert", str(ca_file()),
                                   "--user", f"{ANON[0]}:{ANON[1]}")
    assert code == 0, err
    assert "235 2.7.0" in statuses(replies)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["curl-smtps"]

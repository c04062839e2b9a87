"""Seed 000 (KB Q195681): a web application sends through one service account, anonuser@example.com,
on a submission connector with STARTTLS, basic auth that requires TLS and requireTLS.
examples/000-anonymous-web-app/README.md lists what is allowed and refused."""

import pytest

from relaytest import (RawSMTP, ca_file, client, curl_smtp, message, quit_quietly, received_by_relay,
                       statuses, swaks, transaction)

EXAMPLE = "000-anonymous-web-app"
ANON = ("anonuser@example.com", "AnonUser-Pass-000")
ALICE = ("alice@example.com", "Alice-Pass-000")


def test_service_account_sends_to_local_and_external_recipients_swaks(relay, sink):
    r = relay(EXAMPLE, sink)
    code, replies, transcript = swaks(
        r.port(2587), "--tls", "--tls-ca-path", str(ca_file()), "--tls-verify",
        "--auth", "PLAIN", "--auth-user", ANON[0], "--auth-password", ANON[1],
        "--from", ANON[0], "--to", "someone@example.com,someone@example.org",
        "--header", "Subject: seed 000")
    assert code == 0, transcript
    got = statuses(replies)
    assert got[0] == "220"
    assert "220 2.0.0" in got  # STARTTLS
    assert "235 2.7.0" in got
    assert got[-6:] == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"], transcript
    [m] = sink.wait_for(1)
    assert m.mail_from == ANON[0]
    assert m.rcpts == ["someone@example.com", "someone@example.org"]
    assert m.header("Subject") == ["seed 000"]
    rcv = received_by_relay(m)
    assert rcv.startswith("from swaks.test ([127.0.0.1]) by relay.test")
    assert "connector default/web-app-submission" in rcv
    assert "with ESMTPSA" in rcv


def test_service_account_sends_with_curl_auth_login(relay, sink):
    r = relay(EXAMPLE, sink)
    body = message(subject="curl login", test_id="curl-000")
    code, replies, err = curl_smtp(f"smtp://127.0.0.1:{r.port(2587)}", ANON[0], ["someone@example.org"], body,
                                   "--ssl-reqd", "--cacert", str(ca_file()),
                                   "--user", f"{ANON[0]}:{ANON[1]}", "--login-options", "AUTH=LOGIN")
    assert code == 0, err
    got = statuses(replies)
    assert "235 2.7.0" in got and got[-3:] == ["250 2.1.5", "354", "250 2.0.0"], err
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == (ANON[0], ["someone@example.org"])
    assert m.header("X-Test-Id") == ["curl-000"]
    assert m.body == "hello\n"


def test_before_starttls_no_auth_no_mail(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2587)) as c:
        assert c.greeting().code == 220
        ehlo = c.ehlo()
        assert ehlo.code == 250
        assert "STARTTLS" in ehlo.lines
        assert not any(l.startswith("AUTH") for l in ehlo.lines)  # BasicAuthRequireTLS
        assert c.auth_plain(*ANON).status == "538 5.7.11"
        assert c.cmd(f"MAIL FROM:<{ANON[0]}>").status == "530 5.7.0"  # requireTLS
        assert c.cmd("QUIT").status == "221 2.0.0"
    sink.assert_empty()


def test_unauthenticated_mail_after_starttls_refused(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2587), starttls=True)
    assert "auth" in c.esmtp_features and "starttls" not in c.esmtp_features
    assert transaction(c, ANON[0], ["someone@example.com"]) == ["530 5.7.1"]
    quit_quietly(c)
    sink.assert_empty()


def test_wrong_password_refused(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2587)) as c:
        c.greeting()
        c.ehlo()
        assert c.starttls().status == "220 2.0.0"
        c.ehlo()
        assert c.auth_plain(ANON[0], "not-the-password").status == "535 5.7.3"
        assert c.auth_plain(ALICE[0], ANON[1]).status == "535 5.7.3"  # another user's password
        assert c.cmd(f"MAIL FROM:<{ANON[0]}>").status == "530 5.7.1"
    sink.assert_empty()


@pytest.mark.parametrize("sender", ["alice@example.com", "someone@example.org"])
def test_service_account_cannot_send_as_others(relay, sink, sender):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2587), starttls=True, login=ANON)
    code, msg = c.mail(sender)
    assert (code, msg) == (550, b"5.7.1 Client does not have permission to send as this sender")
    assert transaction(c, ANON[0], ["someone@example.com"], message()) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.mail_from == ANON[0]  # only the allowed message went through

"""Seed 002 (Exchange Server Analyzer): anonymous access on the Internet bridgehead only; the
internal hub (127.0.0.32/27) and the client-submission connector require authentication.
examples/002-anonymous-by-connector-role/README.md."""

from relaytest import (RawSMTP, client, message, openssl_starttls, quit_quietly, received_by_relay,
                       statuses, transaction)

EXAMPLE = "002-anonymous-by-connector-role"
HUB1 = ("hub1", "Hub1-Pass-002")
CAROL = ("carol@example.com", "Carol-Pass-002")


def test_bridgehead_anonymous_local_delivery_openssl(relay, sink):
    r = relay(EXAMPLE, sink)
    code, replies, err = openssl_starttls(r.port(2525), [
        "EHLO openssl.test",
        "MAIL FROM:<app@example.net>",
        "RCPT TO:<someone@example.com>",
        "DATA",
        "Subject: via s_client",
        "",
        "body line",
        ".",
        "QUIT",
    ])
    got = statuses(replies)
    assert got == ["250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"], (got, err)
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == ("app@example.net", ["someone@example.com"])
    assert m.body == "body line\n"
    rcv = received_by_relay(m)
    assert "from openssl.test ([127.0.0.1])" in rcv and "connector default/internet-bridgehead" in rcv
    assert "with ESMTPS;" in rcv  # TLS, not authenticated


def test_bridgehead_refuses_relay(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2525))
    code, msg = c.mail("app@example.net")
    assert code == 250
    assert c.rcpt("someone@example.org") == (550, b"5.7.54 SMTP; Unable to relay recipient in non-accepted domain")
    quit_quietly(c)
    sink.assert_empty()


def test_internal_hub_server_relays_after_auth(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2525), source="127.0.0.33", starttls=True, login=HUB1)
    assert transaction(c, "hub@example.net", ["someone@example.org", "someone@example.com"],
                       message(test_id="hub1")) == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.rcpts == ["someone@example.org", "someone@example.com"]
    rcv = received_by_relay(m)
    assert "([127.0.0.33])" in rcv and "connector default/internal-hub" in rcv and "with ESMTPSA" in rcv


def test_internal_hub_refuses_anonymous(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2525), source="127.0.0.33") as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<hub@example.net>").status == "530 5.7.1"
        assert c.starttls().status == "220 2.0.0"
        c.ehlo()
        assert c.cmd("MAIL FROM:<hub@example.net>").status == "530 5.7.1"
    sink.assert_empty()


def test_client_submission_carol(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2587), starttls=True, login=CAROL, mechanism="LOGIN")
    assert transaction(c, CAROL[0], ["friend@example.org"], message(test_id="carol")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == (CAROL[0], ["friend@example.org"])
    assert "connector default/client-submission" in received_by_relay(m)


def test_client_submission_refuses_anonymous_and_auth_before_tls(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2587)) as c:
        c.greeting()
        ehlo = c.ehlo()
        assert "STARTTLS" in ehlo.lines and not any(l.startswith("AUTH") for l in ehlo.lines)
        assert c.cmd(f"MAIL FROM:<{CAROL[0]}>").status == "530 5.7.1"
        assert c.auth_plain(*CAROL).status == "538 5.7.11"
    sink.assert_empty()

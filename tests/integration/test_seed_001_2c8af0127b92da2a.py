"""Seed 001 (Mail Express): authenticated submission; the application account holds
Accept-Authoritative-Domain-Sender and Accept-Any-Sender, an ordinary user only sends as
himself. examples/001-authenticated-submission/README.md."""

import pytest

from relaytest import (RawSMTP, ca_file, client, curl_smtp, message, quit_quietly, received_by_relay,
                       statuses, swaks, transaction)

EXAMPLE = "001-authenticated-submission"
EXPRESS = ("mail.express@example.com", "MailExpress-Pass-001")
BOB = ("bob@example.com", "Bob-Pass-001")
OK = ["250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.0.0"]


def test_mail_express_sends_as_itself_local_and_external_senders(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2587), starttls=True, login=EXPRESS)
    senders = [EXPRESS[0], "someone@example.com", "someone@partner.example.org"]
    for i, sender in enumerate(senders):
        got = transaction(c, sender, ["local@example.com", "external@example.net"],
                          message(test_id=f"express-{i}"))
        assert got == OK, sender
    quit_quietly(c)
    msgs = sink.wait_for(3)
    assert sorted((m.header("X-Test-Id")[0], m.mail_from) for m in msgs) == [
        ("express-0", EXPRESS[0]), ("express-1", "someone@example.com"),
        ("express-2", "someone@partner.example.org")]
    for m in msgs:
        assert m.rcpts == ["local@example.com", "external@example.net"]
        assert "with ESMTPSA" in received_by_relay(m)


def test_mail_express_with_curl_ssl_reqd(relay, sink):
    r = relay(EXAMPLE, sink)
    code, replies, err = curl_smtp(f"smtp://127.0.0.1:{r.port(2587)}", "someone@partner.example.org",
                                   ["external@example.net"], message(test_id="curl-001"),
                                   "--ssl-reqd", "--cacert", str(ca_file()),
                                   "--user", f"{EXPRESS[0]}:{EXPRESS[1]}")
    assert code == 0, err
    assert "235 2.7.0" in statuses(replies)
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == ("someone@partner.example.org", ["external@example.net"])


def test_bob_sends_as_himself_swaks(relay, sink):
    r = relay(EXAMPLE, sink)
    code, replies, transcript = swaks(r.port(2587), "--tls", "--auth", "LOGIN", "--auth-user", BOB[0],
                                      "--auth-password", BOB[1], "--from", BOB[0],
                                      "--to", "friend@example.org")
    assert code == 0, transcript
    assert statuses(replies)[-5:] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"], transcript
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == (BOB[0], ["friend@example.org"])


@pytest.mark.parametrize("sender", ["someone@example.com", "someone@partner.example.org"])
def test_bob_cannot_send_as_others(relay, sink, sender):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2587), starttls=True, login=BOB)
    assert c.mail(sender) == (550, b"5.7.1 Client does not have permission to send as this sender")
    quit_quietly(c)
    sink.assert_empty()


def test_anonymous_and_auth_before_starttls_refused(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2587)) as c:
        c.greeting()
        assert not any(l.startswith("AUTH") for l in c.ehlo().lines)
        assert c.cmd(f"MAIL FROM:<{BOB[0]}>").status == "530 5.7.1"
        assert c.auth_plain(*BOB).status == "538 5.7.11"
        assert c.starttls().status == "220 2.0.0"
        assert c.ehlo().code == 250
        assert c.cmd(f"MAIL FROM:<{BOB[0]}>").status == "530 5.7.1"  # TLS alone is not enough
    sink.assert_empty()

"""Seed 004 (SmtpIpRestrictionFlag=1): the remote IP list (127.0.0.40) restricts anonymous
clients only; everybody may connect and authenticate. The all-clients/ variant (flag 0) serves
listed clients only. examples/004-ip-restriction-flag/README.md and all-clients/README.md."""

import pytest

from relaytest import RawSMTP, ca_file, client, message, quit_quietly, received_by_relay, statuses, swaks, transaction

EXAMPLE = "004-ip-restriction-flag"
HUB2 = ("hub2", "Hub2-Pass-004")
DAVE = ("dave@example.com", "Dave-Pass-004")


def test_on_list_anonymous_delivers_locally_swaks(relay, sink):
    r = relay(EXAMPLE, sink)
    code, replies, transcript = swaks(r.port(2525), "--from", "app@example.net", "--to", "someone@example.com",
                                      source="127.0.0.40")
    assert code == 0, transcript
    assert statuses(replies)[-5:] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"], transcript
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == ("app@example.net", ["someone@example.com"])
    assert "([127.0.0.40])" in received_by_relay(m)


def test_on_list_anonymous_cannot_relay(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2525), source="127.0.0.40")
    assert transaction(c, "app@example.net", ["someone@example.org"]) == ["250 2.1.0", "550 5.7.54"]
    quit_quietly(c)
    sink.assert_empty()


def test_off_list_anonymous_gets_530_5_7_3(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2525), source="127.0.0.1") as c:
        assert c.greeting().code == 220  # may connect
        c.ehlo()
        assert c.cmd("MAIL FROM:<app@example.net>").status == "530 5.7.3"
        assert c.starttls().status == "220 2.0.0"  # may STARTTLS
        c.ehlo()
        assert c.cmd("MAIL FROM:<app@example.net>").status == "530 5.7.3"
    sink.assert_empty()


@pytest.mark.parametrize("user", [HUB2, DAVE], ids=["hub2", "dave"])
def test_off_list_authenticated_sends_swaks(relay, sink, user):
    r = relay(EXAMPLE, sink)
    sender = user[0] if "@" in user[0] else "hub2@example.net"
    code, replies, transcript = swaks(
        r.port(2525), "--tls", "--tls-ca-path", str(ca_file()), "--auth", "PLAIN",
        "--auth-user", user[0], "--auth-password", user[1], "--from", sender,
        "--to", "someone@example.org", source="127.0.0.1")
    # hub2 (ExchangeServers) may send as any sender; dave (ExchangeUsers) as himself; both relay.
    assert code == 0, transcript
    assert "235 2.7.0" in statuses(replies)
    assert statuses(replies)[-5:] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"], transcript
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == (sender, ["someone@example.org"])
    rcv = received_by_relay(m)
    assert "([127.0.0.1])" in rcv and "with ESMTPSA" in rcv


def test_all_clients_variant_serves_the_list_only(relay, sink):
    r = relay(f"{EXAMPLE}/all-clients", sink)
    with RawSMTP(r.port(2525), source="127.0.0.1") as c:
        assert c.greeting().status == "554 5.7.1"
        assert c.closed_by_peer()
    c = client(r.port(2525), source="127.0.0.40", starttls=True, login=DAVE)
    assert transaction(c, DAVE[0], ["someone@example.org"], message(test_id="dave")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["dave"]

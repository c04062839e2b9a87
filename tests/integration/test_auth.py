"""AUTH PLAIN and LOGIN after STARTTLS: success, failure (535 5.7.3), lockout after
limits.maxLogonFailures (421 and close), and the authTarpitInterval delay before failures."""

import base64
import time

from relaytest import RawSMTP, client, message, quit_quietly, received_by_relay, transaction

EXAMPLE = "000-anonymous-web-app"
CONNECTOR = "web-app-submission"
ANON = ("anonuser@example.com", "AnonUser-Pass-000")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def tls_session(r) -> RawSMTP:
    c = RawSMTP(r.port(2587))
    assert c.greeting().code == 220
    c.ehlo()
    assert c.starttls().status == "220 2.0.0"
    assert c.ehlo().code == 250
    return c


def test_auth_plain_with_and_without_initial_response(relay, sink):
    r = relay(EXAMPLE, sink)
    with tls_session(r) as c:
        assert c.auth_plain(*ANON).status == "235 2.7.0"
        assert c.auth_plain(*ANON).status == "503 5.5.1"  # already authenticated
    with tls_session(r) as c:
        first = c.cmd("AUTH PLAIN")
        assert first.code == 334 and first.text == ""
        assert c.cmd(b64(f"\0{ANON[0]}\0{ANON[1]}")).status == "235 2.7.0"
        assert c.send_message(ANON[0], ["someone@example.org"], message(test_id="plain"))[-1].status == "250 2.0.0"
    [m] = sink.wait_for(1)
    assert m.mail_from == ANON[0] and "with ESMTPSA" in received_by_relay(m)


def test_auth_login_challenges(relay, sink):
    r = relay(EXAMPLE, sink)
    with tls_session(r) as c:
        user_prompt = c.cmd("AUTH LOGIN")
        assert (user_prompt.code, user_prompt.text) == (334, "VXNlcm5hbWU6")  # "Username:"
        pass_prompt = c.cmd(b64(ANON[0]))
        assert (pass_prompt.code, pass_prompt.text) == (334, "UGFzc3dvcmQ6")  # "Password:"
        assert c.cmd(b64(ANON[1])).status == "235 2.7.0"
    with tls_session(r) as c:
        # initial response carries the user name
        assert c.cmd(f"AUTH LOGIN {b64(ANON[0])}").text == "UGFzc3dvcmQ6"
        assert c.cmd(b64(ANON[1])).status == "235 2.7.0"
    c = client(r.port(2587), starttls=True, login=ANON, mechanism="LOGIN")
    assert transaction(c, ANON[0], ["someone@example.com"], message(test_id="login")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["login"]


def test_auth_failures(relay, sink):
    r = relay(EXAMPLE, sink, connectors={CONNECTOR: {"limits": {"maxLogonFailures": 0}}})
    with tls_session(r) as c:
        assert c.auth_plain(ANON[0], "wrong").status == "535 5.7.3"
        assert c.auth_plain("nobody@example.com", ANON[1]).status == "535 5.7.3"
        # LOGIN with a wrong password
        c.cmd("AUTH LOGIN")
        c.cmd(b64(ANON[0]))
        assert c.cmd(b64("wrong")).status == "535 5.7.3"
        # authorization identity for somebody else
        assert c.cmd(f"AUTH PLAIN {b64('alice@example.com' + chr(0) + ANON[0] + chr(0) + ANON[1])}").status == \
            "535 5.7.3"
        # cancelled exchange and undecodable response
        assert c.cmd("AUTH LOGIN").code == 334
        assert c.cmd("*").status == "501 5.7.0"
        assert c.cmd("AUTH PLAIN !!!notbase64").status == "501 5.5.2"
        assert c.cmd("AUTH CRAM-MD5").status == "504 5.7.4"
        # still usable; the right password works afterwards
        assert c.auth_plain(*ANON).status == "235 2.7.0"
    sink.assert_empty()


def test_lockout_after_max_logon_failures(relay, sink):
    r = relay(EXAMPLE, sink, connectors={CONNECTOR: {"limits": {"maxLogonFailures": 2, "maxProtocolErrors": 0}}})
    with tls_session(r) as c:
        assert c.auth_plain(ANON[0], "wrong-1").status == "535 5.7.3"
        assert c.auth_plain(ANON[0], "wrong-2").status == "535 5.7.3"
        assert c.reply().status == "421 4.7.0"
        assert c.closed_by_peer(3)
    # a new connection may try again
    with tls_session(r) as c:
        assert c.auth_plain(*ANON).status == "235 2.7.0"


def test_default_lockout_is_three_failures(relay, sink):
    r = relay(EXAMPLE, sink)
    with tls_session(r) as c:
        for _ in range(2):
            assert c.auth_plain(ANON[0], "wrong").status == "535 5.7.3"
        assert c.cmd("NOOP").status == "250 2.0.0"
        assert c.auth_plain(ANON[0], "wrong").status == "535 5.7.3"
        assert c.reply().status == "421 4.7.0"
        assert c.closed_by_peer(3)


def test_auth_tarpit_delays_failures_only(relay, sink):
    r = relay(EXAMPLE, sink, fast=False,
              connectors={CONNECTOR: {"limits": {"authTarpitInterval": "300ms", "tarpitInterval": "0s",
                                                 "maxLogonFailures": 0}}})
    with tls_session(r) as c:
        failures = []
        for _ in range(3):
            t = time.monotonic()
            assert c.auth_plain(ANON[0], "wrong").status == "535 5.7.3"
            failures.append(time.monotonic() - t)
        t = time.monotonic()
        assert c.auth_plain(*ANON).status == "235 2.7.0"
        success = time.monotonic() - t
    assert min(failures) >= 0.28, failures
    assert max(failures) < 2.0, failures
    assert success < 0.25, success

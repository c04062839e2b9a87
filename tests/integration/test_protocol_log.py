"""protocolLogging: Verbose writes Exchange's receive protocol log (CSV: date-time, connector-id,
session-id, sequence-number, local-endpoint, remote-endpoint, event, data, context). Without
--protocol-log-dir the lines go to standard output. AUTH secrets and message content never
appear in it."""

import base64

from relaytest import RawSMTP, message

EXAMPLE = "000-anonymous-web-app"
CONNECTOR = "web-app-submission"
ANON = ("anonuser@example.com", "AnonUser-Pass-000")


def protocol_lines(r):
    return [l.split(",") for l in r.log().splitlines() if f",default/{CONNECTOR}," in l]


def test_verbose_connector_logs_the_conversation_without_secrets(relay, sink):
    r = relay(EXAMPLE, sink, connectors={CONNECTOR: {"protocolLogging": "Verbose"}})
    with RawSMTP(r.port(2587)) as c:
        assert c.greeting().code == 220
        c.ehlo()
        assert c.starttls().status == "220 2.0.0"
        c.ehlo()
        assert c.auth_plain(*ANON).status == "235 2.7.0"
        body = message(test_id="protocol-log", body="TOP-SECRET-BODY-LINE\r\n")
        assert c.send_message(ANON[0], ["someone@example.org"], body)[-1].code == 250
    sink.wait_for(1)
    lines = protocol_lines(r)
    events = [(l[6], l[7]) for l in lines]
    assert ("+", "") in events and ("-", "") in events
    assert ("<", "STARTTLS") in events
    assert ("*", "TLS negotiated") in events
    assert ("<", "AUTH PLAIN ****") in events
    assert any(e == ">" and d.startswith("235 2.7.0") for e, d in events)
    assert ("<", "DATA") in events
    # one session id, sequence numbers counting up from 0
    assert len({l[2] for l in lines}) == 1
    assert [int(l[3]) for l in lines] == list(range(len(lines)))
    log = r.log()
    secret = base64.b64encode(f"\0{ANON[0]}\0{ANON[1]}".encode()).decode()
    assert ANON[1] not in log and secret not in log
    assert "TOP-SECRET-BODY-LINE" not in log


def test_connectors_without_verbose_log_no_protocol(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2587)) as c:
        assert c.greeting().code == 220
        c.ehlo()
    assert protocol_lines(r) == []

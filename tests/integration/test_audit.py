"""enforcement: Audit (issue "Explain and audit"): refusals are logged and counted in
kuberelay_audit_would_refuse_total but the session proceeds — except that audit never lets an
anonymous client relay to a non-accepted domain (no open relay is created by audit mode)."""

from relaytest import RawSMTP, message

EXAMPLE = "004-ip-restriction-flag"


def test_off_list_anonymous_client_is_reported_not_refused(relay, sink):
    r = relay(EXAMPLE, sink, connectors={"hub-anonymous-only": {"enforcement": "Audit"}})
    with RawSMTP(r.port(2525), source="127.0.0.41") as c:
        assert c.greeting().code == 220
        c.ehlo()
        replies = c.send_message("app@customer.test", ["dave@example.com"], message(test_id="audit"))
        assert [x.code for x in replies] == [250, 250, 354, 250]
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["audit"]
    assert 'msg="audit: would refuse"' in r.log()
    assert 'reason=anonymous_off_list' in r.log()
    assert r.metric("kuberelay_audit_would_refuse_total",
                    connector="default/hub-anonymous-only", stage="mail",
                    reason="anonymous_off_list") == 1


def test_audit_never_opens_an_anonymous_relay(relay, sink):
    r = relay(EXAMPLE, sink, connectors={"hub-anonymous-only": {"enforcement": "Audit"}})
    with RawSMTP(r.port(2525), source="127.0.0.41") as c:
        assert c.greeting().code == 220
        c.ehlo()
        assert c.cmd("MAIL FROM:<app@customer.test>").code == 250
        assert c.cmd("RCPT TO:<victim@elsewhere.test>").status == "550 5.7.54"
    assert sink.wait_for(0) == []

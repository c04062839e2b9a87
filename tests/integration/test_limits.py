"""ReceiveConnector limits: connections (total, per source), inactivity and session timeouts,
protocol errors, recipients, message size (SIZE= and DATA), message rate, hop count, command
line length, and the tarpit before 5xx replies."""

import time

import pytest

from relaytest import RawSMTP, client, message, quit_quietly, transaction

QUICKSTART = "quickstart"          # anonymous relay for 127.0.0.0/8, drop directory
RELAY = "003-anonymous-relay-ip-restricted"  # 127.0.0.17 relays through the smtp-sink



def greet(port, source="127.0.0.1") -> RawSMTP:
    c = RawSMTP(port, source=source)
    return c


def test_max_inbound_connection(relay):
    r = relay(QUICKSTART, connectors={"quickstart": {"limits": {"maxInboundConnection": 2, "maxInboundConnectionPerSource": 2}}})
    a, b = greet(r.port()), greet(r.port(), source="127.0.0.2")
    try:
        assert a.greeting().code == 220 and b.greeting().code == 220
        with greet(r.port(), source="127.0.0.3") as c:
            assert c.greeting().status == "421 4.3.2"
            assert c.closed_by_peer(3)
        a.cmd("QUIT")
        assert a.closed_by_peer(3)
        deadline = time.monotonic() + 3
        while True:  # the slot is released once the relay has seen the close
            with greet(r.port(), source="127.0.0.4") as d:
                g = d.greeting()
                if g.code == 220 or time.monotonic() > deadline:
                    break
            time.sleep(0.1)
        assert g.code == 220
    finally:
        a.close()
        b.close()
    m = r.metrics()
    assert m.value("kuberelay_connections_total", connector="default/quickstart", result="limit_total") >= 1


def test_max_inbound_connection_per_source(relay):
    r = relay(QUICKSTART, connectors={"quickstart": {"limits": {"maxInboundConnectionPerSource": 2}}})
    held = [greet(r.port()), greet(r.port())]
    try:
        for c in held:
            assert c.greeting().code == 220
        with greet(r.port()) as c:
            assert c.greeting().status == "421 4.3.2"
            assert c.closed_by_peer(3)
        with greet(r.port(), source="127.0.0.2") as c:
            assert c.greeting().code == 220
    finally:
        for c in held:
            c.close()
    m = r.metrics()
    assert m.value("kuberelay_connections_total", connector="default/quickstart", result="limit_per_source") == 1


def test_connection_inactivity_timeout(relay):
    r = relay(QUICKSTART, connectors={"quickstart": {"limits": {"connectionInactivityTimeout": "2s"}}})
    with greet(r.port()) as c:
        c.greeting()
        t = time.monotonic()
        c.ehlo()
        assert c.reply(timeout=6).status == "421 4.4.1"
        elapsed = time.monotonic() - t
        assert c.closed_by_peer(3)
    assert 1.5 <= elapsed <= 5, elapsed


def test_connection_timeout_for_busy_client(relay):
    r = relay(QUICKSTART, connectors={"quickstart": {"limits": {"connectionTimeout": "3s", "connectionInactivityTimeout": "2s"}}})
    with greet(r.port()) as c:
        c.greeting()
        t = time.monotonic()
        got = None
        while time.monotonic() - t < 7:
            reply = c.cmd("NOOP")
            if reply.code != 250:
                got = reply
                break
            time.sleep(0.3)
        assert got is not None and got.status == "421 4.4.1"
        assert 2.5 <= time.monotonic() - t <= 5


def test_max_protocol_errors(relay):
    r = relay(QUICKSTART, connectors={"quickstart": {"limits": {"maxProtocolErrors": 3}}})
    with greet(r.port()) as c:
        c.greeting()
        assert c.cmd("FOO").status == "500 5.3.3"
        assert c.cmd("RCPT TO:<a@example.com>").status == "503 5.5.2"  # send hello first
        assert c.cmd("NOOP").status == "250 2.0.0"  # not an error
        assert c.cmd("BAR").status == "500 5.3.3"
        assert c.reply().status == "421 4.7.0"
        assert c.closed_by_peer(3)


def test_line_longer_than_512_is_refused_and_session_continues(relay):
    r = relay(QUICKSTART)
    with greet(r.port()) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("NOOP " + "x" * 505).status == "250 2.0.0"  # 512 octets with CRLF
        assert c.cmd("NOOP " + "x" * 506).status == "500 5.5.2"  # 513
        assert c.cmd("MAIL FROM:<" + "a" * 600 + "@example.com>").status == "500 5.5.2"
        assert c.cmd("NOOP").status == "250 2.0.0"
        replies = c.send_message("app@example.com", ["someone@example.org"], message(test_id="after-long"))
        assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.6.0"]
    [f] = r.drop_files()
    assert "X-Test-Id: after-long" in f.read_text()


def test_max_recipients_per_message(relay, sink):
    r = relay(RELAY, sink, connectors={"anonymous-relay": {"limits": {"maxRecipientsPerMessage": 2}}})
    with greet(r.port(), source="127.0.0.17") as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<app@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<one@example.org>").status == "250 2.1.5"
        assert c.cmd("RCPT TO:<two@example.org>").status == "250 2.1.5"
        assert c.cmd("RCPT TO:<three@example.org>").status == "452 4.5.3"
        assert c.cmd("DATA").code == 354
        c.send(message(test_id="two-rcpts") + b".\r\n")
        assert c.reply().status == "250 2.0.0"
    [m] = sink.wait_for(1)
    assert m.rcpts == ["one@example.org", "two@example.org"]


def test_max_message_size_declared_and_actual(relay, sink):
    r = relay(RELAY, sink, connectors={"anonymous-relay": {"limits": {"maxMessageSize": "100Ki"}}})
    c = client(r.port(), source="127.0.0.17")
    assert c.esmtp_features["size"] == str(100 * 1024)
    assert transaction(c, "app@example.com", ["someone@example.org"], mail_options=("SIZE=200000",)) == [
        "552 5.3.4"]
    big = message(test_id="too-big", body="y" * 70 + "\r\n") + (b"z" * 998 + b"\r\n") * 150
    assert transaction(c, "app@example.com", ["someone@example.org"], big) == [
        "250 2.1.0", "250 2.1.5", "552 5.3.4"]
    small = message(test_id="fits") + (b"z" * 998 + b"\r\n") * 50
    assert transaction(c, "app@example.com", ["someone@example.org"], small,
                       mail_options=(f"SIZE={len(small)}",)) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    msgs = sink.wait_for(1)
    assert [m.header("X-Test-Id") for m in msgs] == [["fits"]]


def test_message_rate_limit(relay, sink):
    r = relay(RELAY, sink, connectors={"anonymous-relay": {"limits": {"messageRateLimit": 3}}})
    c = client(r.port(), source="127.0.0.17")
    for i in range(3):
        assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id=f"rate-{i}")) == [
            "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["451 4.7.0"]
    quit_quietly(c)
    c = client(r.port(), source="127.0.0.17")  # a new session does not reset the window
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["451 4.7.0"]
    quit_quietly(c)
    c = client(r.port(), source="127.0.0.18")  # another source has its own budget
    assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="other")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    msgs = sink.wait_for(4)
    assert sorted(m.header("X-Test-Id")[0] for m in msgs) == ["other", "rate-0", "rate-1", "rate-2"]


def test_max_hop_count(relay, sink):
    r = relay(RELAY, sink, connectors={"anonymous-relay": {"limits": {"maxHopCount": 3}}})

    def with_hops(n, test_id):
        hops = "".join(f"Received: from hop{i}.example by hop{i + 1}.example; Mon, 1 Jan 2024 00:00:0{i} +0000\r\n"
                       for i in range(n))
        return hops.encode() + message(test_id=test_id)

    c = client(r.port(), source="127.0.0.17")
    assert transaction(c, "app@example.com", ["someone@example.org"], with_hops(4, "loop")) == [
        "250 2.1.0", "250 2.1.5", "554 5.4.6"]
    assert transaction(c, "app@example.com", ["someone@example.org"], with_hops(3, "three")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["three"]
    assert len(m.header("Received")) == 4  # three hops and the relay's own


def test_tarpit_before_5xx(relay):
    r = relay(QUICKSTART, fast=False, connectors={"quickstart": {"limits": {"tarpitInterval": "300ms"}}})
    with greet(r.port()) as c:
        c.greeting()
        t = time.monotonic()
        assert c.cmd("EHLO client.test").code == 250
        ok = time.monotonic() - t
        t = time.monotonic()
        assert c.cmd("FOO").status == "500 5.3.3"
        refused = time.monotonic() - t
    assert ok < 0.25, ok
    assert 0.28 <= refused < 2, refused

"""Seed 003 ("How to Allow Anonymous Relay on a Receive Connector"): strategy 1 (anonymous +
Accept-Any-Recipient, 127.0.0.16-23) relays but keeps the 1 MiB limit; strategy 2
(ExternalAuthoritative, 127.0.0.24/29) relays as any sender and bypasses it; everybody else
(internet-default) may not relay. examples/003-anonymous-relay-ip-restricted/README.md."""

from relaytest import RawSMTP, client, curl_smtp, message, quit_quietly, received_by_relay, statuses, transaction

EXAMPLE = "003-anonymous-relay-ip-restricted"
MIB = 1024 * 1024


def big_message(size: int, test_id: str) -> bytes:
    line = b"x" * 998 + b"\r\n"
    head = message(subject="big", body="", test_id=test_id)
    return head + line * (size // len(line) + 1)


def test_strategy1_relays_curl(relay, sink):
    r = relay(EXAMPLE, sink)
    code, replies, err = curl_smtp(f"smtp://127.0.0.1:{r.port(2525)}", "app@example.com",
                                   ["someone@example.org"], message(test_id="s1"), source="127.0.0.17")
    assert code == 0, err
    assert statuses(replies)[-4:] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"], err
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == ("app@example.com", ["someone@example.org"])
    rcv = received_by_relay(m)
    assert "([127.0.0.17])" in rcv and "connector default/anonymous-relay" in rcv and "with ESMTP;" in rcv


def test_strategy1_enforces_size_limit(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2525), source="127.0.0.17")
    assert c.esmtp_features["size"] == str(MIB)
    # declared with SIZE=
    assert transaction(c, "app@example.com", ["someone@example.org"],
                       mail_options=(f"SIZE={2 * MIB}",)) == ["552 5.3.4"]
    # not declared: refused at the end of the data
    got = transaction(c, "app@example.com", ["someone@example.org"], big_message(2 * MIB, "s1-big"))
    assert got == ["250 2.1.0", "250 2.1.5", "552 5.3.4"]
    # the session is still usable and a small message passes
    assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="s1-small")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    msgs = sink.wait_for(1)
    assert [m.header("X-Test-Id") for m in msgs] == [["s1-small"]]


def test_strategy2_relays_any_sender_and_bypasses_size(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(2525), source="127.0.0.25")
    assert c.esmtp_features["size"] == ""  # SIZE without a limit: Bypass-Message-Size-Limit
    body = big_message(2 * MIB, "s2-big")
    got = transaction(c, "someone@partner.example.org", ["someone@example.org"], body,
                      mail_options=(f"SIZE={len(body)}",))
    assert got == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts) == ("someone@partner.example.org", ["someone@example.org"])
    assert m.header("X-Test-Id") == ["s2-big"]
    assert m.body.count("x" * 998 + "\n") == 2 * MIB // 1000 + 1  # every line arrived
    assert "connector default/externally-secured-relay" in received_by_relay(m)


def test_others_deliver_locally_but_cannot_relay(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(2525), source="127.0.0.1") as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<app@example.net>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.org>").status == "550 5.7.54"
        assert c.cmd("RCPT TO:<someone@example.com>").status == "250 2.1.5"
        assert c.cmd("DATA").code == 354
        c.send(message(test_id="default") + b".\r\n")
        assert c.reply().status == "250 2.0.0"
    [m] = sink.wait_for(1)
    assert m.rcpts == ["someone@example.com"]
    assert "connector default/internet-default" in received_by_relay(m)


def test_off_range_neighbour_is_not_a_relay(relay, sink):
    # 127.0.0.23 is the last address of strategy 1; 127.0.0.32 is outside both relay ranges.
    r = relay(EXAMPLE, sink)
    c = client(r.port(2525), source="127.0.0.32")
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["250 2.1.0", "550 5.7.54"]
    quit_quietly(c)
    c = client(r.port(2525), source="127.0.0.23")
    assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="edge")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["edge"]

"""Forwarding in line: the client's 250 comes only after the next hop's. A next hop that is down
or refuses gives the client 4xx/5xx and nothing is acknowledged; content (dot-stuffing) arrives
intact; SMTP smuggling sequences are refused before anything is committed; the drop directory
writes the envelope and the content."""

import re
import time

import pytest

from relaytest import RawSMTP, Sink, client, message, quit_quietly, received_by_relay, transaction

EXAMPLE = "003-anonymous-relay-ip-restricted"
SRC = "127.0.0.17"  # anonymous-relay: may relay


# Regression: g++ 12 miscompiled 'co_return co_await' / 'x ? co_await a : b' in the forwarder
# (fixed in 4206c4a); the relay died on its first delivery to a smarthost.
def test_smarthost_forwarding_keeps_the_relay_alive(relay, tmp_path):
    s = Sink(tmp_path)
    try:
        r = relay(EXAMPLE, s)
        for session in range(2):
            c = client(r.port(), source=SRC)
            for i in range(2):
                assert transaction(c, "app@example.com", ["someone@example.org"],
                                   message(test_id=f"alive-{session}-{i}")) == ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
            quit_quietly(c)
        time.sleep(0.3)
        assert r.alive(), r.log()[-2000:]
        assert sorted(m.header("X-Test-Id")[0] for m in s.wait_for(4)) == [
            "alive-0-0", "alive-0-1", "alive-1-0", "alive-1-1"]
    finally:
        s.stop()


def test_next_hop_down_gives_451_and_a_retry_delivers_once(relay, tmp_path):
    r = relay(EXAMPLE, None)  # the smarthost port has no listener
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["451 4.4.1"]
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["451 4.4.1"]
    assert c.noop()[0] == 250  # the session goes on
    # the next hop comes back on the same port: the client's retry is delivered exactly once
    s = Sink(tmp_path, port=r.smarthost_port)
    try:
        assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="retry")) == [
            "250 2.1.0", "250 2.1.5", "250 2.0.0"]
        quit_quietly(c)
        [m] = s.wait_for(1)
        assert m.header("X-Test-Id") == ["retry"]
    finally:
        s.stop()
    assert r.metric("kuberelay_forward_errors_total", kind="connect") >= 2


def test_next_hop_hard_reject_of_recipient(relay, sink_factory):
    s = sink_factory(reject_hard="RCPT")
    r = relay(EXAMPLE, s)
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["250 2.1.0", "500 5.3.0"]
    code, _ = c.docmd("DATA")
    assert code == 503  # no recipient was accepted
    quit_quietly(c)
    s.assert_empty()


def test_next_hop_soft_reject_of_sender(relay, sink_factory):
    s = sink_factory(reject_soft="MAIL")
    r = relay(EXAMPLE, s)
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"]) == ["450 4.3.0"]
    quit_quietly(c)
    s.assert_empty()


def test_next_hop_refuses_the_content(relay, sink_factory):
    s = sink_factory(reject_hard=".")
    r = relay(EXAMPLE, s)
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"], message()) == [
        "250 2.1.0", "250 2.1.5", "500 5.3.0"]
    assert c.noop()[0] == 250
    quit_quietly(c)


def test_next_hop_closes_during_the_transaction(relay, sink_factory):
    s = sink_factory(disconnect_421="DATA")
    r = relay(EXAMPLE, s)
    c = client(r.port(), source=SRC)
    got = transaction(c, "app@example.com", ["someone@example.org"], message())
    assert got[:2] == ["250 2.1.0", "250 2.1.5"]
    assert got[2].startswith("4"), got  # a temporary failure: the client keeps the message
    quit_quietly(c)
    s.assert_empty()


def test_next_hop_stalls_past_the_timeout(relay, sink_factory):
    s = sink_factory(data_delay=4)
    r = relay(EXAMPLE, s, next_hop_timeout=1)
    c = client(r.port(), source=SRC, timeout=15)
    t = time.monotonic()
    got = transaction(c, "app@example.com", ["someone@example.org"], message())
    assert got == ["250 2.1.0", "250 2.1.5", "451 4.4.2"]
    assert time.monotonic() - t < 3.5
    quit_quietly(c)
    s.assert_empty(settle=1)


def test_dot_stuffing_is_preserved_end_to_end(relay, sink):
    r = relay(EXAMPLE, sink)
    body = ("first\r\n.hidden line\r\n..two dots\r\n.\r\n. space\r\nlast\r\n")
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"], message(body=body, test_id="dots")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    # smtp-sink removes one leading dot per line: the relay stuffed every such line again
    # (an unstuffed "." line would even have ended the message at the next hop)
    assert m.body == "first\n.hidden line\n..two dots\n.\n. space\nlast\n"


def test_raw_client_dot_stuffing(relay, sink):
    r = relay(EXAMPLE, sink)
    with RawSMTP(r.port(), source=SRC) as c:
        c.greeting()
        c.ehlo()
        replies = c.send_message("app@example.com", ["someone@example.org"],
                                 message(body=".leading\r\nplain\r\n", test_id="raw-dots"))
        assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
    [m] = sink.wait_for(1)
    assert m.body == ".leading\nplain\n"


SMUGGLING = {
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
    "cr-dot-crlf": b"\r.\r\n",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
}


@pytest.mark.parametrize("sequence", list(SMUGGLING.values()), ids=list(SMUGGLING))
def test_smtp_smuggling_is_refused(relay, sink, sequence):
    r = relay(EXAMPLE, sink)
    smuggled = (b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
                b"Subject: smuggled\r\n\r\nsmuggled body\r\n")
    content = b"Subject: carrier\r\n\r\ncarrier body" + sequence + smuggled
    with RawSMTP(r.port(), source=SRC) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<app@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.org>").status == "250 2.1.5"
        assert c.cmd("DATA").code == 354
        c.send(content + b".\r\n")
        assert c.reply().status == "550 5.6.11"
        assert c.pending_bytes(0.5) == b"", "replies to smuggled commands"
        assert c.cmd("RCPT TO:<someone@example.org>").status == "503 5.5.1"  # no transaction left
        assert c.cmd("QUIT").status == "221 2.0.0"
    sink.assert_empty()


def test_drop_directory_writes_envelope_and_content(relay):
    r = relay("quickstart")
    c = client(r.port(), source="127.0.0.9")
    assert transaction(c, "app@example.com", ["someone@example.org", "someone@example.com"],
                       message(body=".dotted\r\nend\r\n", test_id="drop")) == [
        "250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.6.0"]
    assert transaction(c, "", ["postmaster"], message(test_id="bounce")) == [
        "250 2.1.0", "250 2.1.5", "250 2.6.0"]
    quit_quietly(c)
    files = r.drop_files()
    assert len(files) == 2
    texts = sorted((f.read_bytes() for f in files), key=lambda t: b"X-Test-Id: bounce" in t)
    first = texts[0]
    assert first.startswith(b"X-Sender: app@example.com\r\nX-Receiver: someone@example.org\r\n"
                            b"X-Receiver: someone@example.com\r\nReceived: from client.test ([127.0.0.9]) by relay.test")
    assert b"connector default/quickstart" in first
    assert re.search(rb"\r\n\twith ESMTP; [^\r\n]+\r\nFrom: sender@example.com\r\n", first)
    assert first.endswith(b"\r\n\r\n.dotted\r\nend\r\n")
    assert texts[1].startswith(b"X-Sender: \r\nX-Receiver: postmaster\r\n")
    assert not list(r.drop_dir.glob(".tmp-*"))


def test_drop_directory_smuggling_leaves_nothing(relay):
    r = relay("quickstart")
    with RawSMTP(r.port()) as c:
        c.greeting()
        c.ehlo()
        c.cmd("MAIL FROM:<app@example.com>")
        c.cmd("RCPT TO:<someone@example.org>")
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<x@example.com>\r\n.\r\n")
        assert c.reply().status == "550 5.6.11"
    assert r.drop_files() == []
    assert list(r.drop_dir.iterdir()) == []


def test_second_smarthost_takes_over(relay, sink):
    from relaytest import free_port
    dead = free_port()

    def two_hops(files):
        for docs in files.values():
            for d in docs:
                if d.get("kind") == "ReceiveConnector":
                    d["spec"]["forwarding"]["smarthosts"] = [f"127.0.0.1:{dead}", f"127.0.0.1:{sink.port}"]

    r = relay(EXAMPLE, sink, edit=two_hops)
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="second-hop")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["second-hop"]
    assert r.metric("kuberelay_forward_errors_total", smarthost=f"127.0.0.1:{dead}", kind="connect") == 1


def test_8bitmime_content_arrives_intact(relay, sink):
    r = relay(EXAMPLE, sink)
    body = "Grüße aus Köln – ça va?\r\n".encode()
    with RawSMTP(r.port(), source=SRC) as c:
        c.greeting()
        assert "8BITMIME" in c.ehlo().lines
        assert c.cmd("MAIL FROM:<app@example.com> BODY=8BITMIME").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.org>").status == "250 2.1.5"
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + b".\r\n")
        assert c.reply().status == "250 2.0.0"
    [m] = sink.wait_for(1)
    assert "BODY=8BITMIME" in m.mail_args
    assert m.body == "Grüße aus Köln – ça va?\n"

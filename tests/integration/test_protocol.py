"""ESMTP details end to end: PIPELINING, CHUNKING (BDAT), RSET, the null sender, header size,
commands without a transaction, a client that vanishes mid-DATA, smuggling after the first
64 KiB were streamed to the next hop, and slots released after a failed TLS handshake."""

import socket
import time

from relaytest import RawSMTP, client, message, quit_quietly, transaction

EXAMPLE = "003-anonymous-relay-ip-restricted"
SRC = "127.0.0.17"


def session(r, source=SRC) -> RawSMTP:
    c = RawSMTP(r.port(), source=source)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    return c


def test_pipelined_transaction(relay, sink):
    r = relay(EXAMPLE, sink)
    with session(r) as c:
        c.send(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<one@example.org>\r\nRCPT TO:<bad@@example.org>\r\n"
               b"RCPT TO:<two@example.org>\r\nDATA\r\n")
        got = [c.reply().status for _ in range(5)]
        assert got == ["250 2.1.0", "250 2.1.5", "501 5.1.3", "250 2.1.5", "354"]
        c.send(message(test_id="pipelined") + b".\r\nNOOP\r\nQUIT\r\n")
        assert [c.reply().status for _ in range(3)] == ["250 2.0.0", "250 2.0.0", "221 2.0.0"]
    [m] = sink.wait_for(1)
    assert m.rcpts == ["one@example.org", "two@example.org"]


def test_bdat_chunks(relay, sink):
    r = relay(EXAMPLE, sink)
    first = b"Subject: chunked\r\nX-Test-Id: bdat\r\n\r\n.starts with a dot\r\n"
    last = b"second chunk\r\n"
    with session(r) as c:
        assert c.cmd("MAIL FROM:<app@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.org>").status == "250 2.1.5"
        c.send(f"BDAT {len(first)}\r\n".encode() + first)
        assert c.reply().status == "250 2.0.0"
        c.send(f"BDAT {len(last)} LAST\r\n".encode() + last)
        assert c.reply().status == "250 2.0.0"
        assert c.cmd("DATA").status == "503 5.5.1"  # the transaction is over
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["bdat"]
    assert m.body == ".starts with a dot\nsecond chunk\n"


def test_rset_abandons_the_transaction_at_the_next_hop(relay, sink):
    r = relay(EXAMPLE, sink)
    c = client(r.port(), source=SRC)
    assert c.mail("first@example.com")[0] == 250
    assert c.rcpt("someone@example.org")[0] == 250
    assert c.rset() == (250, b"2.0.0 Resetting")
    assert transaction(c, "", ["postmaster"], message(test_id="second")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert (m.mail_from, m.rcpts, m.header("X-Test-Id")) == ("", ["postmaster"], ["second"])


def test_header_too_large(relay, sink):
    r = relay(EXAMPLE, sink, connectors={"anonymous-relay": {"limits": {"maxHeaderSize": "1Ki"}}})
    c = client(r.port(), source=SRC)
    big = message(headers={f"X-Filler-{i}": "f" * 60 for i in range(20)})
    assert transaction(c, "app@example.com", ["someone@example.org"], big) == [
        "250 2.1.0", "250 2.1.5", "552 5.3.4"]
    assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="small-header")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["small-header"]


def test_simple_commands(relay):
    r = relay("quickstart")
    with session(r, source="127.0.0.1") as c:
        assert c.cmd("STARTTLS").status == "454 4.7.0"  # not offered here
        assert c.cmd("AUTH PLAIN").status == "504 5.7.4"
        assert c.cmd("VRFY someone").status == "252 2.5.2"
        assert c.cmd("HELP").code == 214
        assert c.cmd("RSET extra").status == "501 5.5.4"
        assert c.cmd("DATA").status == "503 5.5.1"
        assert c.cmd("MAIL FROM:<a@example.com>").status == "250 2.1.0"
        assert c.cmd("MAIL FROM:<b@example.com>").status == "503 5.5.1"
        assert c.cmd("QUIT").status == "221 2.0.0"
        assert c.closed_by_peer(3)


def test_client_vanishing_mid_data_delivers_nothing(relay, sink):
    r = relay(EXAMPLE, sink)
    c = session(r)
    c.cmd("MAIL FROM:<app@example.com>")
    c.cmd("RCPT TO:<someone@example.org>")
    assert c.cmd("DATA").code == 354
    c.send(message(test_id="vanished") + b"z" * 100_000 + b"\r\n")  # more than one 64 KiB flush
    c.close()
    sink.assert_empty(settle=1.0)
    # the relay is fine and the next session delivers
    c = client(r.port(), source=SRC)
    assert transaction(c, "app@example.com", ["someone@example.org"], message(test_id="next")) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    assert [m.header("X-Test-Id") for m in sink.wait_for(1)] == [["next"]]


def test_smuggling_after_streaming_started_delivers_nothing(relay, sink):
    r = relay(EXAMPLE, sink)
    with session(r) as c:
        c.cmd("MAIL FROM:<app@example.com>")
        c.cmd("RCPT TO:<someone@example.org>")
        assert c.cmd("DATA").code == 354
        c.send(message(test_id="late-smuggle") + (b"y" * 998 + b"\r\n") * 200 + b"tail\n.\nQUIT\r\n.\r\n")
        assert c.reply().status == "550 5.6.11"
    sink.assert_empty(settle=1.0)


def test_failed_tls_handshake_releases_the_connection_slot(relay, sink):
    r = relay(EXAMPLE, sink, connectors={"internet-default": {"limits": {"maxInboundConnection": 1,
                                                                         "maxInboundConnectionPerSource": 1}}})
    for _ in range(3):
        c = session(r, source="127.0.0.1")
        assert c.cmd("STARTTLS").status == "220 2.0.0"
        c.send(b"this is not a TLS client hello\r\n" * 4)
        assert c.closed_by_peer(5)
        c.close()
    deadline = time.monotonic() + 3
    while True:
        with RawSMTP(r.port(), source="127.0.0.1") as c:
            g = c.greeting()
        if g.code == 220 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert g.code == 220, g


def test_idle_admin_client_does_not_block_smtp(relay):
    r = relay("quickstart")
    idle = socket.create_connection(("127.0.0.1", r.admin_port), timeout=5)
    try:
        with session(r, source="127.0.0.1") as c:
            assert c.cmd("NOOP").status == "250 2.0.0"
    finally:
        idle.close()

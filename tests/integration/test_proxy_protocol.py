"""PROXY protocol v1/v2 from a trusted load balancer (127.0.0.1): the relay decides on the
client address in the header (connector selection, relay right, Received header); garbage from
a trusted peer gets 421 4.7.0; a header from an untrusted peer gets 554 5.7.1 and the close."""

import socket
import struct
import time

from relaytest import RawSMTP, message, received_by_relay

EXAMPLE = "003-anonymous-relay-ip-restricted"
TRUSTED = {"proxyProtocol": {"trustedRanges": ["127.0.0.1"]}}


def v1(src: str, dst: str = "127.0.0.1", sport: int = 40000, dport: int = 25) -> bytes:
    return f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str, dst: str = "127.0.0.1", sport: int = 40000, dport: int = 25) -> bytes:
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr


def test_v1_header_client_address_selects_relay_connector(relay, sink):
    r = relay(EXAMPLE, sink, all_connectors=TRUSTED)
    with RawSMTP(r.port(), source="127.0.0.1", preamble=v1("127.0.0.17")) as c:
        assert c.greeting().code == 220
        ehlo = c.ehlo()
        assert ehlo.lines[0] == "relay.test Hello [127.0.0.17]"
        assert "SIZE 1048576" in ehlo.lines  # anonymous-relay's limit
        replies = c.send_message("app@example.com", ["someone@example.org"], message(test_id="v1"))
        assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
    [m] = sink.wait_for(1)
    rcv = received_by_relay(m)
    assert "([127.0.0.17])" in rcv and "connector default/anonymous-relay" in rcv


def test_v1_header_for_an_outsider_is_refused_relay(relay, sink):
    r = relay(EXAMPLE, sink, all_connectors=TRUSTED)
    with RawSMTP(r.port(), source="127.0.0.1", preamble=v1("127.0.0.99")) as c:
        assert c.greeting().code == 220
        assert c.ehlo().lines[0] == "relay.test Hello [127.0.0.99]"
        assert c.cmd("MAIL FROM:<app@example.com>").status == "250 2.1.0"
        assert c.cmd("RCPT TO:<someone@example.org>").status == "550 5.7.54"
    sink.assert_empty()


def test_v2_header_selects_externally_secured_connector(relay, sink):
    r = relay(EXAMPLE, sink, all_connectors=TRUSTED)
    with RawSMTP(r.port(), source="127.0.0.1", preamble=v2("127.0.0.25")) as c:
        assert c.greeting().code == 220
        ehlo = c.ehlo()
        assert ehlo.lines[0] == "relay.test Hello [127.0.0.25]"
        assert "SIZE" in ehlo.lines  # bypasses the size limit: no number
        replies = c.send_message("anyone@partner.example.org", ["someone@example.org"], message(test_id="v2"))
        assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
    [m] = sink.wait_for(1)
    rcv = received_by_relay(m)
    assert "([127.0.0.25])" in rcv and "connector default/externally-secured-relay" in rcv


def test_header_split_across_packets_and_unknown(relay, sink):
    r = relay(EXAMPLE, sink, all_connectors=TRUSTED)
    c = RawSMTP(r.port(), source="127.0.0.1")
    with c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = v1("127.0.0.17")
        c.send(header[:4])
        time.sleep(0.1)
        c.send(header[4:])
        assert c.greeting().code == 220
        assert c.ehlo().lines[0] == "relay.test Hello [127.0.0.17]"
    # UNKNOWN: the connection's own address is used
    with RawSMTP(r.port(), source="127.0.0.1", preamble=b"PROXY UNKNOWN\r\n") as c:
        assert c.greeting().code == 220
        assert c.ehlo().lines[0] == "relay.test Hello [127.0.0.1]"


def test_trusted_peer_without_header_gets_421(relay, sink):
    r = relay(EXAMPLE, sink, all_connectors=TRUSTED)
    with RawSMTP(r.port(), source="127.0.0.1", preamble=b"EHLO not-a-proxy.test\r\n") as c:
        assert c.reply().status == "421 4.7.0"
        assert c.closed_by_peer(3)
    with RawSMTP(r.port(), source="127.0.0.1", preamble=b"PROXY TCP4 banana 127.0.0.1 1 25\r\n") as c:
        assert c.reply().status == "421 4.7.0"
        assert c.closed_by_peer(3)
    sink.assert_empty(settle=0)
    assert r.metric("kuberelay_connections_total", result="proxy_invalid") == 2


def test_untrusted_peer_sending_a_header_is_refused(relay, sink):
    r = relay(EXAMPLE, sink, all_connectors=TRUSTED)
    with RawSMTP(r.port(), source="127.0.0.2") as c:
        assert c.greeting().code == 220  # not a proxy: served directly
        c.send(v1("127.0.0.17"))
        assert c.reply().status == "554 5.7.1"
        assert c.closed_by_peer(3)
    with RawSMTP(r.port(), source="127.0.0.2", preamble=v2("127.0.0.17")) as c:
        assert c.greeting().code == 220
        assert c.reply().status == "554 5.7.1"
        assert c.closed_by_peer(3)
    # an untrusted client is still an ordinary client
    with RawSMTP(r.port(), source="127.0.0.17") as c:
        assert c.greeting().code == 220
        assert c.ehlo().lines[0] == "relay.test Hello [127.0.0.17]"
    assert r.metric("kuberelay_connections_total", result="proxy_refused") == 2


def test_without_proxy_protocol_a_header_is_refused(relay, sink):
    r = relay(EXAMPLE, sink)  # no proxyProtocol at all
    with RawSMTP(r.port(), source="127.0.0.1", preamble=v1("127.0.0.17")) as c:
        assert c.greeting().code == 220
        assert c.reply().status == "554 5.7.1"
        assert c.closed_by_peer(3)

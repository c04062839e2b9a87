"""The next-hop connection pool (issue "Relay forwarding"): between transactions a next-hop session
goes back to a per-smarthost pool, so clients that send one message per connection do not pay
connect + EHLO (+ STARTTLS + AUTH) at the next hop every time. A pooled session is only reused
while it is healthy: idle sessions expire, a session the next hop closed is replaced, a session
left inside a transaction is RSET first, and none of it changes what the next hop receives."""

import socket
import threading
import time

from relaytest import RawSMTP, Sink, client, message, quit_quietly, transaction

EXAMPLE = "003-anonymous-relay-ip-restricted"
SRC = "127.0.0.17"  # anonymous-relay: may relay
OK = ["250 2.1.0", "250 2.1.5", "250 2.0.0"]


def upstream(r, **labels):
    m = r.metrics()
    return {
        "new": m.value("kuberelay_upstream_transactions_total", connection="new", **labels),
        "reused": m.value("kuberelay_upstream_transactions_total", connection="reused", **labels),
        "active": m.value("kuberelay_upstream_connections", state="active", **labels),
        "idle": m.value("kuberelay_upstream_connections", state="idle", **labels),
    }


def send_one(r, test_id):
    c = client(r.port(), source=SRC)
    try:
        return transaction(c, "app@example.com", ["someone@example.org"], message(test_id=test_id))
    finally:
        quit_quietly(c)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_one_message_per_client_connection_reuses_one_next_hop_session(relay, sink):
    r = relay(EXAMPLE, sink)
    for i in range(5):
        assert send_one(r, f"pool-{i}") == OK
    got = sink.wait_for(5)
    assert sorted(m.header("X-Test-Id")[0] for m in got) == [f"pool-{i}" for i in range(5)]
    smarthost = f"127.0.0.1:{sink.port}"
    assert upstream(r, smarthost=smarthost) == {"new": 1, "reused": 4, "active": 0, "idle": 1}


def test_concurrent_clients_get_their_own_next_hop_sessions(relay, sink):
    r = relay(EXAMPLE, sink)
    a, b = client(r.port(), source=SRC), client(r.port(), source="127.0.0.18")
    try:
        assert a.mail("app@example.com")[0] == 250
        assert b.mail("app@example.com")[0] == 250
        assert upstream(r)["active"] == 2
        for c, tid in ((a, "a"), (b, "b")):
            assert c.rcpt("someone@example.org")[0] == 250
            assert c.data(message(test_id=tid))[0] == 250
    finally:
        quit_quietly(a)
        quit_quietly(b)
    assert sorted(m.header("X-Test-Id")[0] for m in sink.wait_for(2)) == ["a", "b"]
    assert wait_for(lambda: upstream(r)["idle"] == 2 and upstream(r)["active"] == 0)


def test_a_session_left_inside_a_transaction_is_reset_before_reuse(relay, sink):
    r = relay(EXAMPLE, sink)
    assert send_one(r, "first") == OK
    # MAIL and RCPT reach the next hop on the pooled session, then the client vanishes.
    with RawSMTP(r.port(), source=SRC) as c:
        c.greeting()
        c.ehlo()
        assert c.cmd("MAIL FROM:<ghost@example.com>").code == 250
        assert c.cmd("RCPT TO:<ghost-recipient@example.org>").code == 250
    assert wait_for(lambda: upstream(r)["idle"] == 1)
    assert send_one(r, "second") == OK
    got = sink.wait_for(2)
    second = [m for m in got if m.header("X-Test-Id") == ["second"]]
    assert len(second) == 1 and len(got) == 2
    # The abandoned envelope did not leak into the next message.
    assert second[0].mail_from == "app@example.com"
    assert second[0].rcpts == ["someone@example.org"]
    assert upstream(r)["new"] == 1  # the same session, RSET and reused


def test_idle_sessions_expire(relay, sink):
    r = relay(EXAMPLE, sink, extra_args=("--next-hop-idle-timeout", "0.4"))
    assert send_one(r, "before") == OK
    assert upstream(r)["idle"] == 1
    assert wait_for(lambda: upstream(r)["idle"] == 0, timeout=3.0)
    assert send_one(r, "after") == OK
    assert upstream(r)["new"] == 2 and upstream(r)["reused"] == 0
    assert len(sink.wait_for(2)) == 2


def test_a_session_the_next_hop_closed_is_replaced(relay, tmp_path):
    first = Sink(tmp_path)
    port = first.port
    try:
        r = relay(EXAMPLE, first)
        assert send_one(r, "one") == OK
        assert len(first.wait_for(1)) == 1
    finally:
        first.stop()  # the pooled session's peer is gone
    second = Sink(tmp_path, port=port)
    try:
        assert send_one(r, "two") == OK  # not a 4xx: the dead session was not used
        [m] = second.wait_for(1)
        assert m.header("X-Test-Id") == ["two"]
        assert upstream(r)["new"] == 2 and upstream(r)["reused"] == 0
    finally:
        second.stop()


def test_pooling_can_be_turned_off(relay, sink):
    r = relay(EXAMPLE, sink, extra_args=("--next-hop-idle-timeout", "0"))
    for i in range(2):
        assert send_one(r, f"nopool-{i}") == OK
    assert upstream(r) == {"new": 2, "reused": 0, "active": 0, "idle": 0}
    assert len(sink.wait_for(2)) == 2


def test_drain_sends_quit_to_pooled_sessions(relay, tmp_path):
    """A plain TCP next hop that records what it is sent: after the message, SIGTERM must end the
    pooled session with QUIT (not a bare close) before the relay exits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)
    seen = []

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(10)
        f = conn.makefile("rwb", buffering=0)
        f.write(b"220 fake.test ESMTP\r\n")
        in_data = False
        for line in f:
            seen.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    f.write(b"250 2.0.0 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                f.write(b"250-fake.test\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                in_data = True
                f.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                f.write(b"221 2.0.0 bye\r\n")
                break
            else:
                f.write(b"250 2.0.0 ok\r\n")
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    class FakeHop:
        port = listener.getsockname()[1]

    try:
        r = relay(EXAMPLE, FakeHop(), drain_timeout=5)
        assert [s[:3] for s in send_one(r, "drain")] == ["250", "250", "250"]
        r.proc.terminate()
        assert r.proc.wait(timeout=10) == 0
        t.join(timeout=5)
        assert seen[-1] == b"QUIT\r\n"
        assert b"X-Test-Id: drain\r\n" in seen
    finally:
        listener.close()

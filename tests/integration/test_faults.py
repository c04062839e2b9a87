"""The relay itself dies under load (SIGKILL) or is stopped (SIGTERM) while 20 clients send
1,000 messages in all. Whatever happens, every message a client got 250 for arrived at the next
hop exactly once; every other message got a 4xx/5xx or a broken connection, which SMTP clients
retry. (Issue "Relay forwarding", Done when.)"""

import os
import signal
import socket
import subprocess
import threading
import time

from relaytest import ConnectionClosed, RawSMTP, message, relay_binary, stop_process

EXAMPLE = "003-anonymous-relay-ip-restricted"
CLIENTS = 20
PER_CLIENT = 50


def load(port: int, acked: list, refused: list, broken: list, stop_at: float) -> None:
    """One client: its messages in sequence, reconnecting after any failure (no retry of the
    failed message itself: it is counted)."""
    def worker(n: int) -> None:
        i = 0
        conn = None
        while i < PER_CLIENT and time.monotonic() < stop_at:
            msg_id = f"c{n}-m{i}"
            i += 1
            try:
                if conn is None:
                    conn = RawSMTP(port, source=f"127.0.0.{16 + n % 8}", timeout=10)
                    if conn.greeting().code != 220:
                        raise ConnectionError("no greeting")
                    conn.ehlo()
                replies = conn.send_message("app@example.com", ["someone@customer.test"],
                                            message(test_id=msg_id))
                (acked if replies[-1].code == 250 and len(replies) >= 4 else refused).append(msg_id)
                if replies[-1].code >= 400:
                    conn.close()
                    conn = None
            except (OSError, ConnectionError, EOFError, ValueError, ConnectionClosed):
                broken.append(msg_id)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


def restart(r) -> subprocess.Popen:
    """A fresh relay process on the same manifests and ports (as a pod's replacement would)."""
    log = open(r.log_path, "ab")
    proc = subprocess.Popen([str(relay_binary()), "--manifests", str(r.dir), "--admin", "127.0.0.1:0",
                             "--hostname", "relay.test", "--drain-timeout", "5"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", r.port(2525)), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("the restarted relay did not listen")


def check(sink, acked, refused, broken):
    delivered = sink.wait_for(len(acked), timeout=20)
    ids = [m.header("X-Test-Id")[0] for m in delivered if m.header("X-Test-Id")]
    counts = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    lost = [i for i in acked if counts.get(i, 0) == 0]
    duplicated = [i for i in acked if counts.get(i, 0) > 1]
    assert not lost, f"{len(lost)} acknowledged messages never reached the next hop: {lost[:10]}"
    assert not duplicated, f"acknowledged messages delivered twice: {duplicated[:10]}"
    total = len(acked) + len(refused) + len(broken)
    assert total == CLIENTS * PER_CLIENT, (len(acked), len(refused), len(broken))
    return len(ids)


def run_with_fault(relay, sink, sig: int):
    r = relay(EXAMPLE, sink, connectors={"anonymous-relay": {"limits": {
        "maxInboundConnectionPerSource": 100, "maxMessageSize": "10Mi"}}})
    acked, refused, broken = [], [], []
    threads = load(r.port(2525), acked, refused, broken, time.monotonic() + 120)
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acked) >= 300, "the load did not get going"
    os.kill(r.proc.pid, sig)
    if sig == signal.SIGTERM:
        r.proc.wait(timeout=15)  # drains: in-flight transactions finish, then it exits
    else:
        r.proc.wait(timeout=5)
    # The fixture stops the replacement by PID at the end (the killed one was deliberate).
    r.proc = restart(r)
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    arrived = check(sink, acked, refused, broken)
    assert len(acked) > 500, (len(acked), len(refused), len(broken))
    return len(acked), len(refused), len(broken), arrived


def test_sigkill_under_load_loses_no_acknowledged_message(relay, sink):
    acked, refused, broken, arrived = run_with_fault(relay, sink, signal.SIGKILL)
    print(f"SIGKILL: {acked} acknowledged, {refused} refused, {broken} broken; {arrived} arrived")


def test_sigterm_under_load_drains_without_loss(relay, sink):
    acked, refused, broken, arrived = run_with_fault(relay, sink, signal.SIGTERM)
    print(f"SIGTERM: {acked} acknowledged, {refused} refused, {broken} broken; {arrived} arrived")

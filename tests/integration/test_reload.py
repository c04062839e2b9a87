"""Hot reload in local mode: an edit under load changes the decision for new sessions only,
drops no session and loses or duplicates no message; a broken edit keeps the last good policy;
a bad object is quarantined without taking the others down; listeners follow the bindings;
SIGTERM drains."""

import os
import signal
import smtplib
import threading
import time
from dataclasses import dataclass, field

from relaytest import RawSMTP, client, message, quit_quietly, status, wait_listening

EXAMPLE = "003-anonymous-relay-ip-restricted"
ACCEPTED = ["250 2.1.0", "250 2.1.5", "250 2.0.0"]
REFUSED = ["250 2.1.0", "550 5.7.54"]


@dataclass
class SessionRecord:
    worker: int
    started: float              # before connect()
    connected: float = 0.0      # after the banner
    outcomes: list = field(default_factory=list)  # (test id, statuses)
    error: str = ""


def run_worker(port: int, worker: int, stop: threading.Event, sessions: list, lock: threading.Lock):
    n = 0
    while not stop.is_set():
        rec = SessionRecord(worker, time.monotonic())
        try:
            c = smtplib.SMTP("127.0.0.1", port, local_hostname=f"load{worker}.test",
                             source_address=("127.0.0.17", 0), timeout=15)
            rec.connected = time.monotonic()
            c.ehlo()
            for k in range(5):
                tid = f"w{worker}-s{n}-m{k}"
                out = [status(c.mail("app@example.com"))]
                if out[0].startswith("250"):
                    out.append(status(c.rcpt("someone@example.org")))
                    if out[-1].startswith("250"):
                        out.append(status(c.data(message(test_id=tid))))
                    else:
                        c.rset()
                rec.outcomes.append((tid, out))
                time.sleep(0.01)
            c.quit()
        except Exception as e:  # any connection error is a dropped session
            rec.error = repr(e)
        with lock:
            sessions.append(rec)
        n += 1


def test_reload_under_load(relay, sink):
    r = relay(EXAMPLE, sink)
    v0 = r.version()
    stop, lock, sessions = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=run_worker, args=(r.port(), i, stop, sessions, lock), daemon=True)
               for i in range(10)]
    for t in threads:
        t.start()

    def messages_done():
        with lock:
            return sum(len(s.outcomes) for s in sessions)

    try:
        deadline = time.monotonic() + 20
        while messages_done() < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert messages_done() >= 60, "the load did not get going"
        t_edit = time.monotonic()
        r.remove("senderpermission.yaml")  # anonymous-relay loses Accept-Any-Recipient
        v1 = r.wait_version_change(v0)
        t_applied = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                after = [s for s in sessions if s.started > t_applied]
                total = sum(len(s.outcomes) for s in sessions)
            if total >= 200 and len(after) >= 20:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert v1 != v0

    errors = [s.error for s in sessions if s.error]
    assert not errors, f"{len(errors)} sessions failed: {errors[:5]}"
    total = sum(len(s.outcomes) for s in sessions)
    assert total >= 200
    accepted_ids = set()
    for s in sessions:
        kinds = {tuple(o) for _, o in s.outcomes}
        assert kinds <= {tuple(ACCEPTED), tuple(REFUSED)}, kinds
        assert len(kinds) == 1, f"a session changed its decision midway: {s.outcomes}"
        if s.started > t_applied:
            assert kinds == {tuple(REFUSED)}, f"a session started after the reload relayed: {s}"
        if s.connected and s.connected < t_edit:
            assert kinds == {tuple(ACCEPTED)}, f"a session started before the edit was refused: {s}"
        if kinds == {tuple(ACCEPTED)}:
            accepted_ids.update(tid for tid, _ in s.outcomes)
    assert len(accepted_ids) >= 60
    msgs = sink.wait_for(len(accepted_ids), timeout=10)
    got = [m.header("X-Test-Id")[0] for m in msgs]
    assert len(got) == len(set(got)), "a message reached the next hop twice"
    assert set(got) == accepted_ids, (
        f"missing at the next hop: {sorted(accepted_ids - set(got))[:5]}, "
        f"not acknowledged but delivered: {sorted(set(got) - accepted_ids)[:5]}")
    m = r.metrics()
    assert m.value("kuberelay_policy_reloads_total", result="applied") == 2
    assert m.series("kuberelay_policy_version_info") == [({"version": v1}, 1.0)]


def test_broken_edit_keeps_the_last_good_policy(relay, sink):
    r = relay(EXAMPLE, sink)
    v0 = r.version()
    m0 = r.metrics()
    assert m0.value("kuberelay_policy_reloads_total", result="rejected") == 0
    original = (r.dir / "senderpermission.yaml").read_text()
    r.write_text("senderpermission.yaml", "apiVersion: smtp.kuberelay.io/v1alpha1\nkind: SenderPermission\n"
                                          "metadata: {name: broken\nspec: [unclosed\n")
    assert r.wait_log(r'msg="policy reload rejected', timeout=6), r.log()[-2000:]
    assert r.metric("kuberelay_policy_reloads_total", result="rejected") == 1
    assert r.version() == v0
    assert r.readyz()[0] == 200
    # the relay right is still in force for new sessions
    c = client(r.port(), source="127.0.0.17")
    assert c.mail("app@example.com")[0] == 250
    assert status(c.rcpt("someone@example.org")) == "250 2.1.5"
    quit_quietly(c)
    # repairing the file brings the same policy back (same version: nothing to apply)
    r.write_text("senderpermission.yaml", original)
    time.sleep(1.5)
    assert r.version() == v0
    m = r.metrics()
    assert m.value("kuberelay_policy_reloads_total", result="applied") == 1
    assert m.series("kuberelay_policy_version_info") == [({"version": v0}, 1.0)]


def test_bad_connector_is_quarantined_others_keep_working(relay, sink):
    r = relay(EXAMPLE, sink)
    v0 = r.version()
    docs = r.files["receiveconnectors.yaml"]
    for d in docs:
        if d["metadata"]["name"] == "anonymous-relay":
            d["spec"]["limits"]["maxRecipientsPerMessage"] = 0  # invalid: minimum 1
    r.write("receiveconnectors.yaml", docs)
    r.wait_version_change(v0)
    assert r.wait_log(r'msg="policy error" object="ReceiveConnector default/anonymous-relay"')
    # its clients are told to come back later instead of falling through to internet-default
    with RawSMTP(r.port(), source="127.0.0.17") as c:
        assert c.greeting().status == "421 4.3.5"
        assert c.closed_by_peer(3)
    # the other connectors are untouched
    c = client(r.port(), source="127.0.0.25")
    assert c.mail("anyone@example.net")[0] == 250
    assert status(c.rcpt("someone@example.org")) == "250 2.1.5"
    quit_quietly(c)
    assert r.metric("kuberelay_connections_total", connector="default/anonymous-relay",
                    result="connector_misconfigured") == 1


def test_listeners_follow_the_bindings(relay):
    r = relay("quickstart")
    old = r.port()
    v0 = r.version()
    docs = r.files["receiveconnector.yaml"]
    from relaytest import free_port
    new = free_port()
    docs[0]["spec"]["bindings"] = [f"0.0.0.0:{new}"]
    r.write("receiveconnector.yaml", docs)
    r.wait_version_change(v0)
    assert wait_listening([new], 5)
    with RawSMTP(new) as c:
        assert c.greeting().code == 220
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            RawSMTP(old, timeout=1).close()
        except ConnectionRefusedError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"port {old} still accepts connections after the binding moved")


def test_sigterm_drains_open_sessions(relay, sink):
    r = relay(EXAMPLE, sink, drain_timeout=10)
    c = client(r.port(), source="127.0.0.17")
    assert c.mail("app@example.com")[0] == 250
    os.kill(r.proc.pid, signal.SIGTERM)
    assert r.wait_log(r"msg=draining", timeout=5)
    assert r.readyz() == (503, "draining\n")  # taken out of the Service's endpoints
    # the listener is closed for new clients...
    deadline = time.monotonic() + 3
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            RawSMTP(r.port(), source="127.0.0.18", timeout=1).close()
            time.sleep(0.1)
        except (ConnectionRefusedError, OSError):
            refused = True
    assert refused
    # ...while the open session finishes its message
    assert status(c.rcpt("someone@example.org")) == "250 2.1.5"
    assert status(c.data(message(test_id="drain"))) == "250 2.0.0"
    c.quit()
    assert r.proc.wait(timeout=8) == 0
    [m] = sink.wait_for(1)
    assert m.header("X-Test-Id") == ["drain"]
    assert r.wait_log(r"msg=drained open_sessions=0", timeout=1)

"""/metrics, /healthz, /readyz after a few known sessions: every counter has the expected labels
and counts."""

import pytest

from relaytest import RawSMTP, client, message, quit_quietly, status, transaction

EXAMPLE = "004-ip-restriction-flag"
CONNECTOR = "default/hub-anonymous-only"
DAVE = ("dave@example.com", "Dave-Pass-004")


def play_sessions(r):
    # 1: anonymous, on the list: one local delivery, one refused relay
    c = client(r.port(), source="127.0.0.40")
    assert transaction(c, "app@example.net", ["someone@example.com", "someone@example.org"],
                       message(test_id="anon")) == ["250 2.1.0", "250 2.1.5", "550 5.7.54", "250 2.0.0"]
    quit_quietly(c)
    # 2: anonymous, off the list
    c = client(r.port(), source="127.0.0.1")
    assert transaction(c, "app@example.net", ["someone@example.com"]) == ["530 5.7.3"]
    quit_quietly(c)
    # 3: off the list, a wrong password, then dave, relaying
    with RawSMTP(r.port(), source="127.0.0.1") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert c.auth_plain(DAVE[0], "wrong").status == "535 5.7.3"
        assert c.auth_plain(*DAVE).status == "235 2.7.0"
        replies = c.send_message(DAVE[0], ["friend@example.org"], message(test_id="dave"))
        assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
        assert c.cmd("QUIT").status == "221 2.0.0"


def test_metrics_after_known_sessions(relay, sink):
    r = relay(EXAMPLE, sink)
    assert r.http_get("/healthz") == (200, "ok\n")
    version = r.version()
    assert version.startswith("sha256:") and len(version) == len("sha256:") + 16
    assert r.http_get("/nope")[0] == 404
    play_sessions(r)
    assert len(sink.wait_for(2)) == 2
    m = r.metrics()

    assert m.series("kuberelay_connections_total") == [({"connector": CONNECTOR, "result": "accepted"}, 3.0)]
    assert m.value("kuberelay_connections_active", connector=CONNECTOR) == 0

    auth = {(l["result"]): v for l, v in m.series("kuberelay_auth_decisions_total")}
    assert auth == {"success": 1.0, "bad_credentials": 1.0}
    assert all(l["connector"] == CONNECTOR and l["mechanism"] for l, _ in m.series("kuberelay_auth_decisions_total"))

    relay_decisions = {(l["decision"], l["reason"]): v for l, v in m.series("kuberelay_relay_decisions_total")}
    assert relay_decisions == {("accept", "accepted_domain"): 1.0, ("refuse", "relay_denied"): 1.0,
                               ("accept", "relay_right"): 1.0}

    sender_decisions = {(l["decision"], l["reason"]): v for l, v in m.series("kuberelay_sender_decisions_total")}
    assert sender_decisions == {("accept", "any_sender"): 1.0, ("refuse", "anonymous_off_list"): 1.0,
                                ("accept", "own_address"): 1.0}

    replies = {l["code"]: v for l, v in m.series("kuberelay_replies_total") if l["connector"] == CONNECTOR}
    assert replies["220"] == 4.0          # 3 banners + STARTTLS
    assert replies["530"] == 1.0
    assert replies["535"] == 1.0
    assert replies["550"] == 1.0
    assert replies["235"] == 1.0
    assert replies["354"] == 2.0
    assert replies["221"] == 3.0

    assert m.series("kuberelay_messages_total") == [({"connector": CONNECTOR, "result": "accepted"}, 2.0)]
    assert m.value("kuberelay_message_size_bytes_count") == 2
    assert m.value("kuberelay_forward_duration_seconds_count") == 2
    assert m.series("kuberelay_policy_version_info") == [({"version": version}, 1.0)]
    assert m.series("kuberelay_policy_reloads_total") == [({"result": "applied"}, 1.0)]


def test_metrics_follow_a_reload(relay, sink):
    r = relay(EXAMPLE, sink)
    v0 = r.version()
    docs = r.files["receiveconnector.yaml"]
    docs[0]["spec"]["remoteIPRanges"] = ["127.0.0.40", "127.0.0.41"]
    r.write("receiveconnector.yaml", docs)
    v1 = r.wait_version_change(v0)
    m = r.metrics()
    assert m.series("kuberelay_policy_version_info") == [({"version": v1}, 1.0)]
    assert m.value("kuberelay_policy_reloads_total", result="applied") == 2
    c = client(r.port(), source="127.0.0.41")  # on the new list
    assert transaction(c, "app@example.net", ["someone@example.com"], message()) == [
        "250 2.1.0", "250 2.1.5", "250 2.0.0"]
    quit_quietly(c)
    assert r.metric("kuberelay_sender_decisions_total", decision="accept", reason="any_sender") == 1


def test_refused_connections_are_counted(relay, sink):
    r = relay(f"{EXAMPLE}/all-clients", sink)
    for source in ("127.0.0.1", "127.0.0.2"):
        with RawSMTP(r.port(), source=source) as c:
            assert c.greeting().status == "554 5.7.1"
            assert c.closed_by_peer(3)
    m = r.metrics()
    assert m.value("kuberelay_connections_total", result="no_connector") == 2
    assert m.value("kuberelay_connections_total", result="accepted") == 0


def test_auth_decisions_by_mechanism(relay, sink):
    r = relay(EXAMPLE, sink)
    for mechanism in ("PLAIN", "LOGIN"):
        c = client(r.port(), starttls=True, login=DAVE, mechanism=mechanism)
        quit_quietly(c)
    m = r.metrics()
    assert m.value("kuberelay_auth_decisions_total", mechanism="PLAIN", result="success") == 1
    assert m.value("kuberelay_auth_decisions_total", mechanism="LOGIN", result="success") == 1


def test_idle_admin_client_does_not_block_probes(relay):
    import socket
    import time
    r = relay("quickstart")
    idle = socket.create_connection(("127.0.0.1", r.admin_port), timeout=5)
    try:
        t = time.monotonic()
        assert r.http_get("/healthz", timeout=7) == (200, "ok\n")
        assert time.monotonic() - t < 6.5
    finally:
        idle.close()

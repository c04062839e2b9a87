"""`kuberelay-policy explain` on the manifests, the relay's live /explain on the policy it
enforces, and a real SMTP session to that relay give the same answer for a table of sessions
(issue "Explain and audit")."""

import json
import os
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from relaytest import RawSMTP

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "004-ip-restriction-flag"

# (client, mail, rcpt) — anonymous sessions on the seed 004 connector
TABLE = [
    ("127.0.0.40", "app@customer.test", "dave@example.com"),        # on-list, accepted domain
    ("127.0.0.40", "app@customer.test", "someone@elsewhere.test"),  # on-list, relay refused
    ("127.0.0.41", "app@customer.test", "dave@example.com"),        # off-list: 530 5.7.3
    ("127.0.0.40", "app@customer.test", "x%elsewhere.test@example.com"),  # percent hack
]


def policy_tool() -> Path:
    build = Path(os.environ.get("KUBERELAY_BUILD", REPO / "build"))
    tool = build / "tools" / "kuberelay-policy"
    if not tool.exists():
        pytest.fail(f"{tool} is missing: build the project (or set KUBERELAY_BUILD)")
    return tool


def smtp_outcome(r, client, mail, rcpt):
    with RawSMTP(r.port(2525), source=client) as c:
        assert c.greeting().code == 220
        c.ehlo()
        m = c.cmd(f"MAIL FROM:<{mail}>")
        if m.code != 250:
            return False, m.status
        t = c.cmd(f"RCPT TO:<{rcpt}>")
        return t.code == 250, t.status


def final(explained):
    last = explained["stages"][-1]
    return explained["allowed"], " ".join(last["reply"].split(" ")[:2])


@pytest.mark.parametrize("client,mail,rcpt", TABLE)
def test_cli_live_and_real_session_agree(relay, sink, client, mail, rcpt):
    r = relay(EXAMPLE, sink)
    port = r.port(2525)
    cli = subprocess.run([str(policy_tool()), "explain", str(r.dir), "--from", client, "--to-port",
                          str(port), "--mail", mail, "--rcpt", rcpt, "--json"],
                         capture_output=True, timeout=20)
    assert cli.returncode in (0, 1), cli.stderr
    from_cli = json.loads(cli.stdout)
    query = urllib.parse.urlencode([("from", client), ("port", port), ("mail", mail), ("rcpt", rcpt)])
    with urllib.request.urlopen(f"http://127.0.0.1:{r.admin_port}/explain?{query}", timeout=5) as resp:
        live = json.loads(resp.read())
    assert live == from_cli  # same snapshot version, same stages, same traces
    assert cli.returncode == (0 if from_cli["allowed"] else 1)
    assert final(live) == smtp_outcome(r, client, mail, rcpt)


def test_live_explain_refuses_bad_questions(relay, sink):
    r = relay(EXAMPLE, sink)
    for query in ["", "from=127.0.0.1", "from=nonsense&port=25", "from=127.0.0.1&port=25&password=x"]:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{r.admin_port}/explain?{query}", timeout=5)
            raise AssertionError(f"/explain?{query} was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 400


def refusals(r, limit=None):
    path = "/refusals" + (f"?limit={limit}" if limit else "")
    with urllib.request.urlopen(f"http://127.0.0.1:{r.admin_port}{path}", timeout=5) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())["refusals"]


def test_recent_refusals_carry_their_decision_trace(relay, sink):
    """The admin port's /refusals: the last refused sessions, newest first, each explained
    against the snapshot that refused it; no password and no message content in it."""
    r = relay(EXAMPLE, sink)
    port = r.port(2525)
    assert refusals(r) == []
    # 1. anonymous, on-list, relay to a non-accepted domain: refused at RCPT
    assert smtp_outcome(r, "127.0.0.40", "app@customer.test", "someone@elsewhere.test")[0] is False
    # 2. anonymous, off-list: refused before MAIL FROM is accepted (5.7.3)
    assert smtp_outcome(r, "127.0.0.41", "app@customer.test", "dave@example.com")[0] is False
    # 3. authenticated from off-list with a wrong password (the password must never show up)
    with RawSMTP(port, source="127.0.0.41") as c:
        c.greeting()
        c.ehlo()
        assert c.starttls().code == 220
        c.ehlo()
        assert c.auth_plain("dave@example.com", "Wrong-Secret-Password").code == 535
    # 4. an accepted message: not a refusal
    with RawSMTP(port, source="127.0.0.40") as c:
        c.greeting()
        c.ehlo()
        assert c.send_message("app@customer.test", ["dave@example.com"],
                              b"Subject: confidential body\r\n\r\nTop-Secret-Content\r\n")[-1].code == 250

    got = refusals(r)
    assert [(x["stage"], x["reason"]) for x in got] == [
        ("auth", "bad_credentials"), ("mail", "anonymous_off_list"), ("rcpt", "relay_denied")]
    auth, off_list, relay_denied = got
    assert [x["client"] for x in got] == ["127.0.0.41", "127.0.0.41", "127.0.0.40"]
    assert all(x["connector"] == "default/hub-anonymous-only" and x["port"] == port for x in got)
    assert off_list["reply"].startswith("530 5.7.3")
    # The explanation replays what the policy saw and names the rule, like `explain` does.
    assert relay_denied["explain"]["allowed"] is False
    last = relay_denied["explain"]["stages"][-1]
    assert (last["stage"], last["input"], last["reason"]) == ("rcpt", "someone@elsewhere.test", "relay_denied")
    assert last["trace"], "a refusal is explained by its trace"
    assert off_list["explain"]["stages"][-1]["reason"] == "anonymous_off_list"
    assert off_list["explain"]["policyVersion"] == r.version()
    text = json.dumps(got)
    assert "Wrong-Secret-Password" not in text and "Top-Secret-Content" not in text
    assert len(refusals(r, limit=1)) == 1 and refusals(r, limit=1)[0]["stage"] == "auth"

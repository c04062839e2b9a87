"""A second kuberelay-relay as the next hop (drop-directory mode), reached with STARTTLS per
forwarding.tls (issue "Relay forwarding"): Opportunistic encrypts to a self-signed next hop,
Required refuses one whose certificate the system does not trust (4xx: the client keeps the
message), and what the client was told matches what the second relay wrote to disk."""

import types
from pathlib import Path

import yaml

from relaytest import RawSMTP, message

REPO = Path(__file__).resolve().parents[2]
TLS_SECRET = REPO / "examples" / "003-anonymous-relay-ip-restricted" / "secret-tls.yaml"


def add_tls(files):
    """The quickstart connector, offering STARTTLS with the examples' test certificate."""
    files["secret-tls.yaml"] = list(yaml.safe_load_all(TLS_SECRET.read_text()))
    for docs in files.values():
        for d in docs:
            if d.get("kind") == "ReceiveConnector":
                d["spec"]["authMechanisms"] = ["Tls"]
                d["spec"]["tls"] = {"secretName": "relay-tls"}


def chain(relay, tls_mode):
    last_hop = relay("quickstart", edit=add_tls)
    first_hop = relay("003-anonymous-relay-ip-restricted",
                      types.SimpleNamespace(port=last_hop.port(2525)),
                      connectors={"anonymous-relay": {"forwarding": {"tls": tls_mode}}})
    return first_hop, last_hop


def send(first_hop, test_id):
    with RawSMTP(first_hop.port(2525), source="127.0.0.17") as c:
        assert c.greeting().code == 220
        c.ehlo()
        return c.send_message("app@example.com", ["someone@customer.test"], message(test_id=test_id))


def test_opportunistic_tls_to_a_second_relay_in_drop_directory_mode(relay):
    first_hop, last_hop = chain(relay, "Opportunistic")
    replies = send(first_hop, "chain")
    assert [r.code for r in replies] == [250, 250, 354, 250]
    assert replies[-1].status == "250 2.6.0"  # the last hop's own reply, relayed
    [f] = last_hop.drop_files()
    text = f.read_bytes()
    assert b"X-Test-Id: chain" in text
    # The last hop's Received header: the first hop came in over TLS.
    assert b"with ESMTPS" in text.split(b"\r\n\r\n")[0]
    assert b"by relay.test (KubeRelay, connector default/anonymous-relay)" in text


def test_required_tls_refuses_an_untrusted_next_hop_temporarily(relay):
    first_hop, last_hop = chain(relay, "Required")
    replies = send(first_hop, "untrusted")
    assert replies[0].code == 451  # MAIL FROM: the next hop could not be reached safely
    assert last_hop.drop_files() == []

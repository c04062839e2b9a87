"""Exchange's header firewall (exchange-semantics.md §1.5): a client's Received/Resent-* fields
reach the next hop only with ms-Exch-Accept-Headers-Routing, its X-MS-Exchange-Organization-*
fields only with ms-Exch-Accept-Headers-Organization. The relay's own Received field is always
added on top."""

from relaytest import RawSMTP, message

EXAMPLE = "003-anonymous-relay-ip-restricted"
SPOOFED = {
    "Received": "from internal.example by hub.example; Thu, 1 Jan 2026 00:00:00 +0000",
    "Resent-From": "ceo@example.com",
    "X-MS-Exchange-Organization-AuthAs": "Internal",
}


def send(r, source: str, test_id: str):
    with RawSMTP(r.port(2525), source=source) as c:
        assert c.greeting().code == 220
        c.ehlo()
        body = message(test_id=test_id, headers=SPOOFED)
        assert c.send_message("app@example.com", ["someone@customer.test"], body)[-1].code == 250


def test_anonymous_relay_keeps_routing_headers_but_not_organization_headers(relay, sink):
    # AnonymousUsers holds Accept-Headers-Routing but not Accept-Headers-Organization.
    r = relay(EXAMPLE, sink)
    send(r, "127.0.0.17", "anonymous")
    [m] = sink.wait_for(1)
    received = m.header("Received")
    assert len(received) == 2 and "KubeRelay" in received[0] and "internal.example" in received[1]
    assert m.header("Resent-From") == ["ceo@example.com"]
    assert m.header("X-MS-Exchange-Organization-AuthAs") == []
    assert "hello" in m.body


def test_custom_connector_without_routing_right_strips_client_routing_headers(relay, sink):
    def custom(files):
        for docs in files.values():
            for d in docs:
                if d.get("kind") == "ReceiveConnector" and d["metadata"]["name"] == "anonymous-relay":
                    d["spec"]["permissionGroups"] = ["Custom"]
                if d.get("kind") == "SenderPermission":
                    d["spec"]["extendedRights"] = ["Submit", "AcceptAnyRecipient",
                                                   "AcceptAuthoritativeDomainSender"]

    r = relay(EXAMPLE, sink, edit=custom)
    send(r, "127.0.0.17", "custom")
    [m] = sink.wait_for(1)
    received = m.header("Received")
    assert len(received) == 1 and "KubeRelay" in received[0]
    assert m.header("Resent-From") == []
    assert m.header("X-MS-Exchange-Organization-AuthAs") == []
    assert m.header("X-Test-Id") == ["custom"]


def test_externally_secured_servers_keep_their_headers(relay, sink):
    # ExternalAuthoritative + ExchangeServers: Accept-Headers-Routing, but the externally secured
    # list has no Accept-Headers-Organization either (exchange-semantics.md §1.4).
    r = relay(EXAMPLE, sink)
    send(r, "127.0.0.25", "trusted")
    [m] = sink.wait_for(1)
    assert len(m.header("Received")) == 2
    assert m.header("X-MS-Exchange-Organization-AuthAs") == []

"""Every seed scenario end to end (issue 8): one test per seed document of ../shared/seeds/,
named after its file.

The stack (conftest.py, started once): a real kube-apiserver + etcd with the CRDs,
kuberelay-operator (mutual-TLS policy channel, Events on), two kuberelay-relay processes in
cluster mode (relay-a, relay-b: everything they enforce comes over the channel), smtp-sink as the
next hop, and Prometheus scraping the operator and both relays every second.

Each test applies its scenario's manifests from examples/ with kubectl into its own namespace
(smarthosts rewritten to the sink, tarpits off), waits until every object is Accepted=True and
Ready=True with status.relays {total: 2, applied: 2}, and plays its SMTP sessions (RawSMTP,
smtplib, swaks) from 127.0.0.x through BOTH relays. For every session it asserts:

* every reply, in order: code + enhanced code, and the whole text of the decisive ones;
* the next hop received exactly the accepted messages (one per relay, by X-Test-Id), with the
  envelope sender and recipients the relay accepted, and nothing from the refused sessions;
* through Prometheus's HTTP API, after a scrape that followed the sessions: the counters
  kuberelay_{connections,auth_decisions,sender_decisions,relay_decisions,messages}_total of the
  scenario's connectors (and of "none", no connector) moved by exactly what the sessions imply,
  label by label (decision, reason, result, mechanism), on each relay's own series; and the
  operator's kuberelay_operator_relay_updates_total{result="applied"} grew by both relays' ACKs.

Then it deletes its objects (there is no namespace controller). Variants (002's risky/,
004's all-clients/) and changes (001's rights withdrawn) are further phases of the same test.

Counters are compared as (value after) - (value before) of instant queries rather than with
increase(): a scenario's connector series are born during the test (their labels name its
namespace), and increase() does not count a series' first sample.
"""

from __future__ import annotations

import pytest
from e2elib import (EXAMPLES, GROUP, MIB, OPERATOR_JOB, Case, Scenario, auth, conditions, conn, msg, rcpt,
                    remove_scenario, sender, settle, sink_messages, wait_for, warning_events)

# The decisive replies, whole (policy/include/kuberelay/policy/reply.h).
NOT_AUTHENTICATED = "530 5.7.1 Client was not authenticated"
OFF_LIST = "530 5.7.3 Client was not authenticated"
SEND_AS_DENIED = "550 5.7.1 Client does not have permission to send as this sender"
UNABLE_TO_RELAY = "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
AUTH_FAILED = "535 5.7.3 Authentication unsuccessful"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
NO_CONNECTOR = "554 5.7.1 No receive connector accepts this client"
# A message taken: MAIL, RCPT(s), DATA, end of data; and the session's end.
SENT = ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
BYE = "221 2.0.0"
TLS = "220 2.0.0"
AUTH_OK = "235 2.7.0"


def sends(mail: str, *rcpts: str, size: int | None = None) -> list[tuple]:
    return [("mail", mail), *[("rcpt", r) for r in rcpts], ("data", size), ("quit",)]


def sends_rcpt_only(*rcpts: str) -> list[tuple]:
    """The rest of a transaction after a MAIL step: RCPTs, DATA, QUIT."""
    return [*[("rcpt", r) for r in rcpts], ("data", None), ("quit",)]


def finish(sc: Scenario, *, min_updates: int = 2) -> None:
    """The counters moved as the cases say; the operator counted both relays' ACKs."""
    sc.check_metrics()  # waits for a scrape
    updates = sc.relay_updates()
    assert updates - sc.operator_updates >= min_updates, (updates, sc.operator_updates)


# ------------------------------------------------------------------------------------- 000

def test_seed_000_f179e5f829b73d29(stack):
    """Q195681: the web application has no accounts for its visitors; it sends through one
    service account (AnonUser) on the submission connector, after STARTTLS + AUTH. Nothing is
    accepted without AUTH, with a wrong password, or as any other sender."""
    ns, c = "e2e-000", "web-app-submission"
    user = ("anonuser@example.com", "AnonUser-Pass-000")
    try:
        sc = Scenario(stack, ns, EXAMPLES / "000-anonymous-web-app")
        rc = sc.objects[f"ReceiveConnector/{c}"]
        assert rc["spec"]["requireTLS"] is True and rc["spec"]["permissionGroups"] == ["ExchangeUsers"]
        sc.play([
            # The application, as a Python web app would send: smtplib, STARTTLS, AUTH PLAIN.
            Case("webapp-smtplib", 2587, "127.0.0.1",
                 [("starttls",), ("auth", *user), *sends(user[0], "someone@example.com", "someone@example.org")],
                 ["220", TLS, AUTH_OK, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "own_address"),
                  rcpt(c, "accept", "accepted_domain"), rcpt(c, "accept", "relay_right"), msg(c)],
                 delivered=(user[0], ["someone@example.com", "someone@example.org"]), client="smtplib"),
            # The same with swaks (certificate verified).
            Case("webapp-swaks", 2587, "127.0.0.1",
                 [("starttls",), ("auth", *user), *sends(user[0], "someone@example.org")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "own_address"), rcpt(c, "accept", "relay_right"),
                  msg(c)],
                 delivered=(user[0], ["someone@example.org"]), client="swaks"),
            # No AUTH: refused at MAIL FROM.
            Case("no-auth", 2587, "127.0.0.1",
                 [("starttls",), ("mail", user[0]), ("rcpt", "someone@example.com"), ("quit",)],
                 ["220", TLS, NOT_AUTHENTICATED, "503 5.5.1", BYE],
                 [conn(c), sender(c, "refuse", "not_authenticated"), rcpt(c, "refuse", "bad_sequence")]),
            # Before STARTTLS: no AUTH (BasicAuthRequireTLS), no MAIL (requireTLS).
            Case("before-starttls", 2587, "127.0.0.1",
                 [("auth", *user), ("mail", user[0]), ("quit",)],
                 ["220", ENCRYPTION_REQUIRED, MUST_STARTTLS, BYE],
                 [conn(c), auth(c, "encryption_required"), sender(c, "refuse", "tls_required")]),
            # A wrong password, and another account's password: still anonymous.
            Case("wrong-password", 2587, "127.0.0.1",
                 [("starttls",), ("auth", user[0], "not-the-password"), ("auth", "alice@example.com", user[1]),
                  ("mail", user[0]), ("quit",)],
                 ["220", TLS, AUTH_FAILED, AUTH_FAILED, NOT_AUTHENTICATED, BYE],
                 [conn(c), auth(c, "bad_credentials"), auth(c, "bad_credentials"),
                  sender(c, "refuse", "not_authenticated")]),
            # The service account as another sender: a local one (alice) and an external one.
            Case("send-as-others", 2587, "127.0.0.1",
                 [("starttls",), ("auth", *user), ("mail", "alice@example.com"), ("mail", "webmaster@partner.test"),
                  ("quit",)],
                 ["220", TLS, AUTH_OK, SEND_AS_DENIED, SEND_AS_DENIED, BYE],
                 [conn(c), auth(c, "success"), sender(c, "refuse", "sender_denied"),
                  sender(c, "refuse", "sender_denied")]),
        ])
        finish(sc)
    finally:
        remove_scenario(stack.kube, ns)


# ------------------------------------------------------------------------------------- 001

def withdraw(stack, ns: str, kind: str, name: str) -> str:
    """kubectl delete one object; waits until both relays run a policy without it and the rest
    of the namespace is Ready again. Returns the new version."""
    old = stack.same_version()
    stack.kube.kubectl("delete", "-n", ns, f"{kind}.{GROUP}", name, "--wait=true")

    def changed():
        v = stack.same_version()
        return v if v and v != old else None

    version = wait_for(f"both relays on a policy without {kind}/{name}", changed)
    settle(stack, ns)
    return version


def test_seed_001_2c8af0127b92da2a(stack):
    """Mail Express: authenticated submission on 587 (2587), basic auth over TLS, Exchange users
    only, no anonymous. The application's account sends as a local address thanks to
    ms-Exch-SMTP-Accept-Authoritative-Domain-Sender and as an external one thanks to
    ms-Exch-SMTP-Accept-Any-Sender: an account without them (bob) may only send as itself, and
    withdrawing each SenderPermission with kubectl withdraws exactly that ability."""
    ns, c = "e2e-001", "client-submission"
    mx, bob = ("mail.express@example.com", "MailExpress-Pass-001"), ("bob@example.com", "Bob-Pass-001")
    try:
        sc = Scenario(stack, ns, EXAMPLES / "001-authenticated-submission")
        rc = sc.objects[f"ReceiveConnector/{c}"]
        assert "AnonymousUsers" not in rc["spec"]["permissionGroups"]
        for name in ("mail-express-authoritative-domain-sender", "mail-express-any-sender"):
            assert sc.objects[f"SenderPermission/{name}"]["status"]["relays"] == {"total": 2, "applied": 2}
        login = [("starttls",), ("auth", *mx)]
        sc.play([
            Case("mx-as-itself", 2587, "127.0.0.1", [*login, *sends(mx[0], "someone@example.com", "x@external.test")],
                 ["220", TLS, AUTH_OK, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "own_address"),
                  rcpt(c, "accept", "accepted_domain"), rcpt(c, "accept", "relay_right"), msg(c)],
                 delivered=(mx[0], ["someone@example.com", "x@external.test"]), client="smtplib"),
            # A local address: Accept-Authoritative-Domain-Sender.
            Case("mx-as-local", 2587, "127.0.0.1", [*login, *sends("someone@example.com", "x@external.test")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "authoritative_domain_sender"),
                  rcpt(c, "accept", "relay_right"), msg(c)],
                 delivered=("someone@example.com", ["x@external.test"])),
            # An external address: Accept-Any-Sender.
            Case("mx-as-external", 2587, "127.0.0.1",
                 [*login, *sends("someone@partner.example.org", "x@external.test")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "any_sender"), rcpt(c, "accept", "relay_right"),
                  msg(c)],
                 delivered=("someone@partner.example.org", ["x@external.test"]), client="swaks"),
            Case("bob-as-himself", 2587, "127.0.0.1",
                 [("starttls",), ("auth", *bob), *sends(bob[0], "x@external.test")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "own_address"), rcpt(c, "accept", "relay_right"),
                  msg(c)],
                 delivered=(bob[0], ["x@external.test"])),
            # Without the rights: neither a local nor an external address.
            Case("bob-as-others", 2587, "127.0.0.1",
                 [("starttls",), ("auth", *bob), ("mail", "someone@example.com"),
                  ("mail", "someone@partner.example.org"), ("quit",)],
                 ["220", TLS, AUTH_OK, SEND_AS_DENIED, SEND_AS_DENIED, BYE],
                 [conn(c), auth(c, "success"), sender(c, "refuse", "sender_denied"),
                  sender(c, "refuse", "sender_denied")]),
            # No anonymous submission; no password before TLS; no wrong password.
            Case("anonymous", 2587, "127.0.0.1", [("starttls",), ("mail", bob[0]), ("quit",)],
                 ["220", TLS, NOT_AUTHENTICATED, BYE], [conn(c), sender(c, "refuse", "not_authenticated")]),
            Case("auth-before-starttls", 2587, "127.0.0.1", [("auth", *bob), ("mail", bob[0]), ("quit",)],
                 ["220", ENCRYPTION_REQUIRED, NOT_AUTHENTICATED, BYE],
                 [conn(c), auth(c, "encryption_required"), sender(c, "refuse", "not_authenticated")]),
            Case("wrong-password", 2587, "127.0.0.1",
                 [("starttls",), ("auth", bob[0], "Wrong-Pass"), ("mail", bob[0]), ("quit",)],
                 ["220", TLS, AUTH_FAILED, NOT_AUTHENTICATED, BYE],
                 [conn(c), auth(c, "bad_credentials"), sender(c, "refuse", "not_authenticated")]),
        ])

        # Remove-ADPermission ... ms-Exch-SMTP-Accept-Any-Sender: external addresses go, local stay.
        withdraw(stack, ns, "senderpermissions", "mail-express-any-sender")
        sc.play([
            Case("mx-without-any-sender", 2587, "127.0.0.1",
                 [*login, ("mail", "someone@partner.example.org"), *sends("someone@example.com", "x@external.test")],
                 ["220", TLS, AUTH_OK, SEND_AS_DENIED, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "refuse", "sender_denied"),
                  sender(c, "accept", "authoritative_domain_sender"), rcpt(c, "accept", "relay_right"), msg(c)],
                 delivered=("someone@example.com", ["x@external.test"])),
        ])
        # ... and ms-Exch-SMTP-Accept-Authoritative-Domain-Sender: only its own address is left.
        withdraw(stack, ns, "senderpermissions", "mail-express-authoritative-domain-sender")
        sc.play([
            Case("mx-without-rights", 2587, "127.0.0.1",
                 [*login, ("mail", "someone@example.com"), ("mail", "someone@partner.example.org"),
                  *sends(mx[0], "x@external.test")],
                 ["220", TLS, AUTH_OK, SEND_AS_DENIED, SEND_AS_DENIED, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "refuse", "sender_denied"),
                  sender(c, "refuse", "sender_denied"), sender(c, "accept", "own_address"),
                  rcpt(c, "accept", "relay_right"), msg(c)],
                 delivered=(mx[0], ["x@external.test"])),
        ])
        finish(sc, min_updates=6)  # three policies, each ACKed by both relays
    finally:
        remove_scenario(stack.kube, ns)


# ------------------------------------------------------------------------------------- 002

ANALYZER = {"AnonymousOnInternalConnector", "AnonymousOnSubmissionConnector", "BasicAuthWithoutTls", "OpenRelay"}


def operator_gauge(sc: Scenario, expr: str) -> float | None:
    return sc.stack.prom.value(expr.replace("JOB", f'job="{OPERATOR_JOB}"'))


def test_seed_002_08693f00643c02ac(stack):
    """Exchange Server Analyzer: anonymous access stays on the Internet-facing bridgehead and is
    off on the internal connector and on the client-submission connector. The recommended
    configuration: anonymous mail is accepted (for local recipients) on the bridgehead only and
    refused on the other two, and the analyzer says nothing. The risky variant: the analyzer's
    warnings as conditions on exactly the risky connectors, Warning Events, and the operator's
    gauges; and the sessions show why (anonymous mail on the internal and submission connectors,
    a password before STARTTLS)."""
    bridge, hub, sub = "internet-bridgehead", "internal-hub", "client-submission"
    hub1, carol = ("hub1", "Hub1-Pass-002"), ("carol@example.com", "Carol-Pass-002")
    ns = "e2e-002"
    try:
        sc = Scenario(stack, ns, EXAMPLES / "002-anonymous-by-connector-role")
        for key, obj in sc.objects.items():
            assert not ANALYZER & set(conditions(obj)), (key, sorted(conditions(obj)))
        sc.play([
            Case("bridgehead-anonymous", 2525, "127.0.0.1", sends("a@internet.test", "someone@example.com"),
                 ["220", *SENT, BYE],
                 [conn(bridge), sender(bridge, "accept", "any_sender"), rcpt(bridge, "accept", "accepted_domain"),
                  msg(bridge)],
                 delivered=("a@internet.test", ["someone@example.com"]), client="swaks"),
            Case("bridgehead-anonymous-relay", 2525, "127.0.0.1",
                 [("mail", "a@internet.test"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE],
                 [conn(bridge), sender(bridge, "accept", "any_sender"), rcpt(bridge, "refuse", "relay_denied")]),
            # The internal connector: anonymous refused, before and after STARTTLS.
            Case("internal-anonymous", 2525, "127.0.0.33",
                 [("mail", "hub@example.net"), ("starttls",), ("mail", "hub@example.net"), ("quit",)],
                 ["220", NOT_AUTHENTICATED, TLS, NOT_AUTHENTICATED, BYE],
                 [conn(hub), sender(hub, "refuse", "not_authenticated"), sender(hub, "refuse", "not_authenticated")]),
            Case("internal-hub1", 2525, "127.0.0.33",
                 [("starttls",), ("auth", *hub1), *sends("hub1@example.net", "someone@example.org",
                                                         "someone@example.com")],
                 ["220", TLS, AUTH_OK, "250 2.1.0", "250 2.1.5", "250 2.1.5", "354", "250 2.0.0", BYE],
                 [conn(hub), auth(hub, "success"), sender(hub, "accept", "any_sender"),
                  rcpt(hub, "accept", "relay_right"), rcpt(hub, "accept", "accepted_domain"), msg(hub)],
                 delivered=("hub1@example.net", ["someone@example.org", "someone@example.com"])),
            # The submission connector: anonymous refused; no password before STARTTLS.
            Case("submission-anonymous", 2587, "127.0.0.1", [("starttls",), ("mail", carol[0]), ("quit",)],
                 ["220", TLS, NOT_AUTHENTICATED, BYE], [conn(sub), sender(sub, "refuse", "not_authenticated")]),
            Case("submission-auth-before-starttls", 2587, "127.0.0.1", [("auth", *carol), ("mail", carol[0]),
                                                                          ("quit",)],
                 ["220", ENCRYPTION_REQUIRED, NOT_AUTHENTICATED, BYE],
                 [conn(sub), auth(sub, "encryption_required"), sender(sub, "refuse", "not_authenticated")]),
            Case("submission-carol", 2587, "127.0.0.1",
                 [("starttls",), ("auth", *carol), *sends(carol[0], "friend@example.org")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(sub), auth(sub, "success"), sender(sub, "accept", "own_address"),
                  rcpt(sub, "accept", "relay_right"), msg(sub)],
                 delivered=(carol[0], ["friend@example.org"]), client="smtplib"),
        ])
        finish(sc)
        assert operator_gauge(sc, 'sum(kuberelay_operator_objects{JOB,state="warning"})') == 0
        assert operator_gauge(sc, 'kuberelay_operator_compile_diagnostics{JOB,severity="warning"}') == 0
        assert warning_events(stack.kube, ns) == set()
    finally:
        remove_scenario(stack.kube, ns)

    ns = "e2e-002-risky"
    try:
        sc = Scenario(stack, ns, EXAMPLES / "002-anonymous-by-connector-role" / "risky")
        want = {hub: {"AnonymousOnInternalConnector"}, sub: {"AnonymousOnSubmissionConnector", "BasicAuthWithoutTls"},
                bridge: set()}
        for name, types in want.items():
            cond = conditions(sc.objects[f"ReceiveConnector/{name}"])
            assert ANALYZER & set(cond) == types, (name, sorted(cond))
            for t in types:
                assert cond[t]["status"] == "True" and cond[t]["reason"] == t, cond[t]
                assert cond[t]["message"].startswith("spec."), cond[t]
        expected_events = {("ReceiveConnector", name, t) for name, types in want.items() for t in types}
        wait_for("the analyzer's Warning Events",
                 lambda: expected_events <= warning_events(stack.kube, ns), timeout=15)
        assert {e for e in warning_events(stack.kube, ns) if e[1] == bridge} == set()
        sc.play([
            # Anonymous mail now accepted on the internal and the submission connectors ...
            Case("internal-anonymous", 2525, "127.0.0.33", sends("hub@example.net", "someone@example.com"),
                 ["220", *SENT, BYE],
                 [conn(hub), sender(hub, "accept", "any_sender"), rcpt(hub, "accept", "accepted_domain"), msg(hub)],
                 delivered=("hub@example.net", ["someone@example.com"])),
            Case("submission-anonymous", 2587, "127.0.0.1", sends("a@internet.test", "someone@example.com"),
                 ["220", *SENT, BYE],
                 [conn(sub), sender(sub, "accept", "any_sender"), rcpt(sub, "accept", "accepted_domain"), msg(sub)],
                 delivered=("a@internet.test", ["someone@example.com"]), client="swaks"),
            # ... a password accepted in clear text ...
            Case("submission-password-in-clear", 2587, "127.0.0.1",
                 [("auth", *carol), *sends(carol[0], "friend@example.org")],
                 ["220", AUTH_OK, *SENT, BYE],
                 [conn(sub), auth(sub, "success"), sender(sub, "accept", "own_address"),
                  rcpt(sub, "accept", "relay_right"), msg(sub)],
                 delivered=(carol[0], ["friend@example.org"])),
            # ... but still no anonymous relay anywhere (AnonymousUsers has no Accept-Any-Recipient).
            Case("internal-anonymous-relay", 2525, "127.0.0.33",
                 [("mail", "hub@example.net"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE],
                 [conn(hub), sender(hub, "accept", "any_sender"), rcpt(hub, "refuse", "relay_denied")]),
            Case("submission-anonymous-relay", 2587, "127.0.0.1",
                 [("mail", "a@internet.test"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE],
                 [conn(sub), sender(sub, "accept", "any_sender"), rcpt(sub, "refuse", "relay_denied")]),
        ])
        finish(sc)
        assert operator_gauge(sc, 'kuberelay_operator_objects{JOB,kind="ReceiveConnector",state="warning"}') == 2
        assert operator_gauge(sc, 'kuberelay_operator_compile_diagnostics{JOB,severity="warning"}') == 3
    finally:
        remove_scenario(stack.kube, ns)


# ------------------------------------------------------------------------------------- 003

def test_seed_003_40c2bc7ea8afe055(stack):
    """Anonymous relay restricted to remote IP ranges, both strategies side by side on 2525:
    (1) AnonymousUsers + Ms-Exch-SMTP-Accept-Any-Recipient for 127.0.0.16-127.0.0.23: relays, the
    1 MiB limit holds; (2) ExchangeServers + ExternalAuthoritative for 127.0.0.24/29: relays as any
    sender, and a 2 MiB message passes (bypass size limit). Everybody else, including the
    neighbours of both ranges, lands on internet-default: local delivery only."""
    anon, ext, inet = "anonymous-relay", "externally-secured-relay", "internet-default"
    ns = "e2e-003"
    try:
        sc = Scenario(stack, ns, EXAMPLES / "003-anonymous-relay-ip-restricted")
        sp = sc.objects["SenderPermission/anonymous-relay-accept-any-recipient"]
        assert sp["status"]["relays"] == {"total": 2, "applied": 2}
        relayed = [conn(anon), sender(anon, "accept", "authoritative_domain_sender"),
                   rcpt(anon, "accept", "relay_right")]
        refused_relay = [conn(inet), sender(inet, "accept", "authoritative_domain_sender"),
                         rcpt(inet, "refuse", "relay_denied")]
        played = sc.play([
            # Strategy 1, both ends of its range.
            Case("s1-relay", 2525, "127.0.0.17", sends("app@example.com", "someone@example.org"),
                 ["220", *SENT, BYE], [*relayed, msg(anon)],
                 delivered=("app@example.com", ["someone@example.org"]), client="swaks"),
            Case("s1-relay-range-start", 2525, "127.0.0.16", sends("app@example.com", "someone@example.org"),
                 ["220", *SENT, BYE], [*relayed, msg(anon)],
                 delivered=("app@example.com", ["someone@example.org"])),
            Case("s1-relay-range-end", 2525, "127.0.0.23", sends("app@example.com", "someone@example.org"),
                 ["220", *SENT, BYE], [*relayed, msg(anon)],
                 delivered=("app@example.com", ["someone@example.org"])),
            # Strategy 1 keeps the size limit: 2 MiB refused at the end of the data, or at MAIL FROM
            # when SIZE declares it.
            Case("s1-too-big", 2525, "127.0.0.17", sends("app@example.com", "someone@example.org", size=2 * MIB),
                 ["220", "250 2.1.0", "250 2.1.5", "354", TOO_BIG, BYE], [*relayed, msg(anon, "rejected")]),
            Case("s1-declared-too-big", 2525, "127.0.0.17",
                 [("mail-size", "app@example.com", 2 * MIB), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", TOO_BIG, "503 5.5.1", BYE],
                 [conn(anon), sender(anon, "refuse", "size_exceeded"), rcpt(anon, "refuse", "bad_sequence")]),
            # Strategy 2: any sender, any recipient, and no size limit.
            Case("s2-big", 2525, "127.0.0.25",
                 sends("someone@partner.example.org", "someone@example.org", size=2 * MIB),
                 ["220", *SENT, BYE],
                 [conn(ext), sender(ext, "accept", "any_sender"), rcpt(ext, "accept", "relay_right"), msg(ext)],
                 delivered=("someone@partner.example.org", ["someone@example.org"])),
            Case("s2-range-end", 2525, "127.0.0.31",
                 [("mail-size", "nobody@elsewhere.test", 2 * MIB), *sends_rcpt_only("someone@example.org")],
                 ["220", *SENT, BYE],
                 [conn(ext), sender(ext, "accept", "any_sender"), rcpt(ext, "accept", "relay_right"), msg(ext)],
                 delivered=("nobody@elsewhere.test", ["someone@example.org"])),
            # Everybody else: internet-default, local recipients only.
            Case("elsewhere-local", 2525, "127.0.0.1", sends("a@internet.test", "someone@example.com"),
                 ["220", *SENT, BYE],
                 [conn(inet), sender(inet, "accept", "any_sender"), rcpt(inet, "accept", "accepted_domain"),
                  msg(inet)],
                 delivered=("a@internet.test", ["someone@example.com"])),
            Case("elsewhere-relay", 2525, "127.0.0.1",
                 [("mail", "app@example.com"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE], refused_relay),
            Case("below-strategy-1", 2525, "127.0.0.15",
                 [("mail", "app@example.com"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE], refused_relay),
            Case("above-strategy-2", 2525, "127.0.0.32",
                 [("mail", "app@example.com"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE], refused_relay),
        ])
        # The 2 MiB message arrived whole, once per relay.
        big = [m for m in sink_messages(stack.sink) if any("-s2-big-" in t for t in m.header("X-Test-Id"))]
        assert len(big) == 2
        for m in big:
            assert m.body.count("x" * 998 + "\n") == 2 * MIB // 1000 + 1
        finish(sc)
    finally:
        remove_scenario(stack.kube, ns)


def test_seed_003_size_refusal_is_a_rejected_message(stack):
    """Seed 003, strategy 1's size limit: the 2 MiB message refused at the end of its data is a
    rejected message for the metrics, as any 5xx at the end of data is."""
    anon, ns = "anonymous-relay", "e2e-003-size"
    try:
        sc = Scenario(stack, ns, EXAMPLES / "003-anonymous-relay-ip-restricted")
        sc.play([
            Case("s1-too-big", 2525, "127.0.0.17", sends("app@example.com", "someone@example.org", size=2 * MIB),
                 ["220", "250 2.1.0", "250 2.1.5", "354", TOO_BIG, BYE],
                 [conn(anon), sender(anon, "accept", "authoritative_domain_sender"),
                  rcpt(anon, "accept", "relay_right"), msg(anon, "rejected")]),
        ])
        sc.check_metrics()
    finally:
        remove_scenario(stack.kube, ns)


# ------------------------------------------------------------------------------------- 004

def test_seed_004_ef63e8a33ec50c40(stack):
    """SmtpIpRestrictionFlag=1 (ipRestrictionMode AnonymousOnly): anyone may connect; anonymous
    clients may submit only from the list (127.0.0.40), the others get 530 5.7.3 at MAIL FROM;
    authenticated clients submit from anywhere. Then flag 0 (AllClients) for contrast: a client
    off the list is not served at all, whether or not it would authenticate."""
    c = "hub-anonymous-only"
    hub2, dave = ("hub2", "Hub2-Pass-004"), ("dave@example.com", "Dave-Pass-004")
    ns = "e2e-004"
    try:
        sc = Scenario(stack, ns, EXAMPLES / "004-ip-restriction-flag")
        assert sc.objects[f"ReceiveConnector/{c}"]["spec"]["ipRestrictionMode"] == "AnonymousOnly"
        sc.play([
            Case("on-list-anonymous", 2525, "127.0.0.40", sends("app@customer.test", "someone@example.com"),
                 ["220", *SENT, BYE],
                 [conn(c), sender(c, "accept", "any_sender"), rcpt(c, "accept", "accepted_domain"), msg(c)],
                 delivered=("app@customer.test", ["someone@example.com"]), client="swaks"),
            # Anonymous submissions still obey the relay rules.
            Case("on-list-anonymous-relay", 2525, "127.0.0.40",
                 [("mail", "app@customer.test"), ("rcpt", "someone@example.org"), ("quit",)],
                 ["220", "250 2.1.0", UNABLE_TO_RELAY, BYE],
                 [conn(c), sender(c, "accept", "any_sender"), rcpt(c, "refuse", "relay_denied")]),
            # Off the list, anonymous: connects, may STARTTLS, but MAIL FROM is refused, 5.7.3.
            Case("off-list-anonymous", 2525, "127.0.0.1",
                 [("mail", "app@customer.test"), ("starttls",), ("mail", "app@customer.test"), ("quit",)],
                 ["220", OFF_LIST, TLS, OFF_LIST, BYE],
                 [conn(c), sender(c, "refuse", "anonymous_off_list"), sender(c, "refuse", "anonymous_off_list")]),
            Case("off-list-wrong-password", 2525, "127.0.0.1",
                 [("starttls",), ("auth", dave[0], "Wrong-Pass"), ("mail", dave[0]), ("quit",)],
                 ["220", TLS, AUTH_FAILED, OFF_LIST, BYE],
                 [conn(c), auth(c, "bad_credentials"), sender(c, "refuse", "anonymous_off_list")]),
            # Off the list, authenticated: a hub (ExchangeServers: any sender) and a user.
            Case("off-list-hub2", 2525, "127.0.0.1",
                 [("starttls",), ("auth", *hub2), *sends("hub2@example.net", "someone@example.org")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "any_sender"), rcpt(c, "accept", "relay_right"),
                  msg(c)],
                 delivered=("hub2@example.net", ["someone@example.org"])),
            Case("off-list-dave", 2525, "127.0.0.1",
                 [("starttls",), ("auth", *dave), *sends(dave[0], "friend@example.org")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "own_address"), rcpt(c, "accept", "relay_right"),
                  msg(c)],
                 delivered=(dave[0], ["friend@example.org"]), client="smtplib"),
        ])
        finish(sc)
    finally:
        remove_scenario(stack.kube, ns)

    ns = "e2e-004-all-clients"
    try:
        sc = Scenario(stack, ns, EXAMPLES / "004-ip-restriction-flag" / "all-clients")
        assert sc.objects[f"ReceiveConnector/{c}"]["spec"]["ipRestrictionMode"] == "AllClients"
        sc.play([
            Case("on-list-anonymous", 2525, "127.0.0.40", sends("app@customer.test", "someone@example.com"),
                 ["220", *SENT, BYE],
                 [conn(c), sender(c, "accept", "any_sender"), rcpt(c, "accept", "accepted_domain"), msg(c)],
                 delivered=("app@customer.test", ["someone@example.com"])),
            Case("on-list-dave", 2525, "127.0.0.40",
                 [("starttls",), ("auth", *dave), *sends(dave[0], "friend@example.org")],
                 ["220", TLS, AUTH_OK, *SENT, BYE],
                 [conn(c), auth(c, "success"), sender(c, "accept", "own_address"), rcpt(c, "accept", "relay_right"),
                  msg(c)],
                 delivered=(dave[0], ["friend@example.org"])),
            # Off the list: no connector serves it, at connect, before it could authenticate.
            Case("off-list-anonymous", 2525, "127.0.0.1", sends("app@customer.test", "someone@example.com"),
                 [NO_CONNECTOR, "closed"], [conn("none", "no_connector")]),
            Case("off-list-would-authenticate", 2525, "127.0.0.1",
                 [("starttls",), ("auth", *dave), *sends(dave[0], "friend@example.org")],
                 [NO_CONNECTOR, "closed"], [conn("none", "no_connector")]),
        ])
        finish(sc)
    finally:
        remove_scenario(stack.kube, ns)

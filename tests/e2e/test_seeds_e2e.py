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

import time

from e2elib import (EXAMPLES, GROUP, MIB, OPERATOR_JOB, Case, Scenario, auth, conditions, conn, msg, rcpt,
                    remove_scenario, sender, settle, wait_for, warning_events)

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
    sc = Scenario(stack, ns, EXAMPLES / "000-anonymous-web-app")
    try:
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


# ------------------------------------------------------------------------------------- 004

def test_seed_004_ef63e8a33ec50c40(stack):
    """SmtpIpRestrictionFlag=1 (ipRestrictionMode AnonymousOnly): anyone may connect; anonymous
    clients may submit only from the list (127.0.0.40), the others get 530 5.7.3 at MAIL FROM;
    authenticated clients submit from anywhere. Then flag 0 (AllClients) for contrast: a client
    off the list is not served at all, whether or not it would authenticate."""
    c = "hub-anonymous-only"
    hub2, dave = ("hub2", "Hub2-Pass-004"), ("dave@example.com", "Dave-Pass-004")
    ns = "e2e-004"
    sc = Scenario(stack, ns, EXAMPLES / "004-ip-restriction-flag")
    try:
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
    sc = Scenario(stack, ns, EXAMPLES / "004-ip-restriction-flag" / "all-clients")
    try:
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

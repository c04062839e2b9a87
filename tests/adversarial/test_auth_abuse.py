"""AUTH edge cases, brute force against limits.maxLogonFailures, and the auth tarpit.

Seed 001's ``client-submission`` (port 2587, after STARTTLS): bob@example.com / Bob-Pass-001
(ExchangeUsers: Submit and Accept-Any-Recipient, no sender rights), mail.express@example.com /
MailExpress-Pass-001 (may send as any example.com address). Every edge case is one session
whose every reply is asserted, ending with MAIL FROM probes that show who the session is
(``bob`` may use bob@, only mail.express may use someone@example.com, anonymous gets 530).
Replies: 334 challenge, 235 2.7.0 success, 535 5.7.3 failure (counts towards maxLogonFailures,
tarpitted by authTarpitInterval), 501 5.5.2 undecodable, 501 5.7.0 cancelled, 504 5.7.4 unknown
mechanism, 501 5.5.4 syntax, 503 5.5.1 already authenticated / in a transaction, 500 5.5.2
line too long or bare line ending, 421 4.7.0 and close at the limit. Brute force follows
tests/integration/test_auth.py's approach (one relay per limit set, tarpits set explicitly).
"""

from __future__ import annotations

import base64
import socket
import threading
import time

import pytest

from advtest import read_all, session

EXAMPLE = "001-authenticated-submission"
CONNECTOR = "client-submission"
BOB = ("bob@example.com", "Bob-Pass-001")
EXPRESS = ("mail.express@example.com", "MailExpress-Pass-001")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return "AUTH PLAIN " + b64(f"{authzid}\0{user}\0{password}")


OK = plain(*BOB)
# state probes: who is this session?
AS_BOB = ["MAIL FROM:<bob@example.com>", "RSET", "MAIL FROM:<someone@example.com>"]
AS_BOB_R = ["250 2.1.0", "250 2.0.0", "550 5.7.1"]
ANON = ["MAIL FROM:<bob@example.com>"]
ANON_R = ["530 5.7.1"]


@pytest.fixture(scope="module")
def seed001(module_relay):
    # maxLogonFailures 0: each case stands alone (the brute-force tests below set limits)
    return module_relay(EXAMPLE, connectors={CONNECTOR: {"limits": {"maxLogonFailures": 0, "maxProtocolErrors": 0}}})


def tls_session(port: int, source: str = "127.0.0.1"):
    c = session(port, source)
    assert c.starttls().status == "220 2.0.0"
    assert c.ehlo().code == 250
    return c


# (id, lines, replies)
EDGE_CASES = [
    # undecodable responses
    ("bad-base64-initial-response", ["AUTH PLAIN !!!"] + ANON, ["501 5.5.2"] + ANON_R),
    ("bad-base64-response", ["AUTH PLAIN", "!!!"] + ANON, ["334", "501 5.5.2"] + ANON_R),
    ("base64-missing-padding", [OK.rstrip("=")] + ANON, ["501 5.5.2"] + ANON_R),
    ("base64-with-inner-space", ["AUTH PLAIN", OK.split()[-1][:8] + " " + OK.split()[-1][8:]] + ANON,
     ["334", "501 5.5.2"] + ANON_R),
    ("base64-data-after-padding", ["AUTH PLAIN " + OK.split()[-1] + "AAAA"] + ANON, ["501 5.5.2"] + ANON_R),
    ("base64-non-canonical-bits", ["AUTH PLAIN AGJvYkBleGFtcGxlLmNvbQBCb2ItUGFzcy0wMDF="] + ANON,
     ["501 5.5.2"] + ANON_R),
    ("star-as-initial-response", ["AUTH PLAIN *"] + ANON, ["501 5.5.2"] + ANON_R),
    ("login-bad-base64-user", ["AUTH LOGIN", "%%%%"] + ANON, ["334", "501 5.5.2"] + ANON_R),
    ("login-bad-base64-initial-user", ["AUTH LOGIN %%%%"] + ANON, ["501 5.5.2"] + ANON_R),
    ("login-bad-base64-password", ["AUTH LOGIN", b64(BOB[0]), "%%%%"] + ANON, ["334", "334", "501 5.5.2"] + ANON_R),
    # empty responses
    ("empty-initial-response", ["AUTH PLAIN ="] + ANON, ["501 5.5.2"] + ANON_R),
    ("empty-response-line", ["AUTH PLAIN", ""] + ANON, ["334", "501 5.5.2"] + ANON_R),
    ("equals-response-line", ["AUTH PLAIN", "="] + ANON, ["334", "501 5.5.2"] + ANON_R),
    ("login-empty-user", ["AUTH LOGIN =", b64(BOB[1])] + ANON, ["334", "535 5.7.3"] + ANON_R),
    ("login-empty-lines", ["AUTH LOGIN", "", ""] + ANON, ["334", "334", "535 5.7.3"] + ANON_R),
    ("login-empty-password", ["AUTH LOGIN", b64(BOB[0]), "="] + ANON, ["334", "334", "535 5.7.3"] + ANON_R),
    # cancel
    ("cancel-plain", ["AUTH PLAIN", "*"] + ANON, ["334", "501 5.7.0"] + ANON_R),
    ("cancel-login-user", ["AUTH LOGIN", "*"] + ANON, ["334", "501 5.7.0"] + ANON_R),
    ("cancel-login-password", ["AUTH LOGIN", b64(BOB[0]), "*"] + ANON, ["334", "334", "501 5.7.0"] + ANON_R),
    ("cancel-then-success", ["AUTH LOGIN", "*", OK] + AS_BOB, ["334", "501 5.7.0", "235 2.7.0"] + AS_BOB_R),
    # PLAIN structure: authzid NUL authcid NUL password
    ("authzid-other-user", [plain(*BOB, authzid=EXPRESS[0])] + ANON, ["535 5.7.3"] + ANON_R),
    ("authzid-other-valid-creds", [plain(*EXPRESS, authzid=BOB[0])] + ANON, ["535 5.7.3"] + ANON_R),
    ("authzid-same-user-upper", [plain(*BOB, authzid=BOB[0].upper())] + AS_BOB, ["235 2.7.0"] + AS_BOB_R),
    ("one-nul", ["AUTH PLAIN " + b64(f"{BOB[0]}\0{BOB[1]}")] + ANON, ["501 5.5.2"] + ANON_R),
    ("three-nuls", ["AUTH PLAIN " + b64(f"\0{BOB[0]}\0{BOB[1]}\0")] + ANON, ["501 5.5.2"] + ANON_R),
    ("no-nul", ["AUTH PLAIN " + b64(BOB[0] + BOB[1])] + ANON, ["501 5.5.2"] + ANON_R),
    ("nul-inside-password", [plain(BOB[0], BOB[1] + "\0x")] + ANON, ["501 5.5.2"] + ANON_R),
    ("login-user-with-nul", ["AUTH LOGIN " + b64(BOB[0] + "\0" + EXPRESS[0]), b64(BOB[1])] + ANON,
     ["334", "535 5.7.3"] + ANON_R),
    # credentials
    ("empty-password", [plain(BOB[0], "")] + ANON, ["535 5.7.3"] + ANON_R),
    ("empty-user", [plain("", BOB[1])] + ANON, ["535 5.7.3"] + ANON_R),
    ("password-wrong-case", [plain(BOB[0], BOB[1].lower())] + ANON, ["535 5.7.3"] + ANON_R),
    ("password-prefix", [plain(BOB[0], BOB[1][:-1])] + ANON, ["535 5.7.3"] + ANON_R),
    ("password-extended", [plain(BOB[0], BOB[1] + "1")] + ANON, ["535 5.7.3"] + ANON_R),
    ("user-with-spaces", [plain(" " + BOB[0] + " ", BOB[1])] + ANON, ["535 5.7.3"] + ANON_R),
    ("user-upper", [plain(BOB[0].upper(), BOB[1])] + AS_BOB, ["235 2.7.0"] + AS_BOB_R),
    ("other-users-password", [plain(BOB[0], EXPRESS[1])] + ANON, ["535 5.7.3"] + ANON_R),
    ("crypt-hash-as-password", [plain(BOB[0], "$6$WX.55hN/bJ9DmCWi$")] + ANON, ["535 5.7.3"] + ANON_R),
    # mechanisms
    ("cram-md5", ["AUTH CRAM-MD5"] + ANON, ["504 5.7.4"] + ANON_R),
    ("digest-md5", ["AUTH DIGEST-MD5"] + ANON, ["504 5.7.4"] + ANON_R),
    ("gssapi", ["AUTH GSSAPI"] + ANON, ["504 5.7.4"] + ANON_R),
    ("ntlm", ["AUTH NTLM"] + ANON, ["504 5.7.4"] + ANON_R),
    ("xoauth2-with-token", ["AUTH XOAUTH2 " + b64(f"user={BOB[0]}\x01auth=Bearer x\x01\x01")] + ANON,
     ["504 5.7.4"] + ANON_R),
    ("scram-sha-256", ["AUTH SCRAM-SHA-256"] + ANON, ["504 5.7.4"] + ANON_R),
    ("anonymous", ["AUTH ANONYMOUS " + b64("trace")] + ANON, ["504 5.7.4"] + ANON_R),
    ("external", ["AUTH EXTERNAL ="] + ANON, ["504 5.7.4"] + ANON_R),
    ("mechanism-lowercase", [OK.replace("AUTH PLAIN", "auth plain")] + AS_BOB, ["235 2.7.0"] + AS_BOB_R),
    ("mechanism-21-chars", ["AUTH " + "A" * 21] + ANON, ["501 5.5.4"] + ANON_R),
    ("mechanism-bad-chars", ["AUTH PL@IN"] + ANON, ["501 5.5.4"] + ANON_R),
    ("no-mechanism", ["AUTH"] + ANON, ["501 5.5.4"] + ANON_R),
    ("two-initial-responses", ["AUTH PLAIN " + OK.split()[-1] + " " + OK.split()[-1]] + ANON, ["501 5.5.4"] + ANON_R),
    # sequence
    ("auth-twice", [OK, OK] + AS_BOB, ["235 2.7.0", "503 5.5.1"] + AS_BOB_R),
    ("auth-twice-other-user", [OK, plain(*EXPRESS)] + AS_BOB, ["235 2.7.0", "503 5.5.1"] + AS_BOB_R),
    ("auth-twice-login", [OK, "AUTH LOGIN"] + AS_BOB, ["235 2.7.0", "503 5.5.1"] + AS_BOB_R),
    ("auth-in-transaction", [OK, "MAIL FROM:<bob@example.com>", plain(*EXPRESS), "RCPT TO:<x@external.test>",
                             "RSET", "MAIL FROM:<someone@example.com>"],
     ["235 2.7.0", "250 2.1.0", "503 5.5.1", "250 2.1.5", "250 2.0.0", "550 5.7.1"]),
    ("anonymous-mail-then-auth", ["MAIL FROM:<bob@example.com>", OK] + AS_BOB, ["530 5.7.1", "235 2.7.0"] + AS_BOB_R),
    # line limits: the AUTH command is an ordinary 512-octet line (RFC 4954 4); responses may
    # be 12288 octets
    ("auth-line-over-512", ["AUTH PLAIN " + b64(f"\0{BOB[0]}\0" + "x" * 500)] + ANON, ["500 5.5.2"] + ANON_R),
    ("response-over-12288", ["AUTH PLAIN", "A" * 13000] + ANON, ["334", "500 5.5.2"] + ANON_R),
    ("response-long-but-allowed", ["AUTH PLAIN", b64(f"\0{BOB[0]}\0" + "x" * 9000)] + ANON,
     ["334", "535 5.7.3"] + ANON_R),
    ("response-bare-lf", ["AUTH PLAIN", "AGJvYk\nBleGFt"] + ANON, ["334", "500 5.5.2"] + ANON_R),
    ("response-nul", ["AUTH PLAIN", "AGJvYk\x00BleGFt"] + ANON, ["334", "500 5.5.2"] + ANON_R),
    ("command-nul", [OK + "\x00"] + ANON, ["500 5.5.2"] + ANON_R),
    ("response-then-commands", ["AUTH LOGIN", b64(BOB[0]), b64(BOB[1]), "NOOP"] + AS_BOB,
     ["334", "334", "235 2.7.0", "250 2.0.0"] + AS_BOB_R),
]


@pytest.mark.parametrize("lines, expected", [pytest.param(l, e, id=i) for i, l, e in EDGE_CASES])
def test_auth_edge_case(seed001, lines, expected):
    r, hop = seed001
    with tls_session(r.port(2587)) as c:
        assert [c.cmd(l).status for l in lines] == expected
        assert c.cmd("QUIT").status == "221 2.0.0"
    hop.assert_no_message(forbidden=("Pass-001",))


def test_auth_pipelined_with_the_transaction(seed001):
    # AUTH, then MAIL/RCPT/DATA in the same segment: processed in order once the password check
    # (asynchronous) is done; the content is content, not commands.
    r, hop = seed001
    with tls_session(r.port(2587)) as c:
        c.send(f"{OK}\r\nMAIL FROM:<bob@example.com>\r\nRCPT TO:<x@external.test>\r\nDATA\r\n".encode())
        assert [c.reply().status for _ in range(4)] == ["235 2.7.0", "250 2.1.0", "250 2.1.5", "354"]
        c.send(b"Subject: pipelined\r\n\r\nAUTH PLAIN x\r\n.\r\nQUIT\r\n")
        assert read_all(c) == ["250 2.0.0", "221 2.0.0", "<closed>"]
    hop.assert_one(["x@external.test"], mail_from=BOB[0], content=b"Subject: pipelined\r\n\r\nAUTH PLAIN x\r\n")


# Brute force: (id, limits, what the attacker sends (one segment per entry), the replies)
WRONG = plain(BOB[0], "guess")
LOGIN_WRONG = ["AUTH LOGIN", b64(BOB[0]), b64("guess")]
LOCKOUT = ["421 4.7.0", "<closed>"]
BRUTE_FORCE = [
    ("default-limit-3-plain", {}, [WRONG] * 3 + [OK], ["535 5.7.3"] * 3 + LOCKOUT),
    ("default-limit-3-login", {}, LOGIN_WRONG * 3 + [OK], ["334", "334", "535 5.7.3"] * 3 + LOCKOUT),
    ("mixed-mechanisms", {}, [WRONG] + LOGIN_WRONG + [WRONG, OK], ["535 5.7.3", "334", "334", "535 5.7.3", "535 5.7.3"] + LOCKOUT),
    ("unknown-users", {}, [plain(f"user{i}@example.com", BOB[1]) for i in range(3)] + [OK], ["535 5.7.3"] * 3 + LOCKOUT),
    ("authzid-mismatch-counts", {}, [plain(*BOB, authzid=EXPRESS[0])] * 3 + [OK], ["535 5.7.3"] * 3 + LOCKOUT),
    ("limit-1", {"maxLogonFailures": 1}, [WRONG, OK], ["535 5.7.3"] + LOCKOUT),
    ("limit-10", {"maxLogonFailures": 10}, [WRONG] * 10 + [OK], ["535 5.7.3"] * 10 + LOCKOUT),
    ("below-limit-then-success", {"maxLogonFailures": 3}, [WRONG, WRONG, OK, "MAIL FROM:<bob@example.com>", "QUIT"],
     ["535 5.7.3", "535 5.7.3", "235 2.7.0", "250 2.1.0", "221 2.0.0", "<closed>"]),
    ("limit-0-never-locks-out", {"maxLogonFailures": 0}, [WRONG] * 12 + [OK, "QUIT"],
     ["535 5.7.3"] * 12 + ["235 2.7.0", "221 2.0.0", "<closed>"]),
    ("garbage-meets-protocol-error-limit", {"maxProtocolErrors": 3}, ["AUTH PLAIN !!!"] * 3 + [OK],
     ["501 5.5.2"] * 3 + LOCKOUT),
    ("cancels-meet-protocol-error-limit", {"maxProtocolErrors": 2}, ["AUTH LOGIN", "*"] * 2 + [OK],
     ["334", "501 5.7.0", "334", "501 5.7.0"] + LOCKOUT),
    ("rset-does-not-reset-failures", {}, [WRONG, "RSET", WRONG, "RSET", WRONG, OK],
     ["535 5.7.3", "250 2.0.0", "535 5.7.3", "250 2.0.0", "535 5.7.3"] + LOCKOUT),
    ("ehlo-does-not-reset-failures", {}, [WRONG, "EHLO again.test", WRONG, "EHLO again.test", WRONG, OK],
     ["535 5.7.3", "250", "535 5.7.3", "250", "535 5.7.3"] + LOCKOUT),
]


@pytest.mark.parametrize("limits, lines, expected", [pytest.param(l, s, e, id=i) for i, l, s, e in BRUTE_FORCE])
def test_brute_force_meets_max_logon_failures(relay, next_hop, limits, lines, expected):
    r = relay(EXAMPLE, next_hop, connectors={CONNECTOR: {"limits": limits}} if limits else None)
    with tls_session(r.port(2587)) as c:
        for line in lines:
            c.send(line.encode() + b"\r\n")
            time.sleep(0.01)
        got = read_all(c, timeout=2)
        assert got == expected
    next_hop.assert_nothing()


def test_pipelined_brute_force_never_reaches_the_right_password(relay, next_hop):
    # Every guess and then the right password in one segment: after the third 535 the relay
    # says 421 and closes; the fourth credential is never checked.
    r = relay(EXAMPLE, next_hop)
    with tls_session(r.port(2587)) as c:
        c.send("".join(f"{plain(BOB[0], f'guess-{i}')}\r\n" for i in range(3)).encode() + f"{OK}\r\n".encode()
               + b"MAIL FROM:<bob@example.com>\r\nRCPT TO:<x@external.test>\r\n")
        assert read_all(c) == ["535 5.7.3"] * 3 + LOCKOUT
    next_hop.assert_nothing()
    assert r.wait_log(r'stage=auth reply="421 4\.7\.0', 3)
    assert "235" not in r.log()


def test_auth_tarpit_delays_every_kind_of_failure(relay, next_hop):
    r = relay(EXAMPLE, next_hop, fast=False,
              connectors={CONNECTOR: {"limits": {"authTarpitInterval": "400ms", "tarpitInterval": "0s",
                                                 "maxLogonFailures": 0}}})
    failures = {
        "wrong-password": [WRONG],
        "unknown-user": [plain("nobody@example.com", "x")],
        "authzid-mismatch": [plain(*BOB, authzid=EXPRESS[0])],
        "login": LOGIN_WRONG,
        "empty-password": [plain(BOB[0], "")],
    }
    with tls_session(r.port(2587)) as c:
        for name, lines in failures.items():
            for line in lines[:-1]:
                assert c.cmd(line).code == 334
            t = time.monotonic()
            assert c.cmd(lines[-1]).status == "535 5.7.3", name
            elapsed = time.monotonic() - t
            assert 0.38 <= elapsed < 2.0, (name, elapsed)
        t = time.monotonic()
        assert c.cmd("AUTH CRAM-MD5").status == "504 5.7.4"  # not a logon failure: no auth tarpit
        assert c.auth_plain(*BOB).status == "235 2.7.0"
        assert time.monotonic() - t < 0.3
    next_hop.assert_nothing()


def test_auth_tarpit_then_lockout(relay, next_hop):
    r = relay(EXAMPLE, next_hop, fast=False,
              connectors={CONNECTOR: {"limits": {"authTarpitInterval": "300ms", "tarpitInterval": "0s",
                                                 "maxLogonFailures": 2}}})
    with tls_session(r.port(2587)) as c:
        t = time.monotonic()
        c.send(f"{WRONG}\r\n{WRONG}\r\n{OK}\r\n".encode())
        assert read_all(c) == ["535 5.7.3", "535 5.7.3"] + LOCKOUT
        elapsed = time.monotonic() - t
    assert 0.58 <= elapsed < 3.0, elapsed  # two tarpitted failures, one after the other
    next_hop.assert_nothing()


def test_auth_tarpit_does_not_stall_other_clients(relay, next_hop):
    # A brute-forcer waiting in the tarpit holds only its own session.
    r = relay(EXAMPLE, next_hop, fast=False,
              connectors={CONNECTOR: {"limits": {"authTarpitInterval": "2s", "tarpitInterval": "0s",
                                                 "maxLogonFailures": 0}}})
    attackers = [tls_session(r.port(2587), f"127.0.0.{50 + i}") for i in range(3)]
    try:
        for a in attackers:
            a.send(f"{WRONG}\r\n".encode())
        time.sleep(0.1)
        t = time.monotonic()
        with tls_session(r.port(2587), "127.0.0.60") as c:
            assert c.cmd("NOOP").status == "250 2.0.0"
            assert c.auth_plain(*BOB).status == "235 2.7.0"
            replies = c.send_message(BOB[0], ["x@external.test"], b"Subject: during tarpit\r\n\r\nx\r\n")
            assert [x.status for x in replies] == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
        assert time.monotonic() - t < 1.0
        for a in attackers:
            assert a.reply(timeout=4).status == "535 5.7.3"
    finally:
        for a in attackers:
            a.close()
    next_hop.assert_one(["x@external.test"], mail_from=BOB[0], content=b"Subject: during tarpit\r\n\r\nx\r\n")

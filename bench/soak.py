#!/usr/bin/env python3
"""Soak: one kuberelay-relay of the AddressSanitizer + UBSan build under a bounded mixed load.

usage: soak.py [--build build-asan] [--seconds N] [--workers 4] [--idle 300] [--json FILE]

The relay runs in local mode on examples/003-anonymous-relay-ip-restricted plus the submission
connector, users and SenderPermissions of examples/001-authenticated-submission, every
connector with connectionInactivityTimeout --inactivity (8 s), forwarding in-line to Postfix's
smtp-sink (tests/integration/relaytest.py's Relay and Sink). For --seconds (default
$SOAK_SECONDS, else 600), --workers client threads play, on 127.0.0.x source addresses:

  relay_plain      127.0.0.17-20 (anonymous-relay): 1-3 messages to external recipients
  relay_starttls   127.0.0.21-22: STARTTLS, then 1-2 messages
  trusted_send     127.0.0.25 (externally-secured-relay, ExternalAuthoritative): any sender
  auth_ok          submission port, 127.0.0.40-43: STARTTLS, AUTH PLAIN or LOGIN (seed 001
                   users), a message as themselves
  auth_fail        submission port, 127.0.0.44-47: wrong password then right one, three wrong
                   ones (421 4.7.0 and close), unknown user, AUTH before STARTTLS (538 5.7.11),
                   MAIL without AUTH (530)
  refused_relay    127.0.0.60-63 (internet-default): external RCPT 550 5.7.54, local RCPT
                   delivered alone
  abort_command    a client that vanishes (FIN or RST) inside a command line, inside a
                   transaction, or right after 220 to STARTTLS
  abort_data       a client that vanishes inside DATA (plain, TLS or authenticated), after up to
                   200 KiB of content

and one more thread holds --idle (300) idle connections at a time from 127.0.0.100-119, in
waves: one wave is closed by the client after 4 s (half FIN, half RST), the next is held until
the relay cuts every connection at the inactivity timeout (421 4.4.1). Every message carries an
X-Soak-Id header, and at the end every message the sink holds is matched against what the
clients were told: nothing accepted is missing, nothing refused or aborted arrived, recipients
exactly those the relay accepted.

The relay's RSS (VmRSS) is sampled every 5 s. Memory is *flat* when the median of the samples
of the last third of the run is at most 10 % + 2 MiB above the median of the middle third (the
first third is warm-up). At the end five idle connections are left open, the relay gets SIGTERM
(they must get 421 4.3.2), and it must exit with status 0 and without any AddressSanitizer,
LeakSanitizer or UndefinedBehaviorSanitizer report in its log. ASan's exit statistics
(ASAN_OPTIONS atexit=1) prove the exit went through the atexit handlers, where LeakSanitizer
runs. ASan's quarantine of freed memory is bounded to --quarantine-mb (16) so that it fills
during the warm-up third instead of growing through the whole run.

The summary is printed and written as JSON (default bench/results/soak-<stamp>.json). Exit
status 0 when every check passed. All traffic is on 127.0.0.0/8, every process is stopped by
its PID, every wait is bounded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import selectors
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import yaml  # noqa: E402

import relaytest  # noqa: E402
from relaytest import ConnectionClosed, RawSMTP, Relay, Sink, parse_sink_dump  # noqa: E402

EXAMPLE = "003-anonymous-relay-ip-restricted"
SUBMISSION = REPO / "examples" / "001-authenticated-submission"
USERS = {"bob@example.com": "Bob-Pass-001", "mail.express@example.com": "MailExpress-Pass-001"}
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: (AddressSanitizer|LeakSanitizer)"
    r"|SUMMARY: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:")
EXIT_STATS = re.compile(r"AddressSanitizer exit stats:")
SAMPLE_INTERVAL = 5.0
IDLE_SOURCES = ([f"127.0.0.{i}" for i in range(100, 120)], [f"127.0.0.{i}" for i in range(120, 140)])
DRAIN_SOURCES = ["127.0.0.150"]


class Unexpected(Exception):
    pass


def expect(reply, want: str, what: str):
    if not reply.status.startswith(want):
        raise Unexpected(f"{what}: expected {want}, got {reply.status} {reply.text!r}")
    return reply


def rst_close(sock) -> None:
    """Close with RST (SO_LINGER 0): the peer sees a reset, not an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def read_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu_s"] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        pass
    return out


# ---------------------------------------------------------------------------------------------
# Book-keeping shared by the client threads

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.scenarios: dict[str, int] = {}
        self.unexpected: list[str] = []
        self.unexpected_count = 0
        self.accepted: dict[str, list[str]] = {}   # soak id -> recipients the relay accepted
        self.aborted: set[str] = set()             # ids of messages abandoned inside DATA
        self.refused: set[str] = set()             # ids of messages refused at end of data
        self.idle_held_max = 0

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def scenario(self, name: str) -> None:
        with self.lock:
            self.scenarios[name] = self.scenarios.get(name, 0) + 1

    def bad(self, text: str) -> None:
        with self.lock:
            self.unexpected_count += 1
            if len(self.unexpected) < 30:
                self.unexpected.append(f"{time.strftime('%H:%M:%S')} {text}")


class Ids:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0

    def next(self, kind: str) -> str:
        with self.lock:
            self.n += 1
            return f"{kind}-{self.n}"


# ---------------------------------------------------------------------------------------------
# The load

class Load:
    def __init__(self, relay: Relay, stats: Stats, seed: int, timeout: float):
        self.relay = relay
        self.stats = stats
        self.ids = Ids()
        self.timeout = timeout
        self.port25 = relay.port(2525)
        self.port587 = relay.port(2587)
        self.seed = seed

    # -- pieces
    def connect(self, port: int, source: str) -> RawSMTP:
        c = RawSMTP(port, source=source, timeout=self.timeout)
        self.stats.add("connections")
        try:
            expect(c.greeting(), "220", "greeting")
        except BaseException:
            c.close()
            raise
        return c

    def body(self, rng: random.Random, soak_id: str, big: bool = False) -> bytes:
        size = rng.randint(64 * 1024, 200 * 1024) if big else rng.randint(200, 4000)
        line = b"The quick brown fox jumps over the lazy dog 0123456789 soak soak soak.\r\n"
        text = (line * (size // len(line) + 1))[:size]
        text = text[: text.rfind(b"\r\n") + 2] if b"\r\n" in text else text + b"\r\n"
        if rng.random() < 0.2:
            text += b".a line that starts with a dot\r\n"
        head = (f"From: soak@example.com\r\nTo: someone@example.org\r\nSubject: soak {soak_id}\r\n"
                f"X-Soak-Id: {soak_id}\r\n\r\n").encode()
        return head + text

    def send(self, c: RawSMTP, rng: random.Random, kind: str, sender: str, rcpts: list[tuple[str, str]],
             big: bool = False) -> None:
        """One transaction; rcpts are (address, expected status prefix). Records the outcome."""
        soak_id = self.ids.next(kind)
        expect(c.cmd(f"MAIL FROM:<{sender}>"), "250", f"{kind} MAIL")
        accepted = []
        for addr, want in rcpts:
            r = expect(c.cmd(f"RCPT TO:<{addr}>"), want, f"{kind} RCPT {addr}")
            if r.code == 250:
                accepted.append(addr)
            elif r.code >= 500:
                self.stats.add("refusals")
                self.stats.add(f"refused_{r.status.replace(' ', '_')}")
        if not accepted:
            expect(c.cmd("RSET"), "250", f"{kind} RSET")
            return
        expect(c.cmd("DATA"), "354", f"{kind} DATA")
        c.send(relaytest.dot_stuff(self.body(rng, soak_id, big)) + b".\r\n")
        r = c.reply()
        if r.code == 250:
            with self.stats.lock:
                self.stats.accepted[soak_id] = accepted
            self.stats.add("messages")
            self.stats.add("message_recipients", len(accepted))
        else:
            with self.stats.lock:
                self.stats.refused.add(soak_id)
            raise Unexpected(f"{kind} end of data: {r.status} {r.text!r}")

    def quit(self, c: RawSMTP, kind: str) -> None:
        expect(c.cmd("QUIT"), "221", f"{kind} QUIT")
        c.close()

    def tls_submission(self, source: str, kind: str) -> RawSMTP:
        c = self.connect(self.port587, source)
        try:
            expect(c.ehlo(), "250", f"{kind} EHLO")
            expect(c.starttls(), "220", f"{kind} STARTTLS")
            expect(c.ehlo(), "250", f"{kind} EHLO after TLS")
        except BaseException:
            c.close()
            raise
        return c

    # -- scenarios
    def relay_plain(self, rng):
        c = self.connect(self.port25, f"127.0.0.{rng.randint(17, 20)}")
        try:
            expect(c.ehlo(), "250", "relay_plain EHLO")
            for _ in range(rng.randint(1, 3)):
                rcpts = [(f"user{rng.randint(1, 99)}@partner.example.org", "250")]
                if rng.random() < 0.3:
                    rcpts.append(("someone@example.com", "250"))
                self.send(c, rng, "plain", "app@example.com", rcpts, big=rng.random() < 0.05)
            self.quit(c, "relay_plain")
        finally:
            c.close()

    def relay_starttls(self, rng):
        c = self.connect(self.port25, f"127.0.0.{rng.randint(21, 22)}")
        try:
            expect(c.ehlo(), "250", "relay_starttls EHLO")
            expect(c.starttls(), "220", "relay_starttls STARTTLS")
            self.stats.add("tls_sessions")
            expect(c.ehlo(), "250", "relay_starttls EHLO after TLS")
            for _ in range(rng.randint(1, 2)):
                self.send(c, rng, "tls", "app@example.com", [(f"user{rng.randint(1, 99)}@partner.example.org", "250")])
            self.quit(c, "relay_starttls")
        finally:
            c.close()

    def trusted_send(self, rng):
        c = self.connect(self.port25, "127.0.0.25")
        try:
            expect(c.ehlo(), "250", "trusted EHLO")
            self.send(c, rng, "trusted", f"someone{rng.randint(1, 9)}@elsewhere.example.net",
                      [(f"user{rng.randint(1, 99)}@partner.example.org", "250")])
            self.quit(c, "trusted")
        finally:
            c.close()

    def auth_ok(self, rng):
        c = self.tls_submission(f"127.0.0.{rng.randint(40, 43)}", "auth_ok")
        self.stats.add("tls_sessions")
        try:
            user = rng.choice(sorted(USERS))
            if rng.random() < 0.5:
                expect(c.auth_plain(user, USERS[user]), "235", "auth_ok AUTH PLAIN")
            else:
                expect(c.cmd("AUTH LOGIN"), "334", "auth_ok AUTH LOGIN")
                expect(c.cmd(base64.b64encode(user.encode()).decode()), "334", "auth_ok LOGIN user")
                expect(c.cmd(base64.b64encode(USERS[user].encode()).decode()), "235", "auth_ok LOGIN password")
            self.stats.add("auth_success")
            sender = user if user.startswith("bob") else "someone@partner.example.org"
            self.send(c, rng, "auth", sender, [(f"user{rng.randint(1, 99)}@partner.example.org", "250"),
                                               ("someone@example.com", "250")])
            if user.startswith("bob"):
                # bob may not send as somebody else (seed 001)
                expect(c.cmd("MAIL FROM:<ceo@example.com>"), "550", "auth_ok bob as ceo")
                self.stats.add("refusals")
                self.stats.add("refused_550_5.7.1_send_as")
            self.quit(c, "auth_ok")
        finally:
            c.close()

    def auth_fail(self, rng):
        variant = rng.choice(["wrong_then_right", "three_wrong", "unknown_user", "before_tls", "no_auth"])
        source = f"127.0.0.{rng.randint(44, 47)}"
        if variant == "before_tls":
            c = self.connect(self.port587, source)
            try:
                expect(c.ehlo(), "250", "auth_fail EHLO")
                expect(c.auth_plain("bob@example.com", USERS["bob@example.com"]), "538", "auth_fail AUTH before TLS")
                self.stats.add("auth_failure")
                self.stats.add("refusals")
                self.quit(c, "auth_fail")
            finally:
                c.close()
            return
        c = self.tls_submission(source, "auth_fail")
        self.stats.add("tls_sessions")
        try:
            if variant == "wrong_then_right":
                expect(c.auth_plain("bob@example.com", "not-the-password"), "535", "auth_fail wrong")
                self.stats.add("auth_failure")
                expect(c.auth_plain("bob@example.com", USERS["bob@example.com"]), "235", "auth_fail then right")
                self.stats.add("auth_success")
                self.quit(c, "auth_fail")
            elif variant == "three_wrong":
                for i in range(3):
                    expect(c.auth_plain("mail.express@example.com", f"guess-{i}"), "535", "auth_fail guess")
                    self.stats.add("auth_failure")
                expect(c.reply(), "421", "auth_fail lockout")
                if not c.closed_by_peer(10):
                    raise Unexpected("auth_fail: the relay did not close after maxLogonFailures")
                self.stats.add("auth_lockouts")
            elif variant == "unknown_user":
                expect(c.auth_plain("mallory@example.com", "whatever"), "535", "auth_fail unknown user")
                self.stats.add("auth_failure")
                self.quit(c, "auth_fail")
            else:  # no_auth: anonymous MAIL on an ExchangeUsers-only connector
                expect(c.cmd("MAIL FROM:<bob@example.com>"), "530", "auth_fail anonymous MAIL")
                self.stats.add("refusals")
                self.quit(c, "auth_fail")
        finally:
            c.close()

    def refused_relay(self, rng):
        c = self.connect(self.port25, f"127.0.0.{rng.randint(60, 63)}")
        try:
            expect(c.ehlo(), "250", "refused_relay EHLO")
            rcpts = [(f"victim{rng.randint(1, 99)}@partner.example.org", "550")]
            if rng.random() < 0.6:
                rcpts.append(("postmaster@example.com", "250"))
            self.send(c, rng, "refused", f"spammer{rng.randint(1, 9)}@partner.example.org", rcpts)
            self.quit(c, "refused_relay")
        finally:
            c.close()

    def abort_command(self, rng):
        variant = rng.choice(["partial_line", "in_transaction", "after_starttls_220", "tls_partial_line"])
        rst = rng.random() < 0.5
        c = self.connect(self.port25, f"127.0.0.{rng.choice([17, 18, 60, 61])}")
        try:
            expect(c.ehlo(), "250", "abort_command EHLO")
            if variant == "partial_line":
                c.send(b"MAIL FROM:<half-a-comm")
            elif variant == "in_transaction":
                expect(c.cmd("MAIL FROM:<app@example.com>"), "250", "abort_command MAIL")
                c.send(b"RCPT TO:<someone@exam")
            elif variant == "after_starttls_220":
                expect(c.cmd("STARTTLS"), "220", "abort_command STARTTLS")
            else:
                expect(c.starttls(), "220", "abort_command STARTTLS")
                expect(c.ehlo(), "250", "abort_command EHLO after TLS")
                c.send(b"MAIL FROM:<app@exa")
            time.sleep(rng.uniform(0, 0.2))
            self.stats.add("aborts")
            self.stats.add("aborts_mid_command")
        finally:
            (rst_close if rst else lambda s: s.close())(c.sock)

    def abort_data(self, rng):
        variant = rng.choice(["plain", "plain", "tls", "auth"])
        rst = rng.random() < 0.5
        if variant == "auth":
            c = self.tls_submission(f"127.0.0.{rng.randint(40, 43)}", "abort_data")
        else:
            c = self.connect(self.port25, f"127.0.0.{rng.randint(17, 20)}")
        try:
            if variant == "auth":
                expect(c.auth_plain("bob@example.com", USERS["bob@example.com"]), "235", "abort_data AUTH")
                self.stats.add("auth_success")
                sender = "bob@example.com"
            else:
                expect(c.ehlo(), "250", "abort_data EHLO")
                if variant == "tls":
                    expect(c.starttls(), "220", "abort_data STARTTLS")
                    expect(c.ehlo(), "250", "abort_data EHLO after TLS")
                sender = "app@example.com"
            if variant != "plain":
                self.stats.add("tls_sessions")
            soak_id = self.ids.next("aborted")
            expect(c.cmd(f"MAIL FROM:<{sender}>"), "250", "abort_data MAIL")
            expect(c.cmd(f"RCPT TO:<user{rng.randint(1, 99)}@partner.example.org>"), "250", "abort_data RCPT")
            expect(c.cmd("DATA"), "354", "abort_data DATA")
            with self.stats.lock:
                self.stats.aborted.add(soak_id)
            content = relaytest.dot_stuff(self.body(rng, soak_id, big=rng.random() < 0.3))
            cut = rng.randint(1, len(content) - 3)
            c.send(content[:cut])  # never the terminator
            time.sleep(rng.uniform(0, 0.3))
            self.stats.add("aborts")
            self.stats.add("aborts_mid_data")
        finally:
            (rst_close if rst else lambda s: s.close())(c.sock)

    SCENARIOS = [("relay_plain", 4), ("relay_starttls", 2), ("trusted_send", 1), ("auth_ok", 2),
                 ("auth_fail", 2), ("refused_relay", 2), ("abort_command", 2), ("abort_data", 2)]

    def worker(self, index: int, stop: threading.Event, pace: float):
        rng = random.Random(self.seed * 1000 + index)
        names = [n for n, _ in self.SCENARIOS]
        weights = [w for _, w in self.SCENARIOS]
        while not stop.is_set():
            name = rng.choices(names, weights)[0]
            self.stats.scenario(name)
            self.stats.add("sessions")
            try:
                getattr(self, name)(rng)
            except Unexpected as e:
                self.stats.bad(str(e))
            except (ConnectionClosed, TimeoutError, OSError, AssertionError) as e:
                self.stats.bad(f"{name}: {type(e).__name__}: {e}"[:400])
            except Exception:  # a bug in this script: record it, keep going
                self.stats.bad(f"{name}: {traceback.format_exc()[-400:]}")
            stop.wait(rng.uniform(0, 2 * pace))

    # -- idle connections
    def open_idle(self, n: int, stop: threading.Event, sources: list[str]) -> list[socket.socket]:
        socks = []
        for i in range(n):
            if stop.is_set():
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.bind((sources[i % len(sources)], 0))
                s.connect(("127.0.0.1", self.port25))
                banner = b""
                while not banner.endswith(b"\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    banner += chunk
                if not banner.startswith(b"220"):
                    raise Unexpected(f"idle banner {banner[:80]!r}")
            except (OSError, Unexpected) as e:
                self.stats.bad(f"idle connect: {type(e).__name__}: {e}")
                s.close()
                continue
            socks.append(s)
        self.stats.add("connections", len(socks))
        self.stats.add("idle_connections", len(socks))
        with self.stats.lock:
            self.stats.idle_held_max = max(self.stats.idle_held_max, len(socks))
        return socks

    def wait_cut(self, socks: list, limit: float, stop: threading.Event) -> None:
        """Every connection must get 421 4.4.1 and be closed by the relay within `limit` s."""
        sel = selectors.DefaultSelector()
        got: dict[socket.socket, bytes] = {}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            got[s] = b""
        deadline = time.monotonic() + limit
        while got and time.monotonic() < deadline and not stop.is_set():
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    got[s] += chunk
                    continue
                data = got.pop(s)
                sel.unregister(s)
                s.close()
                if data.startswith(b"421 4.4.1"):
                    self.stats.add("idle_cut_by_timeout")
                else:
                    self.stats.bad(f"idle connection closed with {data[:80]!r}, expected 421 4.4.1")
        if got and not stop.is_set():
            self.stats.bad(f"{len(got)} idle connections not cut within {limit:.0f} s")
        for s in got:
            s.close()
        sel.close()

    def idle_holder(self, stop: threading.Event, n: int, inactivity: float, held_at_stop: list):
        wave = 0
        while not stop.is_set():
            socks = self.open_idle(n, stop, IDLE_SOURCES[wave % 2])
            cut_by_relay = wave % 2 == 1
            wave += 1
            self.stats.add("idle_waves")
            if not cut_by_relay:
                stop.wait(4.0)
                # none may have been closed or sent anything: 4 s is below the inactivity timeout
                for s in socks:
                    s.setblocking(False)
                    try:
                        data = s.recv(4096)
                        self.stats.bad(f"idle connection got {data[:60]!r} before the inactivity timeout")
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        self.stats.bad(f"idle connection: {e}")
                for i, s in enumerate(socks):
                    (rst_close if i % 2 else lambda x: x.close())(s)
                self.stats.add("idle_closed_by_client", len(socks))
            else:
                self.wait_cut(socks, inactivity + 15, stop)
            stop.wait(2.0)
        # five idle connections stay open through SIGTERM: the drain must answer them 421 4.3.2
        held_at_stop.extend(self.open_idle(5, threading.Event(), DRAIN_SOURCES))


# ---------------------------------------------------------------------------------------------
# The run

def sampler(pid: int, t0: float, stop: threading.Event, samples: list):
    while True:
        st = read_status(pid)
        if st:
            st["t"] = round(time.monotonic() - t0, 1)
            samples.append(st)
        if stop.wait(SAMPLE_INTERVAL):
            return


def memory_verdict(samples: list, seconds: float) -> dict:
    third = seconds / 3
    first = [s["VmRSS"] for s in samples if s["t"] < third]
    middle = [s["VmRSS"] for s in samples if third <= s["t"] < 2 * third]
    last = [s["VmRSS"] for s in samples if 2 * third <= s["t"] <= seconds + SAMPLE_INTERVAL / 2]
    out = {"rule": "median VmRSS of the last third <= 1.10 x median of the middle third + 2048 KiB",
           "samples": len(samples)}
    if not middle or not last:
        out.update(flat=False, reason="too few samples")
        return out
    m_mid, m_last = statistics.median(middle), statistics.median(last)
    limit = m_mid * 1.10 + 2048
    rss = [s["VmRSS"] for s in samples]
    # least-squares slope over the middle and last thirds, KiB per minute (informational)
    pts = [(s["t"], s["VmRSS"]) for s in samples if s["t"] >= third]
    slope = 0.0
    if len(pts) >= 2:
        mt = sum(t for t, _ in pts) / len(pts)
        mr = sum(r for _, r in pts) / len(pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        slope = 60 * sum((t - mt) * (r - mr) for t, r in pts) / den if den else 0.0
    out.update(
        flat=m_last <= limit,
        first_third_median_kib=statistics.median(first) if first else None,
        middle_third_median_kib=m_mid, last_third_median_kib=m_last, limit_kib=round(limit),
        growth_last_vs_middle_pct=round(100 * (m_last - m_mid) / m_mid, 2),
        min_kib=min(rss), max_kib=max(rss), first_kib=rss[0], final_kib=rss[-1],
        slope_after_warmup_kib_per_min=round(slope, 1),
    )
    return out


def build_relay(workdir: Path, sink: Sink, inactivity: float) -> Relay:
    extra = {}
    for name in ("receiveconnector.yaml", "secret-users.yaml", "senderpermissions.yaml"):
        extra[f"submission-{name}"] = [d for d in yaml.safe_load_all((SUBMISSION / name).read_text()) if d]
    return Relay(EXAMPLE, workdir, sink, extra_files=extra,
                 all_connectors={"limits": {"connectionInactivityTimeout": f"{inactivity:g}s"}},
                 drain_timeout=5, next_hop_timeout=30)


def check_sink(sink: Sink, stats: Stats, settle: float = 15.0) -> dict:
    want = len(stats.accepted)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and len(sink.files()) < want:
        time.sleep(0.2)
    time.sleep(0.5)
    seen: dict[str, int] = {}
    rcpt_mismatch, no_id, extra, partial_aborted = [], 0, [], 0
    for path in sink.files():
        m = parse_sink_dump(path)
        ids = m.header("X-Soak-Id")
        if not ids:
            no_id += 1
            continue
        sid = ids[0]
        seen[sid] = seen.get(sid, 0) + 1
        if sid in stats.accepted:
            if sorted(m.rcpts) != sorted(stats.accepted[sid]):
                rcpt_mismatch.append(f"{sid}: sink {m.rcpts} != accepted {stats.accepted[sid]}")
        elif sid in stats.aborted:
            partial_aborted += 1
        else:
            extra.append(sid)
    missing = sorted(set(stats.accepted) - set(seen))
    dup = sorted(s for s, n in seen.items() if n > 1)
    return {
        "accepted_by_relay": want, "messages_at_sink": sum(seen.values()) + no_id,
        "missing_at_sink": len(missing), "missing_examples": missing[:10],
        "duplicates": len(dup), "duplicate_examples": dup[:10],
        "not_accepted_but_delivered": len(extra), "not_accepted_examples": extra[:10],
        "aborted_in_data": len(stats.aborted), "aborted_that_reached_sink": partial_aborted,
        "recipient_mismatches": len(rcpt_mismatch), "recipient_mismatch_examples": rcpt_mismatch[:10],
        "without_soak_id": no_id,
        "ok": not (missing or dup or extra or rcpt_mismatch or no_id or partial_aborted),
    }


def relay_metrics(relay: Relay) -> dict:
    try:
        m = relay.metrics()
    except AssertionError:
        return {}
    out = {}
    for name, key in (("kuberelay_connections_total", "result"), ("kuberelay_messages_total", "result"),
                      ("kuberelay_auth_decisions_total", "result"), ("kuberelay_relay_decisions_total", "reason"),
                      ("kuberelay_forward_errors_total", "kind"), ("kuberelay_connections_active", None),
                      ("kuberelay_upstream_transactions_total", "connection")):
        series = m.series(name)
        if key is None:
            out[name] = sum(v for _, v in series)
            continue
        agg: dict[str, float] = {}
        for labels, v in series:
            agg[labels.get(key, "")] = agg.get(labels.get(key, ""), 0) + v
        out[name] = {k: int(v) for k, v in sorted(agg.items())}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("KUBERELAY_ASAN_BUILD", "build-asan"),
                    help="the AddressSanitizer build directory (default $KUBERELAY_ASAN_BUILD or build-asan)")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--workers", type=int, default=4, help="client threads playing sessions (1..8)")
    ap.add_argument("--pace", type=float, default=0.1, help="mean pause between a worker's sessions, s")
    ap.add_argument("--idle", type=int, default=300, help="idle connections per wave (0..400)")
    ap.add_argument("--inactivity", type=float, default=8.0, help="connectionInactivityTimeout, s")
    ap.add_argument("--quarantine-mb", type=int, default=16, help="ASan quarantine_size_mb")
    ap.add_argument("--timeout", type=float, default=30.0, help="client read timeout, s")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", help="default bench/results/soak-<stamp>.json")
    ap.add_argument("--keep-workdir", action="store_true")
    a = ap.parse_args()
    if not 10 <= a.seconds <= 7200:
        sys.exit("--seconds must be 10..7200")
    if not 1 <= a.workers <= 8 or not 0 <= a.idle <= 400:
        sys.exit("--workers 1..8, --idle 0..400")

    build = Path(a.build)
    if not build.is_absolute():
        build = REPO / build
    binary = build / "relay" / "kuberelay-relay"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        print(f"soak: no relay binary at {binary} (the AddressSanitizer build: make asan-build, or "
              f"ninja -C {build} kuberelay-relay)", file=sys.stderr)
        return 2
    cache = build / "CMakeCache.txt"
    if cache.is_file() and "SANITIZE:BOOL=ON" not in cache.read_text(errors="replace"):
        print(f"soak: {build} is not a SANITIZE=ON build", file=sys.stderr)
        return 2
    if not Path(relaytest.SMTP_SINK).exists():
        print(f"soak: {relaytest.SMTP_SINK} missing (apt-get install postfix)", file=sys.stderr)
        return 2

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json = Path(a.json) if a.json else REPO / "bench" / "results" / f"soak-{stamp}.json"
    os.environ["KUBERELAY_RELAY"] = str(binary)
    os.environ["ASAN_OPTIONS"] = (f"detect_leaks=1:halt_on_error=0:atexit=1:quarantine_size_mb={a.quarantine_mb}"
                                  ":malloc_context_size=20:detect_stack_use_after_return=0")
    os.environ["LSAN_OPTIONS"] = "max_leaks=30:print_suppressions=0"
    os.environ["UBSAN_OPTIONS"] = f"print_stacktrace=1:halt_on_error=1:suppressions={REPO / 'ubsan.supp'}"

    workdir = Path(tempfile.mkdtemp(prefix=f"kuberelay-soak-{stamp}-", dir="/tmp"))
    stats = Stats()
    samples: list[dict] = []
    result: dict = {"stamp": stamp, "binary": str(binary), "seconds": a.seconds, "workers": a.workers,
                    "pace_s": a.pace, "idle_per_wave": a.idle, "inactivity_timeout_s": a.inactivity,
                    "policy": f"examples/{EXAMPLE} + examples/001-authenticated-submission connector",
                    "asan_options": os.environ["ASAN_OPTIONS"], "lsan_options": os.environ["LSAN_OPTIONS"],
                    "ubsan_options": os.environ["UBSAN_OPTIONS"], "workdir": str(workdir)}
    try:
        result["commit"] = os.popen(f"git -C {REPO} rev-parse --short HEAD 2>/dev/null").read().strip()
        result["tree_dirty"] = bool(os.popen(f"git -C {REPO} status --porcelain --untracked-files=no 2>/dev/null").read().strip())
    except OSError:
        pass
    result["loadavg_start"] = open("/proc/loadavg").read().split()[:3]

    sink = Sink(workdir)
    relay = None
    threads: list[threading.Thread] = []
    stop_load = threading.Event()
    stop_sampler = threading.Event()
    held_at_stop: list[socket.socket] = []
    checks: dict[str, bool] = {}
    try:
        relay = build_relay(workdir, sink, a.inactivity)
        pid = relay.proc.pid
        print(f"soak: relay pid {pid} ({binary}), SMTP 127.0.0.1:{relay.port(2525)} and :{relay.port(2587)}, "
              f"admin {relay.admin}, sink 127.0.0.1:{sink.port}, {a.seconds:g} s, log {relay.log_path}", flush=True)
        load = Load(relay, stats, a.seed, a.timeout)
        t0 = time.monotonic()
        ts = threading.Thread(target=sampler, args=(pid, t0, stop_sampler, samples), daemon=True)
        ts.start()
        for i in range(a.workers):
            threads.append(threading.Thread(target=load.worker, args=(i, stop_load, a.pace), daemon=True))
        if a.idle:
            threads.append(threading.Thread(target=load.idle_holder,
                                            args=(stop_load, a.idle, a.inactivity, held_at_stop), daemon=True))
        for t in threads:
            t.start()
        next_report = t0 + 60
        while time.monotonic() - t0 < a.seconds:
            time.sleep(min(1.0, max(0.05, a.seconds - (time.monotonic() - t0))))
            if not relay.alive():
                break
            if time.monotonic() >= next_report:
                next_report += 60
                s = samples[-1] if samples else {}
                print(f"soak: t={time.monotonic() - t0:4.0f}s sessions={stats.counts.get('sessions', 0)} "
                      f"messages={stats.counts.get('messages', 0)} unexpected={stats.unexpected_count} "
                      f"rss={s.get('VmRSS', 0)} KiB fds={s.get('fds', 0)}", flush=True)
        result["load_seconds"] = round(time.monotonic() - t0, 1)
        stop_load.set()
        for t in threads:
            t.join(timeout=a.timeout + 30)
        result["threads_not_joined"] = sum(t.is_alive() for t in threads)
        stop_sampler.set()
        ts.join(timeout=10)
        checks["relay_alive_through_load"] = relay.alive()
        result["relay_metrics"] = relay_metrics(relay) if relay.alive() else {}
        result["sink"] = check_sink(sink, stats)
        checks["nothing_lost_nothing_extra"] = result["sink"]["ok"]

        # SIGTERM with five idle sessions open: each must get 421 4.3.2, then a clean exit
        drain_replies = []
        if relay.alive():
            os.kill(pid, signal.SIGTERM)
            for s in held_at_stop:
                s.settimeout(15)
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                drain_replies.append(data.decode(errors="replace").strip())
                s.close()
        try:
            rc = relay.proc.wait(timeout=120)
        except Exception:
            rc = None
            relaytest.stop_process(relay.proc)
        result["drain_replies"] = sorted(set(drain_replies))
        checks["drain_answers_421"] = len(drain_replies) == len(held_at_stop) and all(
            r.startswith("421 4.3.2") for r in drain_replies)
        result["exit_status"] = rc
        log = relay.log()
        reports = [m.start() for m in SANITIZER_REPORT.finditer(log)]
        result["log_bytes"] = len(log)
        result["sanitizer_reports"] = len(reports)
        if reports:
            start = log.rfind("\n", 0, reports[0]) + 1
            result["sanitizer_excerpt"] = log[start:start + 6000]
        stats_at_exit = EXIT_STATS.search(log)
        result["asan_exit_stats_seen"] = bool(stats_at_exit)
        if stats_at_exit:  # ASan's allocator summary at exit (StackDepot, quarantine, in-use chunks)
            block = log[stats_at_exit.start():].splitlines()
            result["asan_exit_stats"] = [l for l in block[:60] if l.startswith(("Stats:", "Quarantine", "Global quarantine"))]
        m = re.search(r"Stats: (\d+)M malloced \((\d+)M for red zones\) by (\d+) calls", log)
        if m:
            result["asan_malloced_mib"], result["asan_malloc_calls"] = int(m.group(1)), int(m.group(3))
        checks["leak_check"] = rc == 0 and not reports and bool(stats_at_exit)
        result["leak_check"] = ("passed: exit status 0, ASan exit stats printed (atexit ran, with "
                                "LeakSanitizer), no sanitizer report" if checks["leak_check"] else
                                f"FAILED: exit status {rc}, {len(reports)} sanitizer report(s), "
                                f"exit stats {'seen' if stats_at_exit else 'missing'}")
    except Exception:
        result["error"] = traceback.format_exc()[-3000:]
        print(f"soak: error: {result['error']}", file=sys.stderr)
    finally:
        stop_load.set()
        stop_sampler.set()
        for s in held_at_stop:
            s.close()
        if relay is not None:
            relay.stop()
        sink.stop()

    result["rss_samples"] = [{k: s.get(k) for k in ("t", "VmRSS", "RssAnon", "fds", "cpu_s")} for s in samples]
    result["memory"] = memory_verdict(samples, a.seconds)
    checks["memory_flat"] = result["memory"]["flat"]
    checks["no_unexpected_replies"] = stats.unexpected_count == 0
    checks["all_threads_finished"] = result.get("threads_not_joined", 1) == 0
    result["counts"] = dict(sorted(stats.counts.items()))
    result["scenarios"] = dict(sorted(stats.scenarios.items()))
    result["idle_held_max"] = stats.idle_held_max
    result["unexpected"] = stats.unexpected_count
    result["unexpected_examples"] = stats.unexpected
    if samples:
        result["relay_cpu_s"] = samples[-1].get("cpu_s")
    result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    result["checks"] = checks
    result["passed"] = all(checks.values()) and len(checks) == 7

    c = stats.counts
    mem = result["memory"]
    print(f"""
soak summary ({result['load_seconds'] if 'load_seconds' in result else '?'} s of load, {a.workers} workers + {a.idle} idle per wave)
  sessions          {c.get('sessions', 0)} scripted + {c.get('idle_connections', 0)} idle ({c.get('connections', 0)} connections)
  scenarios         {result['scenarios']}
  messages          {c.get('messages', 0)} accepted ({c.get('message_recipients', 0)} recipients); at the sink {result.get('sink', {}).get('messages_at_sink')}, missing {result.get('sink', {}).get('missing_at_sink')}, not accepted but delivered {result.get('sink', {}).get('not_accepted_but_delivered')}
  refusals          {c.get('refusals', 0)} (auth failures {c.get('auth_failure', 0)}, lockouts {c.get('auth_lockouts', 0)})
  aborts            {c.get('aborts', 0)} ({c.get('aborts_mid_command', 0)} mid-command, {c.get('aborts_mid_data', 0)} mid-DATA)
  idle              {c.get('idle_waves', 0)} waves, max {stats.idle_held_max} held, {c.get('idle_cut_by_timeout', 0)} cut by the inactivity timeout, {c.get('idle_closed_by_client', 0)} closed by the client
  unexpected        {stats.unexpected_count}{'' if not stats.unexpected else ': ' + stats.unexpected[0]}
  RSS (KiB)         first {mem.get('first_kib')}, middle-third median {mem.get('middle_third_median_kib')}, last-third median {mem.get('last_third_median_kib')} (limit {mem.get('limit_kib')}), max {mem.get('max_kib')}, slope {mem.get('slope_after_warmup_kib_per_min')} KiB/min -> {'flat' if mem.get('flat') else 'NOT FLAT'}
  drain             {result.get('drain_replies')}
  leak check        {result.get('leak_check')}
  relay CPU         {result.get('relay_cpu_s')} s
  checks            {checks}
  result            {'PASSED' if result['passed'] else 'FAILED'}""", flush=True)

    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"soak: summary written to {out_json}")
    if result["passed"] and not a.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"soak: relay log and sink log kept in {workdir}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

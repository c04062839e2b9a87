"""What the end-to-end tier is made of: relays in cluster mode, Prometheus, SMTP sessions with
three real clients (RawSMTP, smtplib, swaks) described as data, the next hop's view of them, and
counters read back through Prometheus's HTTP API.

Reused unchanged from the other tiers: tests/operator (Kube, Operator, the API server fixtures,
the policy channel's PKI, manifests() that points the smarthosts at the sink), tests/integration
(RawSMTP, Sink, message, the swaks wrapper) and tests/dashboards (the Prometheus API client).
Everything listens on 127.0.0.1, every process is stopped by its PID, every wait is bounded.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import smtplib
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = Path(os.environ.get("KUBERELAY_BUILD") or REPO / "build")
if not os.environ.get("KUBERELAY_RELAY"):
    os.environ["KUBERELAY_RELAY"] = str(BUILD / "relay" / "kuberelay-relay")
for _sub in ("operator", "integration", "dashboards"):
    if str(REPO / "tests" / _sub) not in sys.path:
        sys.path.insert(0, str(REPO / "tests" / _sub))

import promql  # noqa: E402
import promserver  # noqa: E402
import relaytest  # noqa: E402
from relaytest import ConnectionClosed, RawSMTP, Reply, Sink, SinkMessage, message  # noqa: E402,F401
from test_distribution import manifests  # noqa: E402
from test_operator_apiserver import EXAMPLES, GROUP, KINDS, Kube, Operator, conditions, wait_for  # noqa: E402,F401

SETTLE = 30          # seconds: objects Ready on both relays after kubectl apply
SCRAPE_TIMEOUT = 15  # seconds: Prometheus has scraped every target after a given moment
MIB = 1024 * 1024
RELAY_JOB = "kuberelay-relay"
OPERATOR_JOB = "kuberelay-operator"
# The counters every scenario checks, on the scenario's connectors (and "none": no connector).
COUNTERS = ("kuberelay_connections_total", "kuberelay_auth_decisions_total", "kuberelay_sender_decisions_total",
            "kuberelay_relay_decisions_total", "kuberelay_messages_total")


# ------------------------------------------------------------------------------ processes

def port_offset(taken: set[int]) -> int:
    """An offset that puts 2465, 2525 and 2587 on free ports outside the kernel's ephemeral range
    (another tier, e.g. tests/operator with its fixed offsets, may run at the same time)."""
    lo, hi = relaytest._ephemeral_range()
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        offset = rng.randrange(3000, 29000)
        ports = [p + offset for p in (2465, 2525, 2587)]
        near = taken | {10000, 20000}  # tests/operator's relays
        if any(lo <= p <= hi for p in ports) or any(abs(offset - t) < 200 for t in near):
            continue
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("0.0.0.0", p))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free port offset")


class ClusterRelay:
    """kuberelay-relay in cluster mode: its policy comes only over the mutual-TLS channel; every
    listening port moved by its own offset (two relays on one host)."""

    def __init__(self, name: str, grpc_port: int, pki: Path, workdir: Path, offset: int):
        self.name = name
        self.offset = offset
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(relaytest.relay_binary()), "--control-plane", f"127.0.0.1:{grpc_port}",
             "--standby-ports", "2525,2587,2465",
             "--control-plane-ca", str(pki / "ca.crt"),
             "--control-plane-cert", str(pki / f"{name}.crt"),
             "--control-plane-key", str(pki / f"{name}.key"),
             "--pod-name", name, "--admin", "127.0.0.1:0", "--hostname", relaytest.HOSTNAME,
             "--port-offset", str(offset), "--drain-timeout", "2", "--next-hop-timeout", "5"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def admin():
            assert self.proc.poll() is None, f"{name} exited {self.proc.returncode}:\n{self.log()[-3000:]}"
            m = re.search(r'msg="admin listening" address=127\.0\.0\.1:(\d+)', self.log())
            return int(m.group(1)) if m else None

        try:
            self.admin_port = wait_for(f"{name}'s admin port", admin, timeout=10)
        except BaseException:
            self.stop()
            raise

    def port(self, example_port: int) -> int:
        return example_port + self.offset

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, path: str) -> tuple[int, str]:
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def version(self) -> str | None:
        status, body = self.http("/readyz")
        return body.split()[1] if status == 200 and body.startswith("ready ") else None

    def stop(self):
        relaytest.stop_process(self.proc, term_timeout=10)
        self._log.close()


class PrometheusServer(promserver.PrometheusServer):
    """/usr/bin/prometheus scraping the given targets every second."""

    # -- reading it back
    def scraped_since(self, moment: float) -> bool:
        """Every target is up and its last scrape started after `moment` (time.time())."""
        targets = self.api.targets()
        if not targets:
            return False
        return all(t["health"] == "up" and _epoch(t["lastScrape"]) > moment for t in targets)

    def wait_scrape(self, timeout: float = SCRAPE_TIMEOUT) -> None:
        """Waits until every target was scraped after now: what Prometheus answers next includes
        everything that happened before this call."""
        moment = time.time() + 0.05
        wait_for("a Prometheus scrape of every target", lambda: self.scraped_since(moment), timeout=timeout,
                 interval=0.2)

    def value(self, expr: str) -> float | None:
        """An instant query's single value (None: no series)."""
        result = self.api.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def counters(self, connectors: list[str]) -> Counter:
        """Every series of COUNTERS on those connectors, keyed (pod, metric, connector, labels)."""
        names = "|".join(COUNTERS)
        assert all(re.fullmatch(r"[a-z0-9/-]+", c) for c in connectors), connectors  # no regex syntax
        conns = "|".join(connectors)
        expr = f'{{__name__=~"{names}",job="{RELAY_JOB}",connector=~"{conns}"}}'
        out: Counter = Counter()
        for s in self.api.query(expr):
            labels = dict(s["metric"])
            key = (labels.pop("pod"), labels.pop("__name__"), labels.pop("connector"),
                   tuple(sorted((k, v) for k, v in labels.items() if k not in ("instance", "job"))))
            out[key] += float(s["value"][1])
        return out


def _epoch(stamp: str) -> float:
    """Prometheus's RFC 3339 timestamps (nanoseconds, Z or an offset) as seconds since the epoch."""
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    assert m, stamp
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


# ---------------------------------------------------------------------------- the cluster

@dataclass
class Stack:
    kube: Kube
    operator: Operator
    relays: list[ClusterRelay]
    sink: Sink
    prom: PrometheusServer
    work: Path

    def same_version(self) -> str | None:
        versions = {r.version() for r in self.relays}
        return versions.pop() if len(versions) == 1 and None not in versions else None


def objects_ready(kube: Kube, ns: str, relays: int = 2) -> list[dict] | None:
    """Every object of ns describes its current generation, is Accepted=True and Ready=True,
    and both relays run it (status.relays)."""
    items = kube.objects(ns)
    if not items:
        return None
    for o in items:
        st = o.get("status", {})
        cond = conditions(o)
        if (st.get("observedGeneration") != o["metadata"]["generation"]
                or cond.get("Accepted", {}).get("status") != "True"
                or cond.get("Ready", {}).get("status") != "True"
                or st.get("relays") != {"total": relays, "applied": relays}):
            return None
    return items


def apply_scenario(stack: Stack, ns: str, folder: Path) -> dict[str, dict]:
    """kubectl: the namespace, then the example's manifests (smarthosts -> the sink, tarpits 0);
    waits for Accepted, Ready and 2/2 relays on every object and one policy version on both
    relays. Returns the objects by "Kind/name"."""
    stack.kube.kubectl("create", "namespace", ns, check=False)
    stack.kube.apply_text(ns, manifests(folder, stack.sink.port, stack.work))
    return settle(stack, ns, folder)


def settle(stack: Stack, ns: str, folder: Path | None = None) -> dict[str, dict]:
    items = wait_for(f"{ns}: every object Accepted and Ready on both relays", lambda: objects_ready(stack.kube, ns),
                     timeout=SETTLE)
    wait_for("both relays on one policy version", stack.same_version, timeout=SETTLE)
    by = {f"{o['kind']}/{o['metadata']['name']}": o for o in items}
    if folder is not None:
        want = {f"{d['kind']}/{d['metadata']['name']}" for f in folder.glob("*.yaml")
                for d in yaml.safe_load_all(f.read_text()) if d and d["kind"] != "Secret"}
        assert set(by) == want, (sorted(by), sorted(want))
    return by


def remove_scenario(kube: Kube, ns: str) -> None:
    """The objects and Secrets, not the namespace: this API server runs without
    kube-controller-manager, so a namespace would stay Terminating."""
    kube.kubectl("delete", "-n", ns, "--wait=true", "--ignore-not-found",
                 ",".join(f"{k}.{GROUP}" for k in KINDS) + ",secrets", "--all", timeout=120)


def warning_events(kube: Kube, ns: str) -> set[tuple[str, str, str]]:
    """(kind, name, reason) of the Warning Events in ns."""
    return {(e["involvedObject"].get("kind", ""), e["involvedObject"]["name"], e["reason"])
            for e in kube.get_json("events", "-n", ns)["items"] if e["type"] == "Warning"}


# ------------------------------------------------------------------------------- sessions

@dataclass
class Case:
    """One SMTP session, played on each relay.

    steps: ("starttls",) ("auth", user, password) ("auth-login", user, password) ("mail", addr)
           ("mail-size", addr, n) ("rcpt", addr) ("data", size_or_None) ("quit",)
    replies: every reply from the greeting on, EHLO's excepted, in order: its status ("250 2.1.0";
           "220" without an enhanced code) or, to check the text too, the whole last line
           ("530 5.7.3 Client was not authenticated"); "closed" when the relay closed the
           connection.
    delivered: (envelope sender, [recipients]) the next hop must receive from this session,
           once per relay; None: the next hop must receive nothing from it.
    counts: [(metric, connector, {labels})] the increments this session makes, per relay.
    client: "raw" (RawSMTP), "smtplib" or "swaks".
    unchecked: counters this session should move (same form as counts) that the scenario does
           not compare, because a known product bug is asserted by its own xfail test instead.
    """
    name: str
    port: int
    source: str
    steps: list[tuple]
    replies: list[str]
    counts: list[tuple]
    delivered: tuple | None = None
    client: str = "raw"
    unchecked: list[tuple] = field(default_factory=list)


def conn(connector: str, result: str = "accepted"):
    return ("kuberelay_connections_total", connector, {"result": result})


def auth(connector: str, result: str, mechanism: str = "PLAIN"):
    return ("kuberelay_auth_decisions_total", connector, {"mechanism": mechanism, "result": result})


def sender(connector: str, decision: str, reason: str):
    return ("kuberelay_sender_decisions_total", connector, {"decision": decision, "reason": reason})


def rcpt(connector: str, decision: str, reason: str):
    return ("kuberelay_relay_decisions_total", connector, {"decision": decision, "reason": reason})


def msg(connector: str, result: str = "accepted"):
    return ("kuberelay_messages_total", connector, {"result": result})


def body(test_id: str, size: int | None) -> bytes:
    if not size:
        return message(subject="e2e", test_id=test_id)
    lines = size // 1000 + 1  # 998 characters + CRLF per line: a little over `size`
    return message(subject="e2e big", test_id=test_id, body="".join("x" * 998 + "\r\n" for _ in range(lines)))


@dataclass
class Played:
    replies: list[Reply]
    test_id: str

    @property
    def statuses(self) -> list[str]:
        return [r.status if r.code else "closed" for r in self.replies]

    def matches(self, want: list[str]) -> bool:
        """Each reply is the status or the whole line the case expects."""
        return len(want) == len(self.replies) and all(
            w == s or (r.code and w == f"{r.code} {r.lines[-1]}")
            for w, s, r in zip(want, self.statuses, self.replies))


CLOSED = Reply(0, ["closed"])


def play_raw(relay: ClusterRelay, case: Case, test_id: str) -> list[Reply]:
    out: list[Reply] = []
    with RawSMTP(relay.port(case.port), source=case.source) as c:
        try:
            out.append(c.greeting())
            if out[-1].code != 220:
                if c.closed_by_peer(5):
                    out.append(CLOSED)
                return out
            assert c.ehlo().code == 250
            for step in case.steps:
                op = step[0]
                if op == "starttls":
                    out.append(c.starttls())
                    if out[-1].code == 220:
                        assert c.ehlo().code == 250
                elif op == "auth":
                    out.append(c.auth_plain(step[1], step[2]))
                elif op == "mail":
                    out.append(c.cmd(f"MAIL FROM:<{step[1]}>"))
                elif op == "mail-size":
                    out.append(c.cmd(f"MAIL FROM:<{step[1]}> SIZE={step[2]}"))
                elif op == "rcpt":
                    out.append(c.cmd(f"RCPT TO:<{step[1]}>"))
                elif op == "data":
                    out.append(c.cmd("DATA"))
                    if out[-1].code == 354:
                        c.send(relaytest.dot_stuff(body(test_id, step[1])) + b".\r\n")
                        out.append(c.reply(timeout=30))
                elif op == "quit":
                    out.append(c.cmd("QUIT"))
                else:
                    raise AssertionError(f"unknown step {step}")
        except ConnectionClosed:
            out.append(CLOSED)
    return out


def _reply(code: int, text) -> Reply:
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return Reply(code, text.split("\n"))


def play_smtplib(relay: ClusterRelay, case: Case, test_id: str) -> list[Reply]:
    """Python's smtplib, as a web application would use it; every reply it reports."""
    out: list[Reply] = []
    c = smtplib.SMTP(local_hostname="webapp.test", source_address=(case.source, 0), timeout=10)
    try:
        out.append(_reply(*c.connect("127.0.0.1", relay.port(case.port))))
        c._host = "localhost"  # the name STARTTLS verifies (the example certificate's); connect() keeps ""
        assert c.ehlo()[0] == 250
        for step in case.steps:
            op = step[0]
            if op == "starttls":
                out.append(_reply(*c.starttls(context=relaytest.client_tls_context())))
                assert c.ehlo()[0] == 250
            elif op == "auth":
                c.user, c.password = step[1], step[2]
                try:
                    out.append(_reply(*c.auth("PLAIN", c.auth_plain, initial_response_ok=True)))
                except smtplib.SMTPAuthenticationError as e:
                    out.append(_reply(e.smtp_code, e.smtp_error))
            elif op == "mail":
                out.append(_reply(*c.mail(step[1])))
            elif op == "rcpt":
                out.append(_reply(*c.rcpt(step[1])))
            elif op == "data":
                # smtplib's own DATA exchange, keeping the 354 that c.data() would swallow.
                c.putcmd("data")
                out.append(_reply(*c.getreply()))
                if out[-1].code == 354:
                    c.send(relaytest.dot_stuff(body(test_id, step[1])) + b".\r\n")
                    out.append(_reply(*c.getreply()))
            elif op == "quit":
                out.append(_reply(*c.quit()))
            else:
                raise AssertionError(f"unknown step {step}")
    finally:
        c.close()
    return out


def play_swaks(relay: ClusterRelay, case: Case, test_id: str) -> list[Reply]:
    """swaks: STARTTLS (verifying the example certificate), AUTH PLAIN, one MAIL, its RCPTs,
    DATA with the X-Test-Id header, QUIT - whatever the steps list of those."""
    args = ["--header", f"X-Test-Id: {test_id}", "--header", "Subject: e2e", "--body", "hello from swaks"]
    rcpts = []
    for step in case.steps:
        op = step[0]
        if op == "starttls":
            args += ["--tls", "--tls-verify", "--tls-ca-path", str(relaytest.ca_file()), "--tls-sni", "localhost"]
        elif op == "auth":
            args += ["--auth", "PLAIN", "--auth-user", step[1], "--auth-password", step[2]]
        elif op == "mail":
            args += ["--from", step[1]]
        elif op == "rcpt":
            rcpts.append(step[1])
        elif op not in ("data", "quit"):
            raise AssertionError(f"swaks cannot play {step}")
    args += ["--to", ",".join(rcpts)]
    code, _, transcript = relaytest.swaks(relay.port(case.port), *args, source=case.source)
    out: list[Reply] = []
    command = ""
    pending: list[str] = []
    for line in transcript.splitlines():
        sent = re.match(r"^\s*[-~]> (.*)$", line)
        if sent:
            command = sent.group(1)
            continue
        m = re.match(r"^\s*<[-~*][-~* ]?\s*(\d{3})([ -]?)(.*)$", line)
        if not m:
            continue
        pending.append(m.group(3))
        if m.group(2) != "-":
            if not command.upper().startswith("EHLO"):
                out.append(Reply(int(m.group(1)), pending))
            pending = []
    assert out, transcript
    return out


PLAYERS = {"raw": play_raw, "smtplib": play_smtplib, "swaks": play_swaks}


def play(stack: Stack, prefix: str, cases: list[Case]) -> dict[str, Played]:
    """Every case on every relay; asserts each reply (status, and text where the case says).
    Returns what was played, by test id."""
    played: dict[str, Played] = {}
    problems = []
    for relay in stack.relays:
        for case in cases:
            test_id = f"{prefix}-{case.name}-{relay.name}"
            assert test_id not in played, test_id
            replies = PLAYERS[case.client](relay, case, test_id)
            p = played[test_id] = Played(replies, test_id)
            if not p.matches(case.replies):
                problems.append(f"{test_id} ({case.client}, {case.source} -> {case.port}):\n"
                                f"   got {[f'{r.code} {r.lines[-1]}' if r.code else 'closed' for r in replies]}\n"
                                f"  want {case.replies}")
    assert not problems, "\n".join(problems)
    return played


def expected_deliveries(prefix: str, relays: list[ClusterRelay], cases: list[Case]) -> dict[str, tuple]:
    return {f"{prefix}-{c.name}-{r.name}": c.delivered for r in relays for c in cases if c.delivered}


def sink_messages(sink: Sink) -> list[SinkMessage]:
    """What smtp-sink took. A transaction the relay abandons during DATA (a message refused at
    the end of its data) leaves a file that smtp-sink empties or removes meanwhile: skipped."""
    out = []
    for p in sorted(sink.dir.iterdir()):
        try:
            if p.is_file() and p.stat().st_size > 0:
                out.append(relaytest.parse_sink_dump(p))
        except FileNotFoundError:
            continue
    return out


def check_next_hop(stack: Stack, prefix: str, want: dict[str, tuple], timeout: float = 10) -> list[SinkMessage]:
    """The sink holds exactly one message per expected test id (with that envelope), and none
    from any other session of this scenario."""
    def mine():
        return [m for m in sink_messages(stack.sink) if any(t.startswith(prefix + "-") for t in m.header("X-Test-Id"))]

    wait_for(f"{len(want)} messages of {prefix} at the next hop", lambda: len(mine()) >= len(want), timeout=timeout,
             interval=0.1)
    time.sleep(0.5)  # anything extra arrives meanwhile
    got = mine()
    ids = Counter(t for m in got for t in m.header("X-Test-Id"))
    assert set(ids) == set(want) and all(n == 1 for n in ids.values()), \
        f"next hop got {sorted(ids.items())}, want each of {sorted(want)} once"
    for m in got:
        [test_id] = m.header("X-Test-Id")
        mail_from, rcpts = want[test_id]
        assert (m.mail_from, m.rcpts) == (mail_from, list(rcpts)), (test_id, m.mail_from, m.rcpts)
    return got


def count_key(namespace: str, relay: ClusterRelay, count: tuple) -> tuple:
    metric, connector, labels = count
    cid = connector if connector == "none" else f"{namespace}/{connector}"
    return (relay.name, metric, cid, tuple(sorted(labels.items())))


def expected_counts(namespace: str, relays: list[ClusterRelay], cases: list[Case]) -> Counter:
    out: Counter = Counter()
    for r in relays:
        for c in cases:
            for count in c.counts:
                out[count_key(namespace, r, count)] += 1
    return out


def delta(after: Counter, before: Counter) -> Counter:
    out = Counter()
    for k in set(after) | set(before):
        d = after.get(k, 0) - before.get(k, 0)
        if d:
            out[k] = d
    return out


def format_counts(c: Counter) -> str:
    return "\n".join(f"  {k[0]} {k[1]}{{connector={k[2]},{','.join(f'{a}={b}' for a, b in k[3])}}} {v:g}"
                     for k, v in sorted(c.items()))


class Scenario:
    """One phase of a seed test: objects applied in `ns`, sessions played on both relays, then
    the next hop and Prometheus checked against what the cases say."""

    def __init__(self, stack: Stack, ns: str, folder: Path):
        self.stack = stack
        self.ns = ns
        self.folder = folder
        stack.prom.wait_scrape()
        self.operator_updates = self.relay_updates()
        self.objects = apply_scenario(stack, ns, folder)
        self.connectors = sorted(f"{ns}/{o['metadata']['name']}" for o in self.objects.values()
                                 if o["kind"] == "ReceiveConnector")
        stack.prom.wait_scrape()
        self.before = stack.prom.counters(self.connectors + ["none"])
        self.cases: list[Case] = []
        self.played: dict[str, Played] = {}
        self.batches = 0

    def play(self, cases: list[Case]) -> dict[str, Played]:
        """The cases on both relays (test ids "<ns>.<batch>-<case>-<relay>"), then the next hop."""
        self.batches += 1
        prefix = f"{self.ns}.{self.batches}"
        got = play(self.stack, prefix, cases)
        self.played.update(got)
        self.cases += cases
        check_next_hop(self.stack, prefix, expected_deliveries(prefix, self.stack.relays, cases))
        return got

    def relay_updates(self) -> float:
        """The operator's count of relays' ACKs, as Prometheus last scraped it."""
        return self.stack.prom.value(
            f'sum(kuberelay_operator_relay_updates_total{{job="{OPERATOR_JOB}",result="applied"}})') or 0

    def check_metrics(self) -> Counter:
        """Through Prometheus: the counters of this scenario's connectors moved by exactly what
        the cases say, on each relay's own series."""
        self.stack.prom.wait_scrape()
        moved = delta(self.stack.prom.counters(self.connectors + ["none"]), self.before)
        want = expected_counts(self.ns, self.stack.relays, self.cases)
        for key in {count_key(self.ns, r, u) for r in self.stack.relays for c in self.cases for u in c.unchecked}:
            assert key not in want, f"{key} is both expected and unchecked"
            moved.pop(key, None)
        assert moved == want, (f"counters that moved (Prometheus):\n{format_counts(moved)}\n"
                               f"expected:\n{format_counts(want)}")
        return moved

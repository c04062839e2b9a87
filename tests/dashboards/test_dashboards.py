"""The Grafana dashboards (helm/kuberelay/dashboards/*.json) and the alert rules
(helm/kuberelay/alerts/kuberelay.rules.yaml) against a real Prometheus scraping real processes.

Started here, all on 127.0.0.1, every process stopped by its PID, every wait bounded:

* a kube-apiserver + etcd and the CRDs (tests/operator's `kube` and `crds` fixtures), and
  kuberelay-operator with the policy channel (--policy-listen, --policy-insecure), watching
  examples/002's risky variant (analyzer warnings) applied with kubectl;
* relay A in local mode on examples/003, plus a connector in enforcement: Audit and one that
  serves nobody of the test's addresses, each on its own port, and one smarthost that is down
  (forward errors); relay B in local mode on examples/001 (AUTH); both forward to one smtp-sink
  (tests/integration's Relay and Sink);
* relay C in cluster mode, subscribed to the operator, when the relay binary has --control-plane:
  two snapshots it NACKs (a TLS key OpenSSL refuses) and then a fix it ACKs;
* Prometheus (Debian package), scraping the four admin ports every second and loading the rule
  file.

A short load (four rounds: a few dozen sessions, messages accepted, refused and deferred, AUTH
successes, failures and a lockout per round), then at one evaluation time:

* every PromQL expression of every panel target of every dashboard, and every template
  variable's label_values() selector, is evaluated through /api/v1/query with the dashboard
  variables substituted (promql.SUBSTITUTIONS: $__rate_interval 1m, $__range 10m, every selector
  variable at its "All" value .*), and must return data; the labels a legend names must exist;
* every alert rule is `QUERY OP NUMBER` (a test checks that form); QUERY, the expression
  without its comparison, must return data: the series the condition watches exist, whether or
  not the condition holds now. Prometheus itself loads the rule file and evaluates every rule
  without error, and `promtool check rules` passes;
* every kuberelay_* metric name used anywhere is in the /metrics text of the processes;
* render.py draws every dashboard from this Prometheus to docs/dashboards/<uid>.png.

Known missing: the series that only exist with a relay in cluster mode (CLUSTER_ONLY) cannot
exist when the relay binary under test has no --control-plane. Exactly the expressions using
them are then xfailed with the reason and listed at the end of the run; with cluster mode
available they are held to the same rule as every other expression.
"""

from __future__ import annotations

import base64
import copy
import difflib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import promql  # noqa: E402

BUILD = Path(os.environ.get("KUBERELAY_BUILD") or REPO / "build")
if not os.environ.get("KUBERELAY_RELAY"):
    os.environ["KUBERELAY_RELAY"] = str(BUILD / "relay" / "kuberelay-relay")
for _sub in ("operator", "integration"):
    if str(REPO / "tests" / _sub) not in sys.path:
        sys.path.insert(0, str(REPO / "tests" / _sub))

import relaytest  # noqa: E402
from promserver import PrometheusServer  # noqa: E402
from relaytest import ConnectionClosed, RawSMTP, Relay, Sink, message  # noqa: E402
from test_operator_apiserver import EXAMPLES, GROUP, Operator, wait_for  # noqa: E402
from test_operator_apiserver import crds, kube  # noqa: E402,F401  (module fixtures: this module's API server)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
EXPECTED_DASHBOARDS = {  # file -> (uid, title): stable, links and provisioning depend on them
    "overview": ("kuberelay-overview", "KubeRelay / Overview"),
    "authentication": ("kuberelay-authentication", "KubeRelay / Authentication"),
    "relay-decisions": ("kuberelay-relay-decisions", "KubeRelay / Relay decisions"),
    "policy": ("kuberelay-policy", "KubeRelay / Policy"),
    "operator": ("kuberelay-operator", "KubeRelay / Operator"),
}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
SEVERITIES = {"critical", "warning", "info"}

_NO_CLUSTER = "needs a relay in cluster mode, and this relay binary has no --control-plane"
CLUSTER_ONLY = {
    "kuberelay_control_plane_connected": "exported by relays in cluster mode only; " + _NO_CLUSTER,
    "kuberelay_policy_updates_total": "exported by relays in cluster mode only; " + _NO_CLUSTER,
    "kuberelay_operator_relays_connected": "set when a relay subscribes to the policy channel; " + _NO_CLUSTER,
    "kuberelay_operator_relay_updates_total": "counts relays' ACKs and NACKs; " + _NO_CLUSTER,
    "kuberelay_operator_snapshot_bytes": "set when a relay's pool gets a snapshot; " + _NO_CLUSTER,
    "kuberelay_operator_propagation_seconds": "observed when relays ACK a change; " + _NO_CLUSTER,
}

CLUSTER_EXAMPLE = EXAMPLES / "002-anonymous-by-connector-role" / "risky"
CLUSTER_NS = "dash-002-risky"
BROKEN_KEY = "-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"
ROUNDS = 4
ROUND_GAP = 4.0  # seconds between rounds: the rates have a shape in the pictures


def relay_binary() -> Path:
    return relaytest.relay_binary()


def cluster_mode_available() -> bool:
    out = subprocess.run([str(relay_binary()), "--help"], capture_output=True, text=True, timeout=30)
    return "--control-plane" in out.stdout


# ------------------------------------------------------------------------------ processes

class ClusterRelay:
    """kuberelay-relay in cluster mode, plaintext to the operator, every port + offset."""

    def __init__(self, name: str, grpc_port: int, workdir: Path):
        self.name = name
        self.offset = port_offset()
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(relay_binary()), "--control-plane", f"127.0.0.1:{grpc_port}", "--control-plane-insecure",
             "--pod-name", name, "--admin", "127.0.0.1:0", "--hostname", relaytest.HOSTNAME,
             "--port-offset", str(self.offset), "--drain-timeout", "2", "--next-hop-timeout", "5"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def admin():
            assert self.proc.poll() is None, f"{name} exited {self.proc.returncode}:\n{self.log()[-3000:]}"
            m = re.search(r'msg="admin listening" address=127\.0\.0\.1:(\d+)', self.log())
            return int(m.group(1)) if m else None

        self.admin_port = wait_for(f"{name}'s admin port", admin, timeout=10)

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

    def metric(self, name: str, **labels) -> float:
        return relaytest.Metrics(self.http("/metrics")[1]).value(name, **labels)

    def stop(self):
        relaytest.stop_process(self.proc)
        self._log.close()


def port_offset() -> int:
    """An offset that puts 2465, 2525 and 2587 on free ports outside the ephemeral range."""
    lo, hi = relaytest._ephemeral_range()
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        offset = rng.randrange(10000, 29000)
        ports = [p + offset for p in (2465, 2525, 2587)]
        if any(lo <= p <= hi for p in ports):
            continue
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("0.0.0.0", p))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free port offset")


# ----------------------------------------------------------------------------------- load

def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def conversation(port: int, source: str, *, tls=False, auth=None, login=False, mail=None, rcpts=(), body=None,
                 extra_auth_failures=0) -> list[str]:
    """One SMTP session; the status of every reply, stopping at the first refusal."""
    out: list[str] = []
    try:
        with RawSMTP(port, source=source) as c:
            g = c.greeting()
            out.append(g.status)
            if g.code != 220:
                return out
            c.ehlo()
            if tls:
                r = c.starttls()
                out.append(r.status)
                if r.code != 220:
                    return out
                c.ehlo()
            for _ in range(extra_auth_failures):
                r = c.auth_plain(auth[0], "Wrong-Password")
                out.append(r.status)
                if r.code != 535:
                    return out
            if auth:
                if login:
                    r = c.cmd("AUTH LOGIN")
                    if r.code == 334:
                        r = c.cmd(b64(auth[0]))
                    if r.code == 334:
                        r = c.cmd(b64(auth[1]))
                else:
                    r = c.auth_plain(*auth)
                out.append(r.status)
                if r.code != 235:
                    return out
            if mail:
                replies = c.send_message(mail, list(rcpts), body or message(test_id="dashboards"))
                out += [r.status for r in replies]
            try:
                c.cmd("QUIT", timeout=2)
            except (ConnectionClosed, TimeoutError, OSError):
                pass
    except (ConnectionClosed, TimeoutError, OSError) as e:
        out.append(f"closed: {type(e).__name__}")
    return out


def load_round(a: Relay, b: Relay, c: ClusterRelay | None) -> dict[str, list[str]]:
    """One round of the load: what each kind of session got."""
    pa, audit, partner, pb = a.port(2525), a.port(2600), a.port(2601), b.port(2587)
    ext = "someone@example.org"
    mx = ("mail.express@example.com", "MailExpress-Pass-001")
    bob = ("bob@example.com", "Bob-Pass-001")
    got = {
        # examples/003 on relay A
        "anonymous relay 1": conversation(pa, "127.0.0.17", mail="app@example.com", rcpts=[ext]),
        "anonymous relay 2": conversation(pa, "127.0.0.18", mail="app@example.com", rcpts=[ext]),
        "anonymous relay 3": conversation(pa, "127.0.0.19", mail="app@example.com", rcpts=[ext, "other@example.org"]),
        "local delivery": conversation(pa, "127.0.0.1", mail="a@internet.test", rcpts=["someone@example.com"]),
        "relay denied 1": conversation(pa, "127.0.0.1", mail="a@internet.test", rcpts=[ext]),
        "relay denied 2": conversation(pa, "127.0.0.2", mail="a@internet.test", rcpts=["x@elsewhere.test"]),
        "next hop defers": conversation(pa, "127.0.0.25", mail="app@example.com", rcpts=[ext]),
        "audit would refuse": conversation(audit, "127.0.0.1", mail="app@partner.test", rcpts=["someone@example.com"]),
        "no connector": conversation(partner, "127.0.0.1", mail="a@internet.test", rcpts=["someone@example.com"]),
        # examples/001 on relay B
        "auth plain": conversation(pb, "127.0.0.1", tls=True, auth=mx, mail="someone@example.com", rcpts=["x@external.test"]),
        "auth login": conversation(pb, "127.0.0.1", tls=True, auth=bob, login=True, mail="bob@example.com",
                                   rcpts=["x@external.test"]),
        "bad password": conversation(pb, "127.0.0.3", tls=True, auth=("bob@example.com", "Wrong-Password")),
        "lockout": conversation(pb, "127.0.0.4", tls=True, auth=("bob@example.com", "Wrong-Password"),
                                extra_auth_failures=2),
        "send-as refused": conversation(pb, "127.0.0.1", tls=True, auth=bob, mail="someone@example.com",
                                        rcpts=["x@external.test"]),
        "auth before tls": conversation(pb, "127.0.0.5", auth=bob),
        "anonymous submission": conversation(pb, "127.0.0.6", tls=True, mail="bob@example.com", rcpts=["x@external.test"]),
    }
    if c is not None:
        got["cluster local delivery"] = conversation(c.port(2525), "127.0.0.1", mail="a@internet.test",
                                                     rcpts=["someone@example.com"])
        got["cluster relay denied"] = conversation(c.port(2525), "127.0.0.1", mail="a@internet.test", rcpts=[ext])
    return got


EXPECT = {  # session -> the status its last reply starts with
    "anonymous relay 1": "250", "local delivery": "250", "relay denied 1": "550", "next hop defers": "4",
    "audit would refuse": "250", "auth plain": "250", "auth login": "250", "bad password": "535",
    "send-as refused": "550", "anonymous submission": "530", "cluster local delivery": "250",
    "cluster relay denied": "550",
}


# --------------------------------------------------------------------------------- cluster

def cluster_manifests(sink_port: int, *, tls_key: str | None = None, max_recipients: int | None = None) -> str:
    docs = []
    for f in sorted(CLUSTER_EXAMPLE.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if not d:
                continue
            d = copy.deepcopy(d)
            if d["kind"] == "ReceiveConnector":
                fwd = d["spec"].get("forwarding", {})
                if "smarthosts" in fwd:
                    fwd["smarthosts"] = [f"127.0.0.1:{sink_port}"]
                limits = d["spec"].setdefault("limits", {})
                limits.update({"tarpitInterval": "0s", "authTarpitInterval": "0s"})
                if max_recipients and d["metadata"]["name"] == "internet-bridgehead":
                    limits["maxRecipientsPerMessage"] = max_recipients
            if d["kind"] == "Secret" and tls_key and d.get("type") == "kubernetes.io/tls":
                d.setdefault("data", {})["tls.key"] = base64.b64encode(tls_key.encode()).decode()
                d.get("stringData", {}).pop("tls.key", None)
            docs.append(d)
    return yaml.safe_dump_all(docs)


# ------------------------------------------------------------------------------------ stack

EXTRA_CONNECTORS = [
    # Audit: anonymous clients off its list would be refused at MAIL FROM (anonymous_off_list);
    # the connector reports it and lets them through (to accepted domains only).
    {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ReceiveConnector", "metadata": {"name": "partner-audit"},
     "spec": {"bindings": ["0.0.0.0:2600"], "remoteIPRanges": ["127.0.0.48/29"], "ipRestrictionMode": "AnonymousOnly",
              "authMechanisms": ["Tls"], "permissionGroups": ["AnonymousUsers"], "enforcement": "Audit",
              "tls": {"secretName": "relay-tls"}, "forwarding": {"smarthosts": ["127.0.0.1:2526"]}}},
    # Nobody else has a connector on 2601: no_connector.
    {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ReceiveConnector", "metadata": {"name": "partner-only"},
     "spec": {"bindings": ["0.0.0.0:2601"], "remoteIPRanges": ["127.0.0.56/29"], "authMechanisms": ["Tls"],
              "permissionGroups": ["AnonymousUsers"], "tls": {"secretName": "relay-tls"},
              "forwarding": {"smarthosts": ["127.0.0.1:2526"]}}},
]


@dataclass
class Stack:
    prom: promql.Prometheus
    cluster: bool
    window_start: float
    eval_time: float = 0.0
    scraped: set[str] = field(default_factory=set)
    sessions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def known_missing(self, expr: str) -> str | None:
        """Why the expression cannot have data in this run (None: it must)."""
        if self.cluster:
            return None
        used = sorted({family(n) for n in promql.METRIC_NAME.findall(expr)} & set(CLUSTER_ONLY))
        return f"{', '.join(used)}: {CLUSTER_ONLY[used[0]]}" if used else None


def family(name: str) -> str:
    """A histogram's family name from its _bucket, _count or _sum series name."""
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in CLUSTER_ONLY:
            return name[: -len(suffix)]
    return name


@pytest.fixture(scope="module")
def stack(kube, crds, tmp_path_factory, request):  # noqa: F811
    work = tmp_path_factory.mktemp("dashboards")
    cluster = cluster_mode_available()
    notes: list[str] = []
    request.config._kuberelay_dashboard_notes = notes
    if not cluster:
        notes.append(f"{relay_binary()} has no --control-plane: no relay in cluster mode; the expressions "
                     f"using {', '.join(sorted(CLUSTER_ONLY))} are known-missing (xfailed, listed below)")
    stoppers = []
    try:
        sink = Sink(work)
        stoppers.append(sink.stop)
        grpc_port = relaytest.free_port()
        op = Operator(kube, work / "operator.log", "--no-events", "--policy-listen", f"127.0.0.1:{grpc_port}",
                      "--policy-insecure")
        stoppers.append(op.stop)
        op.wait_ready()
        kube.kubectl("create", "namespace", CLUSTER_NS)
        kube.apply_text(CLUSTER_NS, cluster_manifests(sink.port))
        # Compiled before relay C subscribes: its first snapshot has the connectors.
        wait_for("the operator to compile examples/002's risky variant",
                 lambda: op.metric("kuberelay_operator_objects", kind="ReceiveConnector", state="accepted") >= 3,
                 timeout=30)

        # externally-secured-relay's next hops: one that is down (nothing listens: connect errors),
        # then one that defers every message at the end of its data (transient errors, and the
        # client's message is deferred).
        dead = relaytest.free_port()
        deferring = Sink(work, reject_soft=".")
        stoppers.append(deferring.stop)

        def next_hop_down(files):
            for docs in files.values():
                for d in docs:
                    if d.get("kind") == "ReceiveConnector" and d["metadata"]["name"] == "externally-secured-relay":
                        d["spec"]["forwarding"]["smarthosts"] = [f"127.0.0.1:{dead}", f"127.0.0.1:{deferring.port}"]

        a = Relay("003-anonymous-relay-ip-restricted", work, sink, edit=next_hop_down,
                  extra_files={"partners.yaml": EXTRA_CONNECTORS})
        stoppers.append(a.stop)
        b = Relay("001-authenticated-submission", work, sink)
        stoppers.append(b.stop)
        c = None
        if cluster:
            c = ClusterRelay("relay-c", grpc_port, work)
            stoppers.append(c.stop)
            wait_for("relay-c to apply the operator's policy", lambda: c.http("/readyz")[0] == 200, timeout=30)

        # The labels the chart's ServiceMonitor/PodMonitor give (pool: from the pod label
        # kuberelay.io/pool; the relays here all serve the default pool).
        labels = {"namespace": "kuberelay"}
        relays = [(a.admin_port, {**labels, "pod": "relay-a", "pool": "default"}),
                  (b.admin_port, {**labels, "pod": "relay-b", "pool": "default"})]
        if c:
            relays.append((c.admin_port, {**labels, "pod": "relay-c", "pool": "default"}))
        prom = PrometheusServer(work, {"kuberelay-relay": relays,
                                       "kuberelay-operator": [(op.port, {**labels, "pod": "operator-0"})]},
                                rule_files=(promql.RULES_FILE,))
        stoppers.append(prom.stop)
        wait_for("every scrape target up",
                 lambda: (lambda t: len(t) == len(relays) + 1 and all(x["health"] == "up" for x in t))(prom.api.targets()),
                 timeout=20)
        s = Stack(prom=prom.api, cluster=cluster, window_start=time.time(), notes=notes)
        time.sleep(2)  # a first scrape of every series before the load

        for i in range(ROUNDS):
            s.sessions.append(load_round(a, b, c))
            if c is not None and i == 0:
                # A change the relay ACKs: a propagation time.
                applied = c.metric("kuberelay_policy_updates_total", result="applied")
                kube.apply_text(CLUSTER_NS, cluster_manifests(sink.port, max_recipients=40))
                wait_for("relay-c to ACK the change",
                         lambda: c.metric("kuberelay_policy_updates_total", result="applied") > applied, timeout=30)
            if c is not None and i == 1:
                # Two snapshots the relay cannot apply (NACKs), then the fix (an ACK).
                for n, recipients in ((1, 40), (2, 50)):
                    kube.apply_text(CLUSTER_NS, cluster_manifests(sink.port, tls_key=BROKEN_KEY,
                                                                  max_recipients=recipients))
                    wait_for(f"relay-c's NACK {n}",
                             lambda n=n: c.metric("kuberelay_policy_updates_total", result="rejected") >= n, timeout=30)
                    time.sleep(2.5)  # scraped in between: the operator's NACK counter visibly increases
                applied = c.metric("kuberelay_policy_updates_total", result="applied")
                kube.apply_text(CLUSTER_NS, cluster_manifests(sink.port, max_recipients=50))
                wait_for("relay-c to ACK the fix",
                         lambda: c.metric("kuberelay_policy_updates_total", result="applied") > applied, timeout=30)
            if i < ROUNDS - 1:
                time.sleep(ROUND_GAP)

        # Watches end and resume every 10-20 s (the Operator class's --min-watch-timeout 10).
        wait_for("a watch restart", lambda: op.metric("kuberelay_operator_watch_restarts_total") > 0, timeout=40)
        done = time.time()
        # Every target scraped twice after the load.
        wait_for("two scrapes after the load",
                 lambda: all(x.get("lastScrape") and _scrape_time(x["lastScrape"]) > done + 1.0
                             for x in prom.api.targets()), timeout=20)
        s.eval_time = time.time()
        for port in [p for p, _ in relays] + [op.port]:
            text = relaytest.Metrics(_get(f"http://127.0.0.1:{port}/metrics"))
            s.scraped |= {name for name, _, _ in text.samples}
        yield s
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print(f"stopping: {e}")


def _get(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def _scrape_time(rfc3339: str) -> float:
    from datetime import datetime
    # 2024-01-01T00:00:00.123456789Z: Python takes microseconds at most.
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return base.timestamp() + float("0" + (m.group(2) or ".0")[:7])


# ---------------------------------------------------------------------- checks of a result

def evaluate(stack: Stack, where: str, expr: str, legend: str = ""):
    query = promql.substitute(expr)
    try:
        result = stack.prom.query(query, stack.eval_time)
    except promql.PrometheusError as e:
        pytest.fail(f"{where}: Prometheus refused the expression: {e}\n  {query}", pytrace=False)
    if not result:
        reason = stack.known_missing(expr)
        if reason:
            stack.notes.append(f"known missing: {where}\n    {expr}\n    reason: {reason}")
            pytest.xfail(f"known missing: {reason}")
        pytest.fail(f"{where}: no data\n  {query}", pytrace=False)
    if not promql.finite(result):
        stack.notes.append(f"only NaN (no increase in the window): {where}\n    {query}")
    present = set().union(*(r["metric"].keys() for r in result))
    missing = promql.legend_labels(legend) - present
    assert not missing, f"{where}: the legend {legend!r} names labels no series has: {sorted(missing)}\n  {query}"
    return result


# ------------------------------------------------------------------- static files (no stack)

def rule_list() -> list[tuple[str, dict]]:
    doc = yaml.safe_load(promql.RULES_FILE.read_text())
    return [(g["name"], r) for g in doc["groups"] for r in g["rules"]]


def test_promtool_check_rules():
    assert Path(PROMTOOL).exists(), f"{PROMTOOL} not found (Debian package prometheus)"
    p = subprocess.run([PROMTOOL, "check", "rules", str(promql.RULES_FILE)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(rule_list())} rules found" in p.stdout, p.stdout


def test_alert_rules_have_the_documented_shape():
    anchors = {}
    problems = []
    names = [r.get("alert") for _, r in rule_list()]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    for group, r in rule_list():
        name = r.get("alert")
        where = f"{group}/{name}"
        if not name:
            problems.append(f"{where}: recording rules are not expected here")
            continue
        query, op, threshold = promql.split_comparison(r["expr"])
        if op is None:
            problems.append(f"{where}: expr is not `QUERY OP NUMBER`: {r['expr']!r}")
        if r.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{where}: severity label must be one of {sorted(SEVERITIES)}")
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{where}: no {key} annotation")
        url = ann.get("runbook_url", "")
        doc, _, anchor = url.partition("#")
        path = REPO / doc
        if not path.is_file() or not doc.startswith("docs/"):
            problems.append(f"{where}: runbook_url {url!r} is not a file under docs/")
            continue
        anchors.setdefault(path, promql.markdown_anchors(path))
        if anchor not in anchors[path]:
            problems.append(f"{where}: runbook_url {url!r}: no such heading (have {sorted(anchors[path])})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", promql.dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path):
    d = promql.load_dashboard(path)
    assert path.stem in EXPECTED_DASHBOARDS, f"{path.name}: add it to EXPECTED_DASHBOARDS and docs/dashboards.md"
    assert (d["uid"], d["title"]) == EXPECTED_DASHBOARDS[path.stem]
    assert 36 <= d["schemaVersion"] <= 39, d["schemaVersion"]
    assert "kuberelay" in d.get("tags", [])
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    problems = []
    ids = [p["id"] for p in promql.panels(d)]
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate panel ids {ids}")
    for p in promql.panels(d):
        g = p.get("gridPos", {})
        if not (0 <= g.get("x", -1) and g.get("w", 0) > 0 and g["x"] + g["w"] <= 24 and g.get("h", 0) > 0):
            problems.append(f"panel {p.get('title')}: gridPos {g}")
        if p["type"] in ("row", "text"):
            continue
        if not p.get("targets"):
            problems.append(f"panel {p['title']}: no targets")
        if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            problems.append(f"panel {p['title']}: datasource {p.get('datasource')}")
        for t in p.get("targets", []):
            if t.get("datasource", p["datasource"]) != p["datasource"]:
                problems.append(f"panel {p['title']} {t['refId']}: datasource {t.get('datasource')}")
            unknown = promql.variables_used(t["expr"]) - set(variables) - BUILTIN_VARIABLES
            unknown = {u for u in unknown if not u.isdigit()}
            if unknown:
                problems.append(f"panel {p['title']} {t['refId']}: undefined variables {sorted(unknown)}")
    for v in variables.values():
        if v["type"] == "query":
            if v.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
                problems.append(f"variable {v['name']}: datasource {v.get('datasource')}")
            unknown = promql.variables_used(promql.variable_query(v)[0]) - set(variables)
            if unknown:
                problems.append(f"variable {v['name']}: undefined variables {sorted(unknown)}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_docs_list_every_dashboard_and_alert():
    text = (REPO / "docs" / "dashboards.md").read_text()
    missing = [uid for uid, _ in EXPECTED_DASHBOARDS.values() if f"dashboards/{uid}.png" not in text]
    missing += [r["alert"] for _, r in rule_list() if f"`{r['alert']}`" not in text]
    assert not missing, f"docs/dashboards.md does not mention {missing}"


# ------------------------------------------------------------------- against Prometheus

def test_the_load_got_the_expected_replies(stack):
    problems = []
    for n, got in enumerate(stack.sessions):
        for name, want in EXPECT.items():
            if name in got and not (got[name] and got[name][-1].startswith(want)):
                problems.append(f"round {n + 1}, {name}: expected {want}..., got {got[name]}")
        lock = got["lockout"]
        if sum(s.startswith("535") for s in lock) < 3:
            problems.append(f"round {n + 1}, lockout: {lock}")
    assert not problems, "\n".join(problems)


def test_prometheus_evaluates_every_rule_without_error(stack):
    groups = stack.prom.rules()
    seen = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(seen) == {r["alert"] for _, r in rule_list()}, sorted(seen)
    bad = {n: (r["health"], r.get("lastError")) for n, r in seen.items() if r["health"] != "ok"}
    assert not bad, bad


@pytest.mark.parametrize("target", promql.all_targets(), ids=lambda t: t.id)
def test_panel_expression_returns_data(stack, target):
    evaluate(stack, target.where, target.expr, target.target.get("legendFormat", ""))


@pytest.mark.parametrize("rule", [r for _, r in rule_list()], ids=lambda r: r["alert"])
def test_alert_expression_returns_data(stack, rule):
    """The query under the condition (split_comparison) returns series."""
    query, op, threshold = promql.split_comparison(rule["expr"])
    assert op is not None, f"{rule['alert']}: not `QUERY OP NUMBER`"
    evaluate(stack, f"alert {rule['alert']} (condition `{op} {threshold:g}` removed)", query)


VARIABLES = [(path, v) for path in promql.dashboard_files()
             for v in promql.load_dashboard(path)["templating"]["list"] if v["type"] == "query"]


@pytest.mark.parametrize("path,var", VARIABLES, ids=[f"{p.stem}:{v['name']}" for p, v in VARIABLES])
def test_template_variable_has_values(stack, path, var):
    selector, label = promql.variable_query(var)
    result = evaluate(stack, f"dashboard {path.name}, variable ${var['name']}", selector)
    assert any(label in r["metric"] for r in result), \
        f"{path.name} ${var['name']}: no series of {selector} has the label {label}"


def _metric_users() -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for t in promql.all_targets():
        for n in promql.METRIC_NAME.findall(t.expr):
            users.setdefault(n, []).append(t.where)
    for path, v in VARIABLES:
        for n in promql.METRIC_NAME.findall(promql.variable_query(v)[0]):
            users.setdefault(n, []).append(f"{path.name} variable ${v['name']}")
    for _, r in rule_list():
        for n in promql.METRIC_NAME.findall(r["expr"]):
            users.setdefault(n, []).append(f"alert {r['alert']}")
    return users


METRIC_USERS = _metric_users()


@pytest.mark.parametrize("name", sorted(METRIC_USERS))
def test_metric_name_is_exported_by_a_process(stack, name):
    if name in stack.scraped:
        return
    reason = stack.known_missing(name)
    if reason:
        stack.notes.append(f"known missing metric name: {name} ({reason})")
        pytest.xfail(reason)
    close = difflib.get_close_matches(name, sorted(stack.scraped), n=3, cutoff=0.8)
    pytest.fail(f"{name} is in no process's /metrics (a typo?); used by:\n  " + "\n  ".join(METRIC_USERS[name])
                + f"\nsimilar exported names: {close}", pytrace=False)


# ------------------------------------------------------------------------- pictures, last

def plotting_python() -> str:
    candidates = [os.environ.get("KUBERELAY_PLOT_PYTHON"), sys.executable, "/usr/bin/python3",
                  "/var/tmp/relay-bench/venv/bin/python"]
    tried = []
    for py in candidates:
        if not py or py in tried or not Path(py).exists():
            continue
        tried.append(py)
        if subprocess.run([py, "-c", "import matplotlib"], capture_output=True, timeout=60).returncode == 0:
            return py
    pytest.fail("matplotlib cannot be imported by any of " + ", ".join(tried) + ": render.py needs it. Install it "
                "with `python3 -m venv /var/tmp/relay-bench/venv && /var/tmp/relay-bench/venv/bin/pip install "
                "matplotlib` (bench/run.sh makes that venv), or point KUBERELAY_PLOT_PYTHON at a Python that "
                "has it.", pytrace=False)


def test_render_dashboards_to_png(stack, tmp_path):
    # Into the test's own directory, so `make test` leaves the tree clean;
    # KUBERELAY_DASHBOARD_PNGS=docs refreshes the committed pictures in docs/dashboards/.
    out = promql.PNG_DIR if os.environ.get("KUBERELAY_DASHBOARD_PNGS") == "docs" else tmp_path
    python = plotting_python()
    started = time.time()
    p = subprocess.run([python, str(HERE / "render.py"), "--prometheus", stack.prom.url,
                        "--start", f"{stack.window_start - 2:.3f}", "--end", f"{stack.eval_time:.3f}",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"render.py exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    for path in promql.dashboard_files():
        png = out / f"{promql.load_dashboard(path)['uid']}.png"
        assert png.is_file() and png.stat().st_mtime >= started - 1, f"{png} not written"
        assert png.stat().st_size > 20_000, f"{png} is suspiciously small"

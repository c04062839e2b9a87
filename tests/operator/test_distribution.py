"""Policy distribution end to end (issue "Policy distribution"): a real kube-apiserver + etcd,
kuberelay-operator serving the gRPC policy channel with mutual TLS, two kuberelay-relay
processes in cluster mode (no manifests: everything they enforce comes over the channel) and
smtp-sink as their next hop, driven with kubectl and real SMTP clients.

* Before any policy, a relay is not ready and answers 421 4.3.2 (fail closed, temporarily).
* Each seed scenario's manifests, applied with kubectl, change what real clients may do on both
  relays; the objects' Ready condition and status.relays say both relays run them.
* A TLS Secret with a key OpenSSL refuses: both relays NACK, keep the previous policy (the
  same sessions still work) and the connector's Ready condition says so.
* The operator killed: relays keep serving; restarted: they resubscribe.
* A relay restarted while the operator is down stays not ready and answers 4xx.

The relays share one host, so each adds a port offset to every binding (--port-offset): relay A
serves 2525 on 12525, relay B on 22525.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from test_operator_apiserver import (EXAMPLES, GROUP, REPO, Kube, Operator, conditions, free_port,  # noqa: F401
                                     run, wait_for)
from test_operator_apiserver import crds, kube  # noqa: F401  (module fixtures: this module's own API server)

sys.path.insert(0, str(REPO / "tests" / "integration"))
import relaytest  # noqa: E402
from relaytest import RawSMTP, Sink, message  # noqa: E402

OFFSETS = {"relay-a": 10000, "relay-b": 20000}
SETTLE = 30


def relay_binary() -> Path:
    return relaytest.relay_binary()


# ------------------------------------------------------------------------------------- fixtures

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """The policy channel's CA, the operator's server certificate, one client certificate per
    relay."""
    d = tmp_path_factory.mktemp("policy-pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=kuberelay policy CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             cwd=d)
    for name, ext in (("operator", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
                      ("relay-a", "extendedKeyUsage=clientAuth\n"), ("relay-b", "extendedKeyUsage=clientAuth\n")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(ext)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    return d


class ClusterRelay:
    """kuberelay-relay in cluster mode (no manifests)."""

    def __init__(self, name: str, grpc_port: int, pki: Path, workdir: Path):
        self.name = name
        self.offset = OFFSETS[name]
        self.grpc_port = grpc_port
        self.pki = pki
        self.log_path = workdir / f"{name}.log"
        self.proc = None
        self.admin_port = 0
        self.start()

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(relay_binary()), "--control-plane", f"127.0.0.1:{self.grpc_port}",
             "--standby-ports", "2525,2587,2465",
             "--control-plane-ca", str(self.pki / "ca.crt"),
             "--control-plane-cert", str(self.pki / f"{self.name}.crt"),
             "--control-plane-key", str(self.pki / f"{self.name}.key"),
             "--pod-name", self.name, "--admin", "127.0.0.1:0", "--hostname", "relay.test",
             "--port-offset", str(self.offset), "--drain-timeout", "2", "--next-hop-timeout", "5"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        start = self.log().count('msg="admin listening"')

        def admin():
            assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}:\n{self.log()[-3000:]}"
            found = re.findall(r'msg="admin listening" address=127\.0\.0\.1:(\d+)', self.log())
            return int(found[-1]) if len(found) > start else None
        self.admin_port = wait_for(f"{self.name}'s admin port", admin, timeout=10)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, path):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def version(self) -> str | None:
        """The policy version in force (also when it has no connector for this relay's pool and
        the relay is therefore not ready)."""
        status, body = self.http("/metrics")
        if status != 200:
            return None
        found = [labels["version"] for labels, value in relaytest.Metrics(body).series("kuberelay_policy_version_info")
                 if value == 1 and labels.get("version")]
        return found[0] if len(found) == 1 else None

    def metric(self, name, **labels) -> float:
        return relaytest.Metrics(self.http("/metrics")[1]).value(name, **labels)

    def port(self, example_port: int) -> int:
        return example_port + self.offset


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    s = Sink(tmp_path_factory.mktemp("sink"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def plane(kube, crds, pki, sink, tmp_path_factory):  # noqa: F811
    """The operator with the policy channel, and two relays subscribed to it."""
    work = tmp_path_factory.mktemp("plane")
    grpc_port = free_port()
    tls = ["--policy-listen", f"127.0.0.1:{grpc_port}", "--policy-tls-cert", str(pki / "operator.crt"),
           "--policy-tls-key", str(pki / "operator.key"), "--policy-client-ca", str(pki / "ca.crt")]
    state = {"operator": Operator(kube, work / "operator.log", "--no-events", *tls), "tls": tls, "work": work,
             "grpc_port": grpc_port}
    relays = []
    try:
        state["operator"].wait_ready()
        relays = [ClusterRelay(name, grpc_port, pki, work) for name in OFFSETS]
        state["relays"] = relays
        yield state
    finally:
        for r in relays:
            r.stop()
        state["operator"].stop()


def manifests(folder: Path, sink_port: int, drop: Path) -> str:
    """The example's manifests, with the smarthosts pointed at the test's smtp-sink."""
    docs = []
    for f in sorted(folder.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if not d:
                continue
            fwd = d.get("spec", {}).get("forwarding")
            if d["kind"] == "ReceiveConnector" and fwd is not None:
                if "smarthosts" in fwd:
                    fwd["smarthosts"] = [f"127.0.0.1:{sink_port}"]
                if "dropDirectory" in fwd:
                    fwd["dropDirectory"] = str(drop)
                d["spec"].setdefault("limits", {}).update({"tarpitInterval": "0s", "authTarpitInterval": "0s"})
            docs.append(d)
    return yaml.safe_dump_all(docs)


def operator_version(plane) -> str | None:
    return plane["operator"].policy_version()


def all_ready(kube, ns: str, relays: int):
    items = kube.objects(ns)
    if not items:
        return None
    for o in items:
        st = o.get("status", {})
        if st.get("observedGeneration") != o["metadata"]["generation"]:
            return None
        if conditions(o).get("Ready", {}).get("status") != "True" or st.get("relays") != {"total": relays, "applied": relays}:
            return None
    return items


def apply_scenario(kube, plane, sink, ns: str, folder: Path, tmp: Path):
    kube.kubectl("create", "namespace", ns)
    kube.apply_text(ns, manifests(folder, sink.port, tmp))
    return wait_for(f"{ns}: Ready on both relays", lambda: all_ready(kube, ns, 2), timeout=SETTLE)


def remove_scenario(kube, ns: str):
    # The objects, not the namespace: this API server runs without kube-controller-manager, so a
    # namespace would stay Terminating.
    kube.kubectl("delete", "-n", ns, "--wait=true",
                 ",".join(f"{k}.{GROUP}" for k in ("receiveconnectors", "senderpermissions", "accepteddomains"))
                 + ",secrets", "--all", timeout=120)


# ------------------------------------------------------------------------------------ sessions

def session(relay: ClusterRelay, port: int, source: str, mail: str, rcpt: str, *, tls=False, auth=None,
            data: bytes | None = None) -> str:
    """One SMTP conversation; returns the status of the decisive reply ("250 2.0.0" when the
    message was taken, else the first refusal)."""
    with RawSMTP(relay.port(port), source=source) as c:
        g = c.greeting()
        if g.code != 220:
            return g.status
        c.ehlo()
        if tls:
            r = c.starttls()
            if r.code != 220:
                return r.status
            c.ehlo()
        if auth:
            r = c.auth_plain(*auth)
            if r.code != 235:
                return r.status
        replies = c.send_message(mail, [rcpt], data or message(test_id=f"{relay.name}-{port}-{rcpt}"))
        for r in replies:
            if r.code >= 400:
                return r.status
        return replies[-1].status


# Per seed: (port, source, tls, auth, mail, rcpt, expected status prefix)
SCENARIOS = {
    "000-anonymous-web-app": [
        (2587, "127.0.0.1", True, ("anonuser@example.com", "AnonUser-Pass-000"), "anonuser@example.com",
         "someone@example.org", "250"),
        (2587, "127.0.0.1", True, None, "anonuser@example.com", "someone@example.com", "530 5.7.1"),
        (2587, "127.0.0.1", True, ("anonuser@example.com", "AnonUser-Pass-000"), "alice@example.com",
         "someone@example.com", "550 5.7.1"),
    ],
    "001-authenticated-submission": [
        (2587, "127.0.0.1", True, ("mail.express@example.com", "MailExpress-Pass-001"), "someone@example.com",
         "x@external.test", "250"),
        (2587, "127.0.0.1", True, ("mail.express@example.com", "MailExpress-Pass-001"), "someone@partner.example.org",
         "x@external.test", "250"),
        (2587, "127.0.0.1", True, ("bob@example.com", "Bob-Pass-001"), "someone@example.com", "x@external.test",
         "550 5.7.1"),
        (2587, "127.0.0.1", True, None, "bob@example.com", "x@external.test", "530 5.7.1"),
    ],
    "002-anonymous-by-connector-role": [
        (2525, "127.0.0.1", False, None, "a@internet.test", "someone@example.com", "250"),
        (2525, "127.0.0.1", False, None, "a@internet.test", "someone@example.org", "550"),
        (2525, "127.0.0.33", False, None, "a@internet.test", "someone@example.com", "530 5.7.1"),
        (2587, "127.0.0.1", False, None, "a@internet.test", "someone@example.com", "530"),
    ],
    "003-anonymous-relay-ip-restricted": [
        (2525, "127.0.0.17", False, None, "app@example.com", "someone@example.org", "250"),
        (2525, "127.0.0.1", False, None, "app@example.com", "someone@example.org", "550"),
        (2525, "127.0.0.1", False, None, "app@example.com", "someone@example.com", "250"),
    ],
    "004-ip-restriction-flag": [
        (2525, "127.0.0.40", False, None, "app@customer.test", "dave@example.com", "250"),
        (2525, "127.0.0.41", False, None, "app@customer.test", "dave@example.com", "530 5.7.3"),
        (2525, "127.0.0.41", True, ("dave@example.com", "Dave-Pass-004"), "dave@example.com", "x@elsewhere.test",
         "250"),
    ],
}


# --------------------------------------------------------------------------------------- tests

def restart_operator(kube, plane):  # noqa: F811
    plane["operator"] = Operator(kube, plane["work"] / f"operator-{time.monotonic_ns()}.log", "--no-events",
                                 *plane["tls"])
    plane["operator"].wait_ready()


def same_version(relays):
    versions = {r.version() for r in relays}
    return versions.pop() if len(versions) == 1 and None not in versions else None


def test_relays_subscribe_over_mutual_tls_and_apply_the_policy(plane):
    version = wait_for("both relays on one version", lambda: same_version(plane["relays"]))
    for r in plane["relays"]:
        assert r.metric("kuberelay_control_plane_connected") == 1
        assert r.metric("kuberelay_policy_version_info", version=version) == 1
    assert plane["operator"].metric("kuberelay_operator_relays_connected", pool="default") == 2


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_seed_scenario_is_enforced_by_both_relays(kube, plane, sink, tmp_path, scenario):  # noqa: F811
    ns = "seed-" + scenario[:3]
    items = apply_scenario(kube, plane, sink, ns, EXAMPLES / scenario, tmp_path)
    try:
        assert wait_for("both relays on one version", lambda: same_version(plane["relays"]))
        for relay in plane["relays"]:
            for port, source, tls, auth, mail, rcpt, want in SCENARIOS[scenario]:
                got = session(relay, port, source, mail, rcpt, tls=tls, auth=auth)
                assert got.startswith(want), (relay.name, port, source, auth, mail, rcpt, got)
        assert all(o["status"]["relays"] == {"total": 2, "applied": 2} for o in items)
    finally:
        remove_scenario(kube, ns)


BROKEN_KEY = "-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"


def test_a_snapshot_the_relays_cannot_apply_is_nacked_and_the_previous_policy_stays(kube, plane, sink, tmp_path):  # noqa: F811
    ns = "nack"
    apply_scenario(kube, plane, sink, ns, EXAMPLES / "003-anonymous-relay-ip-restricted", tmp_path)
    try:
        good = wait_for("both relays on one version", lambda: same_version(plane["relays"]))
        secret = kube.get_json("secret", "relay-tls", "-n", ns)
        certificate = base64.b64decode(secret["data"]["tls.crt"]).decode()
        # PEM-shaped, so the compiler takes it; OpenSSL refuses it on the relays.
        kube.apply_text(ns, yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                            "metadata": {"name": "relay-tls"},
                                            "data": {"tls.crt": base64.b64encode(certificate.encode()).decode(),
                                                     "tls.key": base64.b64encode(BROKEN_KEY.encode()).decode()}}))

        def rejected():
            rc = kube.get_json(f"receiveconnectors.{GROUP}", "anonymous-relay", "-n", ns)
            ready = conditions(rc).get("Ready", {})
            return rc if ready.get("reason") == "RelayRejected" else None

        rc = wait_for("the connector's Ready condition to report the NACK", rejected)
        ready = conditions(rc)["Ready"]
        assert ready["status"] == "False"
        assert "2 relay(s)" in ready["message"] and "keep the previous one" in ready["message"], ready
        assert "tls" in ready["message"].lower(), ready
        assert rc["status"]["relays"] == {"total": 2, "applied": 0}
        for r in plane["relays"]:
            assert r.version() == good  # still in force
            assert r.metric("kuberelay_policy_updates_total", result="rejected") >= 1
            assert session(r, 2525, "127.0.0.17", "app@example.com", "someone@example.org").startswith("250")
        assert plane["operator"].metric("kuberelay_operator_relay_updates_total", result="rejected") >= 2
        # The fix applies everywhere.
        kube.apply_text(ns, manifests(EXAMPLES / "003-anonymous-relay-ip-restricted", sink.port, tmp_path))
        wait_for("Ready again on both relays", lambda: all_ready(kube, ns, 2), timeout=SETTLE)
        assert wait_for("both relays on one version", lambda: same_version(plane["relays"])) == good
    finally:
        remove_scenario(kube, ns)


def test_relays_keep_serving_without_the_operator_and_resubscribe(kube, plane, sink, tmp_path):  # noqa: F811
    ns = "outage"
    apply_scenario(kube, plane, sink, ns, EXAMPLES / "003-anonymous-relay-ip-restricted", tmp_path)
    try:
        version = wait_for("both relays on one version", lambda: same_version(plane["relays"]))
        plane["operator"].proc.kill()  # no goodbye
        plane["operator"].proc.wait(timeout=10)
        for r in plane["relays"]:
            wait_for(f"{r.name} to notice", lambda r=r: r.metric("kuberelay_control_plane_connected") == 0,
                     timeout=40)
            assert r.version() == version
            assert session(r, 2525, "127.0.0.17", "app@example.com", "someone@example.org").startswith("250")
            assert session(r, 2525, "127.0.0.1", "app@example.com", "someone@example.org").startswith("550")

        # A relay restarted meanwhile has nothing to enforce: not ready, and 4xx on its ports.
        late = plane["relays"][1]
        late.stop()
        late.start()
        time.sleep(1)
        assert late.http("/readyz")[0] == 503
        assert session(late, 2525, "127.0.0.17", "app@example.com", "someone@example.org").startswith("421 4.3.2")

        restart_operator(kube, plane)
        for r in plane["relays"]:
            wait_for(f"{r.name} to resubscribe", lambda r=r: r.metric("kuberelay_control_plane_connected") == 1,
                     timeout=40)
        assert wait_for("both relays on one version", lambda: same_version(plane["relays"])) == version
        assert session(late, 2525, "127.0.0.17", "app@example.com", "someone@example.org").startswith("250")
        wait_for("status.relays back to 2/2", lambda: all_ready(kube, ns, 2), timeout=SETTLE)
    finally:
        remove_scenario(kube, ns)

"""The Helm chart against a real kube-apiserver + etcd (scripts/kube-env.sh, started on 127.0.0.1
for this module and always stopped), with the CRDs of crds/ installed.

* Every rendered manifest, for the default values, for tests/helm/values-everything.yaml (with and
  without PodMonitors) and for Kubernetes 1.27, passes `kubectl apply --server-side
  --dry-run=server` without a warning. The Prometheus Operator's and cert-manager's kinds are
  validated against the small stand-in CRDs of minimal-crds.yaml (say so: they only check the
  top-level shape).
* `helm install` works against the real API server; NOTES.txt tells what to apply next, and the
  example policy it prints is valid. `helm upgrade` keeps the generated policy-channel
  certificates (lookup); deleting them and upgrading issues new ones.
* The API server's own RBAC evaluation (kubectl auth can-i as the ServiceAccounts) grants the
  operator what it needs and nothing around it; the relays get nothing.
* The real binaries with what the chart installed: kuberelay-operator with the operator
  ServiceAccount's token (so only the chart's RBAC) and the Deployment's own flags, environment
  and server certificate; kuberelay-relay with its Deployment's flags and the client certificate,
  dialling the policy channel by a name in the server certificate (localhost, added with
  policyTLS.extraDNSNames; the pods use the Service name). The quickstart policy applied with
  kubectl reaches the relay, an SMTP client's message is accepted, the objects report Ready with
  the relay counted, a refused object gets a Warning Event, and the operator holds its Lease.
  Only the listen addresses, the certificate file paths and a port offset are changed.
* `helm uninstall` removes the release and keeps the CRDs.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helmlib import CHART, MONITORING, REPO, container, everything, flags, helm, one, render_text

sys.path.insert(0, str(REPO / "tests" / "operator"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
from test_operator_apiserver import Operator, conditions, free_port, wait_for  # noqa: E402
from test_operator_apiserver import crds, kube  # noqa: E402,F401  (module fixtures: this module's own API server)
import relaytest  # noqa: E402

HERE = Path(__file__).resolve().parent
NS = "kuberelay"          # the release's namespace
RELEASE = "kr"
FULL = "kr-kuberelay"
APPS = "mail-apps"        # where the policy objects go (the operator watches every namespace)
MINIMAL_CRDS = HERE / "minimal-crds.yaml"
TLS_DIR = "/etc/kuberelay/policy-tls"


@pytest.fixture(scope="module")
def cluster(kube, crds):  # noqa: F811
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(MINIMAL_CRDS.read_text()) if d]
    kube.kubectl("apply", "--server-side", "--field-manager=kuberelay-tests", "-f", MINIMAL_CRDS)
    kube.kubectl("wait", "--for", "condition=established", "--timeout=60s", *[f"crd/{n}" for n in names],
                 timeout=90)
    for ns in ("mail", "mail-a", "mail-b", "monitoring", NS, APPS):
        kube.kubectl("create", "namespace", ns)
    return kube


class Helm:
    def __init__(self, kube, home: Path):
        self.kube = kube
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(kube.kubeconfig)}

    def __call__(self, *args, check=True, timeout=180):
        proc = subprocess.run([helm(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env=self.env, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
        return proc


# ---------------------------------------------------------------------- server-side dry-run

DRY_RUNS = {
    "default": lambda: render_text(*MONITORING),
    "everything": lambda: render_text(*everything()),
    "everything-podmonitors": lambda: render_text(*everything(
        "--set", "metrics.serviceMonitor.enabled=false,metrics.podMonitor.enabled=true")),
    "kubernetes-1.27": lambda: render_text(*MONITORING, kube_version="1.27.0"),
}


@pytest.mark.parametrize("case", list(DRY_RUNS))
def test_server_side_dry_run(cluster, case, tmp_path):
    text = DRY_RUNS[case]()
    docs = [d for d in yaml.safe_load_all(text) if d]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    proc = cluster.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=helm-tests",
                           "-f", path, check=False)
    assert proc.returncode == 0, f"{case}: the API server refused the chart:\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == len(docs) and all("(server dry run)" in line for line in lines), proc.stdout
    assert "Warning" not in proc.stderr, proc.stderr
    kinds = {d["kind"] for d in docs}
    if case.startswith("everything"):
        assert {"Certificate", "Issuer", "NetworkPolicy", "HorizontalPodAutoscaler", "PrometheusRule"} <= kinds
        assert ("PodMonitor" if case.endswith("podmonitors") else "ServiceMonitor") in kinds
    else:
        assert "ServiceMonitor" in kinds


# --------------------------------------------------------------------- install and upgrade

@pytest.fixture(scope="module")
def release(cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("helm-home")
    h = Helm(cluster, home)
    values = home / "values.yaml"
    values.write_text(yaml.safe_dump({"policyTLS": {"extraDNSNames": ["localhost"]}}))
    installed = h("install", RELEASE, CHART, "--namespace", NS, "-f", values)
    return {"helm": h, "values": values, "install": installed}


def secrets(kube) -> dict[str, dict]:
    return {name: kube.get_json("secret", name, "-n", NS)["data"] for name in
            (f"{FULL}-policy-server", f"{FULL}-policy-client")}


def test_install_notes_say_what_to_apply_next(release, cluster):
    notes = release["install"].stdout
    assert "STATUS: deployed" in notes
    for needle in ("kubectl apply -n kuberelay -f -", "kubectl get receiveconnectors", "/refusals",
                   f"{FULL}-smtp.kuberelay.svc", "NOT READY until the operator has sent them a policy"):
        assert needle in notes, f"NOTES.txt lacks {needle!r}:\n{notes}"
    # The example policy in the notes is valid against the CRDs.
    example = re.search(r"<<'YAML' \| kubectl apply -n kuberelay -f -\n(.*?)\nYAML\n", notes, re.S)
    assert example, notes
    docs = [d for d in yaml.safe_load_all(example.group(1)) if d]
    assert [d["kind"] for d in docs] == ["ReceiveConnector", "SenderPermission", "AcceptedDomain"]
    proc = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-n", APPS, "-f", "-",
                           input_text=example.group(1), check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(cluster.get_json("deployments", "-n", NS)["items"]) == 2


def test_upgrade_keeps_the_generated_certificates(release, cluster):
    h = release["helm"]
    before = secrets(cluster)
    h("upgrade", RELEASE, CHART, "--namespace", NS, "-f", release["values"], "--set", "operator.logLevel=debug")
    assert secrets(cluster) == before, "helm upgrade replaced the policy channel's certificates"
    manifest = h("get", "manifest", RELEASE, "--namespace", NS).stdout
    assert "--log-level=debug" in manifest
    # Delete them and upgrade: new ones, from a new CA.
    cluster.kubectl("delete", "secret", "-n", NS, f"{FULL}-policy-server", f"{FULL}-policy-client")
    h("upgrade", RELEASE, CHART, "--namespace", NS, "-f", release["values"])
    after = secrets(cluster)
    assert after[f"{FULL}-policy-server"]["ca.crt"] != before[f"{FULL}-policy-server"]["ca.crt"]
    assert after[f"{FULL}-policy-server"]["ca.crt"] == after[f"{FULL}-policy-client"]["ca.crt"]


# --------------------------------------------------------------------------- RBAC (can-i)

OPERATOR_MAY = [
    ("list", "receiveconnectors.smtp.kuberelay.io", APPS), ("watch", "senderpermissions.smtp.kuberelay.io", APPS),
    ("get", "accepteddomains.smtp.kuberelay.io", "default"), ("list", "receiveconnectors.smtp.kuberelay.io", None),
    ("patch", "receiveconnectors.smtp.kuberelay.io/status", APPS),
    ("update", "accepteddomains.smtp.kuberelay.io/status", APPS),
    ("list", "secrets", None), ("watch", "secrets", APPS), ("get", "secrets", APPS),
    ("create", "events", APPS), ("patch", "events", APPS),
    ("get", "customresourcedefinitions.apiextensions.k8s.io/receiveconnectors.smtp.kuberelay.io", None),
    ("create", "leases.coordination.k8s.io", NS),
    ("get", f"leases.coordination.k8s.io/{FULL}-operator", NS),
    ("update", f"leases.coordination.k8s.io/{FULL}-operator", NS),
]
OPERATOR_MAY_NOT = [
    ("create", "receiveconnectors.smtp.kuberelay.io", APPS), ("update", "receiveconnectors.smtp.kuberelay.io", APPS),
    ("patch", "senderpermissions.smtp.kuberelay.io", APPS), ("delete", "accepteddomains.smtp.kuberelay.io", APPS),
    ("create", "secrets", APPS), ("update", "secrets", APPS), ("delete", "secrets", APPS),
    ("list", "pods", APPS), ("list", "configmaps", APPS), ("delete", "events", APPS),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
    ("get", "customresourcedefinitions.apiextensions.k8s.io/certificates.cert-manager.io", None),
    ("update", "customresourcedefinitions.apiextensions.k8s.io/receiveconnectors.smtp.kuberelay.io", None),
    ("create", "leases.coordination.k8s.io", APPS), ("update", "leases.coordination.k8s.io/other", NS),
    ("delete", f"leases.coordination.k8s.io/{FULL}-operator", NS), ("list", "leases.coordination.k8s.io", NS),
    ("create", "clusterroles.rbac.authorization.k8s.io", None),
]


def can_i(kube, sa, verb, resource, ns) -> bool:
    subresource = []
    if resource.count("/") and resource.split("/")[-1] == "status":
        resource, subresource = resource.rsplit("/", 1)[0], ["--subresource=status"]
    scope = ["-n", ns] if ns else ["-A"] if "customresourcedefinitions" not in resource and "clusterroles" not in resource else []
    proc = kube.kubectl("auth", "can-i", verb, resource, *subresource, *scope,
                        f"--as=system:serviceaccount:{NS}:{sa}", check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stdout + proc.stderr
    return proc.stdout.strip() == "yes"


def test_rbac_grants_the_operator_what_it_needs_and_nothing_around_it(release, cluster):
    wrong = [f"may not {v} {r} in {ns or 'all namespaces'}" for v, r, ns in OPERATOR_MAY
             if not can_i(cluster, f"{FULL}-operator", v, r, ns)]
    wrong += [f"may {v} {r} in {ns or 'all namespaces'}" for v, r, ns in OPERATOR_MAY_NOT
              if can_i(cluster, f"{FULL}-operator", v, r, ns)]
    assert not wrong, "the operator's ServiceAccount " + "; ".join(wrong)
    relay_can = [f"{v} {r}" for v, r, ns in OPERATOR_MAY if can_i(cluster, f"{FULL}-relay", v, r, ns)]
    assert not relay_can, f"the relays' ServiceAccount may {relay_can}"


# ----------------------------------------------------------------- the binaries, for real

def manifest_docs(release) -> list[dict]:
    text = release["helm"]("get", "manifest", RELEASE, "--namespace", NS).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def write_tls(kube, secret: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in kube.get_json("secret", secret, "-n", NS)["data"].items():
        (directory / key).write_bytes(base64.b64decode(value))
        (directory / key).chmod(0o600)
    return directory


def remap(args: list[str], replace: dict[str, str], tls: Path) -> list[str]:
    """The Deployment's arguments with listen addresses and certificate paths made local."""
    out = []
    for a in args:
        flag, _, value = a.partition("=")
        if flag in replace:
            if replace[flag] is not None:
                out.append(f"{flag}={replace[flag]}")
        elif value.startswith(TLS_DIR + "/"):
            out.append(f"{flag}={tls / value[len(TLS_DIR) + 1:]}")
        else:
            out.append(a)
    return out


def env_of(c: dict, pod: str) -> dict[str, str]:
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.namespace": NS, "metadata.name": pod}[path]
    return env


def sa_kubeconfig(kube, sa: str, path: Path) -> Path:
    token = kube.kubectl("create", "token", sa, "-n", NS, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": cluster["name"], "user": sa}}],
        "current-context": sa}))
    return path


def port_offset() -> int:
    """An offset that makes 2525, 2587 and 2465 free ports on 127.0.0.1."""
    for offset in range(40000, 62000, 1111):
        try:
            for p in (2525, 2587, 2465):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + offset))
            return offset
        except OSError:
            continue
    raise AssertionError("no free port offset")


class Relay:
    def __init__(self, args: list[str], env: dict, log: Path):
        self.log_path = log
        self.fh = log.open("wb")
        self.proc = subprocess.Popen([str(relaytest.relay_binary()), *args], stdout=self.fh,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env})

        def admin():
            assert self.proc.poll() is None, f"the relay exited {self.proc.returncode}:\n{self.log()}"
            found = re.findall(r'msg="admin listening" address=127\.0\.0\.1:(\d+)', self.log())
            return int(found[-1]) if found else None
        self.admin_port = wait_for("the relay's admin port", admin, timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def http(self, path):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self, timeout) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError(f"the relay did not stop within {timeout}s of SIGTERM:\n{self.log()}")
        self.fh.close()
        return self.proc.returncode


def quickstart(offset: int, drop: Path) -> str:
    docs = []
    for f in sorted((REPO / "examples" / "quickstart").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if not d:
                continue
            if d["kind"] == "ReceiveConnector":
                d["spec"]["bindings"] = ["127.0.0.1:2525"]  # + the relay's port offset
                d["spec"]["forwarding"] = {"dropDirectory": str(drop)}
                d["spec"].setdefault("limits", {}).update({"tarpitInterval": "0s"})
            docs.append(d)
    # Refused by the compiler (no such connector): the operator must be able to say so in an Event.
    docs.append({"apiVersion": "smtp.kuberelay.io/v1alpha1", "kind": "SenderPermission",
                 "metadata": {"name": "names-a-missing-connector"},
                 "spec": {"connector": "no-such-connector", "principal": "Anonymous",
                          "extendedRights": ["AcceptAnyRecipient"]}})
    return yaml.safe_dump_all(docs)


def test_operator_and_relay_run_with_what_the_chart_installed(release, cluster, tmp_path, monkeypatch):
    docs = manifest_docs(release)
    op_c = container(one(docs, "Deployment", f"{FULL}-operator"), "operator")
    relay_c = container(one(docs, "Deployment", f"{FULL}-relay"), "relay")
    server_tls = write_tls(cluster, f"{FULL}-policy-server", tmp_path / "server")
    client_tls = write_tls(cluster, f"{FULL}-policy-client", tmp_path / "client")
    kubeconfig = sa_kubeconfig(cluster, f"{FULL}-operator", tmp_path / "operator.kubeconfig")

    grpc_port = free_port()
    op_args = remap(op_c["args"], {"--admin": None,  # the test's Operator picks its own admin port
                                   "--policy-listen": f"127.0.0.1:{grpc_port}"}, server_tls)
    for key, value in env_of(op_c, f"{FULL}-operator-test-0").items():
        monkeypatch.setenv(key, value)
    operator = Operator(cluster, tmp_path / "operator.log", *op_args, kubeconfig=kubeconfig)
    relay = None
    try:
        operator.wait_ready(timeout=60)
        lease = wait_for("the operator's Lease", lambda: cluster.get_json(
            "lease", f"{FULL}-operator", "-n", NS)["spec"].get("holderIdentity"), timeout=30)
        assert lease.startswith(f"{FULL}-operator-test-0"), lease

        offset = port_offset()
        relay_args = remap(relay_c["args"], {"--admin": "127.0.0.1:0",
                                             "--control-plane": f"localhost:{grpc_port}"}, client_tls)
        relay = Relay([*relay_args, f"--port-offset={offset}"], env_of(relay_c, f"{FULL}-relay-test-0"),
                      tmp_path / "relay.log")
        drop = tmp_path / "drop"
        drop.mkdir()
        cluster.apply_text(APPS, quickstart(offset, drop))

        def ready_everywhere():
            items = cluster.objects(APPS)
            good = [o for o in items if o["metadata"]["name"] != "names-a-missing-connector"]
            if len(good) != 3:
                return None
            for o in good:
                st = o.get("status", {})
                if conditions(o).get("Ready", {}).get("status") != "True" or st.get("relays") != {"total": 1, "applied": 1}:
                    return None
            return good
        objects = wait_for("Ready, on the relay", ready_everywhere, timeout=45)
        status, body = relay.http("/readyz")
        assert status == 200 and body.split()[1] == operator.policy_version(), (status, body)

        with smtplib.SMTP("127.0.0.1", 2525 + offset, timeout=15) as smtp:
            smtp.ehlo("client.test")
            refused = smtp.sendmail("app@example.com", ["someone@example.net"],
                                    b"Subject: through the chart\r\n\r\nhello\r\n")
            assert refused == {}
        assert wait_for("the message in the drop directory", lambda: list(drop.iterdir()), timeout=10)
        connector = next(o for o in objects if o["kind"] == "ReceiveConnector")
        # status.policyVersion is written: the operator could read the CRD (get by name).
        assert connector["status"].get("policyVersion"), connector["status"]

        def warning_event():
            events = cluster.get_json("events", "-n", APPS)["items"]
            return [e for e in events if e["involvedObject"]["name"] == "names-a-missing-connector"
                    and e["type"] == "Warning"]
        assert wait_for("a Warning Event for the refused SenderPermission", warning_event, timeout=30)
        log = operator.logs()
        assert not re.search(r"\b403\b|forbidden", log, re.I), f"the operator was refused something:\n{log}"
    finally:
        code = relay.stop(timeout=int(flags(relay_c)["--drain-timeout"]) + 10) if relay else 0
        op_code = operator.stop()
        print(f"\n--- operator log ---\n{operator.logs()[-3000:]}")
        if relay:
            print(f"\n--- relay log ---\n{relay.log()[-3000:]}")
    assert code == 0, f"the relay exited {code} after SIGTERM"
    assert op_code == 0, f"the operator exited {op_code} after SIGTERM"


def test_uninstall_keeps_the_crds(release, cluster):
    release["helm"]("uninstall", RELEASE, "--namespace", NS, "--wait", "--timeout", "60s")
    assert cluster.get_json("deployments,services,secrets,roles", "-n", NS, "-l",
                            f"app.kubernetes.io/instance={RELEASE}")["items"] == []
    assert not cluster.get_json("clusterroles", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    names = {c["metadata"]["name"] for c in cluster.get_json("crd")["items"]}
    assert {"receiveconnectors.smtp.kuberelay.io", "senderpermissions.smtp.kuberelay.io",
            "accepteddomains.smtp.kuberelay.io"} <= names

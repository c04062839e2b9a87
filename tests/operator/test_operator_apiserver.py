"""kuberelay-operator against a real kube-apiserver + etcd (scripts/kube-env.sh).

The servers are built once from the Go module proxy and cached (~/.cache/kuberelay), started on
127.0.0.1 in a temporary directory and always stopped at the end. The CRDs from crds/ are
installed, then kuberelay-operator runs against them (binary: $KUBERELAY_OPERATOR, else
$KUBERELAY_BUILD/operator/kuberelay-operator, else build/operator/kuberelay-operator) and is
stopped by PID. Every wait is bounded.

* examples/003 applied: every object gets observedGeneration, Accepted=True and the policy
  version (status.policyVersion where the CRD has the field, the Accepted message everywhere);
* an update changes the policy version; a delete changes the version the others report;
* objects the schema accepts but the compiler refuses (a SenderPermission naming a missing
  connector, a connector whose TLS Secret is missing) get Accepted=False with the field path,
  and a Warning Event, while the others stay Accepted=True;
* the risky seed-002 variant gets the analyzer's warnings as conditions (and Events);
* nothing changes -> no status is rewritten (resourceVersions stable over several watch cycles);
* the watch survives restart-apiserver, and a compaction (410 Gone -> relist);
* SIGTERM: clean exit 0.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE_ENV = REPO / "scripts" / "kube-env.sh"
CRD_DIR = REPO / "crds"
EXAMPLES = REPO / "examples"
GROUP = "smtp.kuberelay.io"
KINDS = ("receiveconnectors", "senderpermissions", "accepteddomains")
INSTALL_TIMEOUT = int(os.environ.get("KUBE_ENV_INSTALL_TIMEOUT", "7200"))
KUBECTL_TIMEOUT = 90
MIN_WATCH_TIMEOUT = 10  # seconds: watches end and resume every 10-20 s during the tests
SETTLE = 30  # seconds: the longest any status may take to follow a change
VERSION_RE = re.compile(r"sha256:[0-9a-f]{16}")


def operator_binary() -> Path:
    if os.environ.get("KUBERELAY_OPERATOR"):
        return Path(os.environ["KUBERELAY_OPERATOR"])
    if os.environ.get("KUBERELAY_BUILD"):
        return Path(os.environ["KUBERELAY_BUILD"]) / "operator" / "kuberelay-operator"
    return REPO / "build" / "operator" / "kuberelay-operator"


def run(cmd, timeout, check=True, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def wait_for(what: str, probe, timeout: float = SETTLE, interval: float = 0.25):
    """Polls probe() until it returns something truthy; fails after timeout with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = probe()
        except AssertionError as err:  # a kubectl call that failed: retry until the deadline
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kube:
    def __init__(self, directory: Path):
        self.dir = directory
        self.kubeconfig = directory / "kubeconfig"
        self.cache_dir = directory / "kubectl-cache"

    def kubectl(self, *args, check=True, timeout=KUBECTL_TIMEOUT, input_text=None):
        cmd = ["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir,
               "--request-timeout=30s", *args]
        if input_text is None:
            return run(cmd, timeout=timeout, check=check)
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                              input=input_text)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def get_json(self, *args):
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply_text(self, ns: str, text: str):
        return self.kubectl("apply", "--server-side", "--field-manager=kuberelay-tests", "-n", ns,
                            "-f", "-", input_text=text)

    def objects(self, ns: str | None = None) -> list[dict]:
        """Every ReceiveConnector, SenderPermission and AcceptedDomain (in ns, or everywhere)."""
        scope = ["-n", ns] if ns else ["-A"]
        return self.get_json(",".join(f"{k}.{GROUP}" for k in KINDS), *scope)["items"]

    def env_script(self, *args, timeout=180):
        return run(["bash", KUBE_ENV, *args, self.dir], timeout=timeout,
                   env={**os.environ, "KUBE_ENV_OWNER_PID": str(os.getpid())})


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def ref(obj: dict) -> str:
    return f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"


def reported_version(obj: dict) -> str | None:
    """The policy version an object reports for its current generation (None: not yet)."""
    status = obj.get("status", {})
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    accepted = conditions(obj).get("Accepted")
    if not accepted:
        return None
    if obj["kind"] == "ReceiveConnector":
        return status.get("policyVersion")
    match = VERSION_RE.search(accepted["message"])
    return match.group(0) if match else None


def settled_object(obj: dict, current: str) -> bool:
    """Its status describes its current generation, and names the policy that contains it (the
    first compiled with this generation: unchanged objects keep theirs when others change)."""
    if obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
        return False
    accepted = conditions(obj).get("Accepted")
    if accepted and accepted["status"] == "False" and obj["kind"] != "ReceiveConnector":
        return True  # left out of the policy: its status names no version
    return reported_version(obj) is not None


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    assert shutil.which("kubectl"), "kubectl is not on PATH"
    proc = run(["bash", KUBE_ENV, "install"], timeout=INSTALL_TIMEOUT, check=False)
    assert proc.returncode == 0, f"kube-env.sh install failed:\n{proc.stderr[-6000:]}"
    directory = tmp_path_factory.mktemp("kube-env")
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    k = Kube(directory)
    try:
        k.env_script("start")
        yield k
    finally:
        run(["bash", KUBE_ENV, "stop", directory], timeout=120, check=False)
        signal.signal(signal.SIGTERM, previous)


def crd_text_for_install(path: Path) -> str:
    """crds/ exactly as shipped."""
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def crds(kube, tmp_path_factory):
    out = tmp_path_factory.mktemp("crds")
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        (out / path.name).write_text(crd_text_for_install(path), encoding="utf-8")
        names += [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]
    kube.kubectl("apply", "--server-side", "--field-manager=kuberelay-tests", "-f", out)
    kube.kubectl("wait", "--for", "condition=established", "--timeout=60s",
                 *[f"crd/{n}" for n in names], timeout=90)
    return names


def _die_with_parent():
    # The operator gets SIGTERM if this test process dies before stopping it.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Operator:
    def __init__(self, kube: Kube, log: Path, *extra: str, kubeconfig: Path | None = None):
        binary = operator_binary()
        assert binary.exists(), f"{binary} not built (set KUBERELAY_OPERATOR)"
        self.port = free_port()
        self.log = log
        self.fh = log.open("w")
        self.proc = subprocess.Popen(
            [str(binary), "--kubeconfig", str(kubeconfig or kube.kubeconfig),
             "--admin", f"127.0.0.1:{self.port}",
             "--min-watch-timeout", str(MIN_WATCH_TIMEOUT), *extra],
            stdin=subprocess.DEVNULL, stdout=self.fh, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        self.exit_code: int | None = None

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError as err:
            return 0, str(err)

    def wait_ready(self, timeout=60):
        def ready():
            assert self.proc.poll() is None, f"the operator exited {self.proc.returncode}:\n{self.logs()}"
            return self.http("/readyz")[0] == 200
        wait_for("the operator's /readyz", ready, timeout=timeout)

    def metric(self, name: str, **labels) -> float:
        status, text = self.http("/metrics")
        assert status == 200, text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def policy_version(self) -> str | None:
        _, text = self.http("/metrics")
        m = re.search(r'kuberelay_operator_policy_info\{version="([^"]+)"\} 1', text)
        return m.group(1) if m else None

    def logs(self) -> str:
        if not self.fh.closed:
            self.fh.flush()
        return self.log.read_text(errors="replace")[-8000:]

    def stop(self, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.exit_code = self.proc.returncode
        self.fh.close()
        return self.exit_code


@pytest.fixture(scope="module")
def operator(kube, crds, tmp_path_factory):
    op = Operator(kube, tmp_path_factory.mktemp("operator") / "operator.log")
    try:
        op.wait_ready()
        yield op
    finally:
        code = op.stop()
        print(f"\n--- operator log (exit {code}) ---\n{op.logs()[-3000:]}")
    assert code == 0, f"the operator exited {code} on SIGTERM:\n{op.logs()}"


def apply_example(kube: Kube, ns: str, folder: Path):
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("apply", "--server-side", "--field-manager=kuberelay-tests", "-n", ns, "-f", folder)


def settled(kube: Kube, operator: Operator, ns: str | None = None):
    """All objects (of ns, or everywhere) have a status for their current generation that names
    the policy containing it, once the operator has compiled one; returns them."""
    current = operator.policy_version()
    items = kube.objects(ns)
    if current and items and all(settled_object(o, current) for o in items):
        return items
    return None


# --------------------------------------------------------------------------------------- tests


def test_crd_int64_bounds_accept_a_status():
    """An int64 bound of 2^63-1 becomes -2^63 in the apiserver's float64 schema bounds and then
    refuses every status; numeric bounds in crds/ must be exactly representable (<= 2^53-1)."""
    for p in sorted(CRD_DIR.glob("*.yaml")):
        for line in p.read_text(encoding="utf-8").splitlines():
            if "maximum:" in line:
                assert int(line.split(":")[1]) <= 2**53 - 1, f"{p.name}: {line.strip()}"


def test_example_003_objects_are_accepted_with_a_policy_version(kube, operator):
    ns = "op-003"
    started = time.monotonic()
    apply_example(kube, ns, EXAMPLES / "003-anonymous-relay-ip-restricted")
    items = wait_for("every object of examples/003 to report the policy version",
                     lambda: settled(kube, operator, ns), timeout=SETTLE)
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"statuses took {elapsed:.1f}s"
    assert sorted(o["kind"] for o in items) == ["AcceptedDomain", "ReceiveConnector", "ReceiveConnector",
                                                "ReceiveConnector", "SenderPermission"]
    versions = {reported_version(o) for o in items}
    assert len(versions) == 1 and VERSION_RE.fullmatch(versions.pop()), items
    for obj in items:
        cond = conditions(obj)
        assert cond["Accepted"]["status"] == "True", (ref(obj), cond)
        assert cond["Accepted"]["reason"] == "Compiled"
        assert cond["Accepted"]["observedGeneration"] == obj["metadata"]["generation"]
        assert cond["Ready"]["status"] == "Unknown" and cond["Ready"]["reason"] == "NoRelays"
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        for c in cond.values():
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["lastTransitionTime"]), c
    connectors = [o for o in items if o["kind"] == "ReceiveConnector"]
    assert all(VERSION_RE.fullmatch(o["status"]["policyVersion"]) for o in connectors)
    # kubectl get shows the Ready column from the conditions.
    table = kube.kubectl("get", f"receiveconnectors.{GROUP}", "-n", ns).stdout
    assert all(line.split()[1] == "Unknown" for line in table.splitlines()[1:]), table


def test_an_update_changes_the_policy_version(kube, operator):
    ns = "op-003"
    before = {ref(o): o for o in wait_for("op-003 settled", lambda: settled(kube, operator, ns))}
    old_version = operator.policy_version()
    kube.kubectl("patch", f"receiveconnectors.{GROUP}", "internet-default", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"limits": {"maxMessageSize": "2Mi"}}}))

    def updated():
        items = settled(kube, operator, ns)
        if not items:
            return None
        rc = next(o for o in items if o["metadata"]["name"] == "internet-default")
        return items if rc["status"]["observedGeneration"] == 2 else None

    items = wait_for("the update to be reconciled", updated)
    new_version = operator.policy_version()
    assert new_version != old_version
    for obj in items:
        if obj["metadata"]["name"] == "internet-default":
            assert reported_version(obj) == new_version, ref(obj)
        else:  # not rewritten: the policy that contains their generation is still the one they name
            assert reported_version(obj) == reported_version(before[ref(obj)]), ref(obj)
            assert obj["metadata"]["resourceVersion"] == before[ref(obj)]["metadata"]["resourceVersion"]
        assert conditions(obj)["Accepted"]["status"] == "True"
        # Accepted did not change status: its lastTransitionTime stays.
        old = conditions(before[ref(obj)])["Accepted"]
        assert conditions(obj)["Accepted"]["lastTransitionTime"] == old["lastTransitionTime"]


def test_objects_invalid_for_the_compiler_are_rejected_with_the_field_path(kube, operator):
    ns = "op-invalid"
    apply_example(kube, ns, EXAMPLES / "003-anonymous-relay-ip-restricted")
    kube.apply_text(ns, """
apiVersion: smtp.kuberelay.io/v1alpha1
kind: SenderPermission
metadata:
  name: dangling
spec:
  connector: does-not-exist
  principal: Anonymous
  extendedRights: [Ms-Exch-SMTP-Accept-Any-Recipient]
---
apiVersion: smtp.kuberelay.io/v1alpha1
kind: ReceiveConnector
metadata:
  name: missing-tls-secret
spec:
  bindings: ["0.0.0.0:2600"]
  remoteIPRanges: ["127.0.0.64/29"]
  authMechanisms: [Tls]
  permissionGroups: [AnonymousUsers]
  tls:
    secretName: no-such-secret
  forwarding:
    smarthosts: ["127.0.0.1:2526"]
""")
    items = wait_for("op-invalid settled", lambda: settled(kube, operator, ns))
    by_name = {o["metadata"]["name"]: o for o in items}
    assert len(by_name) == 7, sorted(by_name)

    dangling = conditions(by_name["dangling"])["Accepted"]
    assert dangling["status"] == "False", dangling
    assert dangling["reason"] == "InvalidReference"
    assert "spec.connector: " in dangling["message"] and "does-not-exist" in dangling["message"]

    tls = conditions(by_name["missing-tls-secret"])["Accepted"]
    assert tls["status"] == "False", tls
    assert 'spec.tls.secretName: Secret "no-such-secret" not found' in tls["message"], tls

    for name, obj in by_name.items():
        if name not in ("dangling", "missing-tls-secret"):
            assert conditions(obj)["Accepted"]["status"] == "True", (name, conditions(obj))

    def events():
        found = kube.get_json("events", "-n", ns)["items"]
        return {(e["involvedObject"]["name"], e["reason"]) for e in found if e["type"] == "Warning"}

    got = wait_for("Warning events for the rejected objects",
                   lambda: (lambda e: e if {("dangling", "InvalidReference"),
                                            ("missing-tls-secret", "InvalidReference")} <= e else None)(events()),
                   timeout=15)
    assert ("dangling", "InvalidReference") in got

    # Fixing the object makes it Accepted again.
    secret = yaml.safe_load((EXAMPLES / "003-anonymous-relay-ip-restricted" / "secret-tls.yaml").read_text())
    secret["metadata"] = {"name": "no-such-secret"}
    kube.apply_text(ns, yaml.safe_dump(secret))
    wait_for("missing-tls-secret accepted once its Secret exists",
             lambda: conditions(kube.get_json(f"receiveconnectors.{GROUP}/missing-tls-secret", "-n", ns))
             .get("Accepted", {}).get("status") == "True")


def test_risky_002_variant_gets_warning_conditions(kube, operator):
    ns = "op-002-risky"
    apply_example(kube, ns, EXAMPLES / "002-anonymous-by-connector-role" / "risky")
    items = wait_for("op-002-risky settled", lambda: settled(kube, operator, ns))
    by_name = {o["metadata"]["name"]: conditions(o) for o in items if o["kind"] == "ReceiveConnector"}
    expected = {
        "internal-hub": {"AnonymousOnInternalConnector"},
        "client-submission": {"AnonymousOnSubmissionConnector", "BasicAuthWithoutTls"},
    }
    for name, types in expected.items():
        cond = by_name[name]
        assert cond["Accepted"]["status"] == "True", (name, cond["Accepted"])
        for t in types:
            assert t in cond, (name, sorted(cond))
            assert cond[t]["status"] == "True" and cond[t]["reason"] == t, cond[t]
            assert cond[t]["message"].startswith("spec."), cond[t]
    bridgehead = by_name["internet-bridgehead"]
    assert bridgehead["Accepted"]["status"] == "True"
    assert not {"AnonymousOnInternalConnector", "AnonymousOnSubmissionConnector", "OpenRelay",
                "BasicAuthWithoutTls"} & set(bridgehead), sorted(bridgehead)

    want = {("internal-hub", "AnonymousOnInternalConnector"),
            ("client-submission", "AnonymousOnSubmissionConnector"),
            ("client-submission", "BasicAuthWithoutTls")}

    def events():
        found = {(e["involvedObject"]["name"], e["reason"])
                 for e in kube.get_json("events", "-n", ns)["items"] if e["type"] == "Warning"}
        return found if want <= found else None

    wait_for("Warning events for the analyzer's findings", events, timeout=15)


def test_status_is_not_rewritten_when_nothing_changes(kube, operator):
    items = wait_for("every object settled", lambda: settled(kube, operator), timeout=SETTLE)
    time.sleep(2)  # let the last watch events of the writes arrive
    items = wait_for("every object settled", lambda: settled(kube, operator), timeout=SETTLE)
    before = {ref(o): o["metadata"]["resourceVersion"] for o in items}
    updates = operator.metric("kuberelay_operator_reconciles_total", result="updated")
    restarts = operator.metric("kuberelay_operator_watch_restarts_total")
    time.sleep(2.5 * MIN_WATCH_TIMEOUT)  # spans at least one watch timeout of every informer
    after = {ref(o): o["metadata"]["resourceVersion"] for o in kube.objects()}
    assert after == before
    assert operator.metric("kuberelay_operator_reconciles_total", result="updated") == updates
    assert operator.metric("kuberelay_operator_watch_restarts_total") > restarts, \
        "no watch ended and resumed during the window"


def test_a_delete_compiles_a_new_policy_without_rewriting_the_others(kube, operator):
    ns = "op-003"
    before = {ref(o): o for o in wait_for("op-003 settled", lambda: settled(kube, operator, ns))}
    old_version = operator.policy_version()
    kube.kubectl("delete", f"senderpermissions.{GROUP}", "anonymous-relay-accept-any-recipient", "-n", ns)

    def reflected():
        items = settled(kube, operator, ns)
        return items if items and len(items) == 4 and operator.policy_version() != old_version else None

    items = wait_for("the delete to be reflected", reflected)
    time.sleep(1)  # a pass that would rewrite them has run by now
    for o in kube.objects(ns):
        assert conditions(o)["Accepted"]["status"] == "True"
        assert o["metadata"]["resourceVersion"] == before[ref(o)]["metadata"]["resourceVersion"], ref(o)


def test_the_watch_survives_an_apiserver_restart(kube, operator):
    ns = "op-restart"
    apply_example(kube, ns, EXAMPLES / "003-anonymous-relay-ip-restricted")
    wait_for("op-restart settled", lambda: settled(kube, operator, ns))
    errors_before = operator.metric("kuberelay_operator_watch_restarts_total", reason="error")
    kube.env_script("restart-apiserver")
    kube.kubectl("patch", f"accepteddomains.{GROUP}", "example-com", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"domainType": "InternalRelay"}}))

    def reconciled():
        ad = kube.get_json(f"accepteddomains.{GROUP}/example-com", "-n", ns)
        return ad["metadata"]["generation"] == 2 and reported_version(ad) == operator.policy_version()

    wait_for("the update after the restart to be reconciled", reconciled, timeout=90)
    wait_for("op-restart settled", lambda: settled(kube, operator, ns), timeout=60)
    assert operator.metric("kuberelay_operator_watch_restarts_total", reason="error") > errors_before
    assert operator.proc.poll() is None


def test_the_watch_survives_a_compaction(kube, operator):
    """etcd compacted past the operator's resourceVersions + a restart: the watches get 410 Gone
    and relist; an update made afterwards is reconciled."""
    ns = "op-compact"
    apply_example(kube, ns, EXAMPLES / "003-anonymous-relay-ip-restricted")
    wait_for("op-compact settled", lambda: settled(kube, operator, ns))
    gone_before = operator.metric("kuberelay_operator_watch_restarts_total", reason="gone")
    # Writes the operator does not watch move etcd's revision on, then compact past them.
    kube.kubectl("create", "namespace", "op-compact-noise")
    for i in range(4):
        kube.kubectl("create", "configmap", f"noise-{i}", "-n", "op-compact-noise", "--from-literal=v=1")
    kube.env_script("compact", timeout=60)
    kube.env_script("restart-apiserver")
    kube.kubectl("patch", f"receiveconnectors.{GROUP}", "internet-default", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"limits": {"maxRecipientsPerMessage": 50}}}))

    def reconciled():
        rc = kube.get_json(f"receiveconnectors.{GROUP}/internet-default", "-n", ns)
        return rc["metadata"]["generation"] == 2 and reported_version(rc) == operator.policy_version()

    wait_for("the update after the compaction to be reconciled", reconciled, timeout=90)
    wait_for("op-compact settled", lambda: settled(kube, operator, ns), timeout=60)
    gone = operator.metric("kuberelay_operator_watch_restarts_total", reason="gone")
    if gone <= gone_before:
        # A bookmark may have moved every informer past the compacted revision just before it.
        warnings.warn("no watch got 410 Gone after the compaction (bookmarks outran it)")


def write_kubeconfig(kube: Kube, path: Path, user: dict, cluster_extra: dict | None = None) -> Path:
    env = dict(line.split("=", 1) for line in (kube.dir / "env").read_text().splitlines() if "=" in line)
    cluster = {"server": f"https://127.0.0.1:{env['APISERVER_PORT']}", **(cluster_extra or {})}
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_client_certificate_and_ca_file_authenticate(kube, crds, tmp_path):
    """A kubeconfig with client-certificate/-key files (relative paths) and a CA file."""
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = kube.dir / "pki"
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", pki / "client.key",
         "-subj", "/O=system:masters/CN=kuberelay-operator-test", "-out", pki / "client.csr"], timeout=60)
    run(["openssl", "x509", "-req", "-in", pki / "client.csr", "-CA", ca / "ca.crt", "-CAkey", ca / "ca.key",
         "-CAserial", pki / "ca.srl", "-CAcreateserial", "-days", "1", "-extfile", pki / "client.ext",
         "-out", pki / "client.crt"], timeout=60)
    config = write_kubeconfig(kube, tmp_path / "kubeconfig",
                              {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
                              {"certificate-authority": str(ca / "ca.crt")})
    kube.kubectl("create", "namespace", "op-empty")
    # Watches one empty namespace: it lists and watches with the certificate, writes nothing.
    op = Operator(kube, tmp_path / "cert.log", "--namespace", "op-empty", "--no-events",
                  kubeconfig=config)
    try:
        op.wait_ready()
        assert op.metric("kuberelay_operator_objects", kind="ReceiveConnector", state="accepted") == 0
    finally:
        code = op.stop(timeout=25)
    assert code == 0, op.logs()


def test_an_untrusted_server_certificate_is_refused(kube, crds, tmp_path):
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other-ca",
         "-keyout", tmp_path / "other.key", "-out", tmp_path / "other.crt"], timeout=60)
    config = write_kubeconfig(kube, tmp_path / "kubeconfig", {"token": "token"},
                              {"certificate-authority": str(tmp_path / "other.crt")})
    op = Operator(kube, tmp_path / "untrusted.log", "--namespace", "op-empty", "--no-events",
                  kubeconfig=config)
    try:
        wait_for("a failed list in the log", lambda: "msg=\"list failed\"" in op.logs(), timeout=20)
        assert op.http("/readyz")[0] == 503
    finally:
        code = op.stop(timeout=25)
    assert code == 0, op.logs()


def test_sigterm_stops_the_operator_cleanly(kube, crds, tmp_path):
    """A second replica (every namespace, the same statuses), with its token in a tokenFile."""
    (tmp_path / "token").write_text("token\n")
    config = write_kubeconfig(kube, tmp_path / "kubeconfig", {"tokenFile": "token"},
                              {"certificate-authority": str(kube.dir / "pki" / "ca.crt")})
    op = Operator(kube, tmp_path / "second.log", "--no-events", kubeconfig=config)
    try:
        op.wait_ready()
        wait_for("the second replica to agree on the policy version",
                 lambda: settled(kube, op), timeout=SETTLE)
    finally:
        code = op.stop(timeout=25)
    logs = op.logs()
    assert code == 0, logs
    assert "msg=stopping signal=SIGTERM" in logs and "msg=stopped" in logs, logs


# ------------------------------------------------------------------------ leader election

HA = ["--no-events", "--leader-election-id", "op-ha", "--lease-duration", "3", "--renew-deadline", "2",
      "--retry-period", "0.5"]


def leader_of(*ops):
    flags = [op.metric("kuberelay_operator_leader") for op in ops]
    return ops[flags.index(1)] if flags.count(1) == 1 else None


def test_two_replicas_elect_one_leader_that_alone_writes_and_fail_over(kube, crds, tmp_path):
    kube.kubectl("create", "namespace", "op-ha")
    a, b = Operator(kube, tmp_path / "a.log", *HA), Operator(kube, tmp_path / "b.log", *HA)
    c = None
    try:
        a.wait_ready()
        b.wait_ready()
        leader = wait_for("exactly one leader", lambda: leader_of(a, b), timeout=15)
        standby = b if leader is a else a
        lease = kube.get_json("lease", "op-ha", "-n", "default")
        assert lease["spec"]["holderIdentity"].split("_")[1] == str(leader.proc.pid)

        # Only the leader writes status.
        kube.apply_text("op-ha", yaml.safe_dump({"apiVersion": f"{GROUP}/v1alpha1", "kind": "AcceptedDomain",
                                                 "metadata": {"name": "ha-example"},
                                                 "spec": {"domainName": "ha.example", "domainType": "Authoritative"}}))
        wait_for("the leader to write the status",
                 lambda: kube.get_json(f"accepteddomains.{GROUP}", "ha-example", "-n", "op-ha").get("status"))
        assert standby.metric("kuberelay_operator_reconciles_total", result="updated") == 0
        assert leader.metric("kuberelay_operator_reconciles_total", result="updated") >= 1

        # The leader dies without a word: the standby takes over after the lease duration (3 s).
        started = time.monotonic()
        leader.proc.kill()
        leader.proc.wait(timeout=10)
        wait_for("the standby to lead", lambda: standby.metric("kuberelay_operator_leader") == 1, timeout=15)
        took = time.monotonic() - started
        assert took < 3 + 3, f"fail-over took {took:.1f}s"
        kube.kubectl("patch", f"accepteddomains.{GROUP}", "ha-example", "-n", "op-ha", "--type=merge",
                     "-p", json.dumps({"spec": {"domainType": "InternalRelay"}}))
        wait_for("the new leader to write the status",
                 lambda: kube.get_json(f"accepteddomains.{GROUP}", "ha-example", "-n", "op-ha")
                 .get("status", {}).get("observedGeneration") == 2)
        assert kube.get_json("lease", "op-ha", "-n", "default")["spec"]["leaseTransitions"] >= 1

        # SIGTERM releases the Lease: a third replica leads at its next retry, not after 3 s.
        c = Operator(kube, tmp_path / "c.log", *HA)
        c.wait_ready()
        assert c.metric("kuberelay_operator_leader") == 0
        started = time.monotonic()
        assert standby.stop() == 0
        assert "released the leader lease" in standby.log.read_text()
        wait_for("the third replica to lead", lambda: c.metric("kuberelay_operator_leader") == 1, timeout=10)
        assert time.monotonic() - started < 2.5
    finally:
        for op in (a, b, c):
            if op:
                op.stop()


def test_a_rotated_secret_is_picked_up(kube, operator):
    """The users Secret of a connector changes: a new policy with the new hash, and the connector
    (whose own generation did not change) reports it."""
    ns = "op-rotate"
    apply_example(kube, ns, EXAMPLES / "001-authenticated-submission")
    before = wait_for("op-rotate settled", lambda: settled(kube, operator, ns))
    rc = next(o for o in before if o["kind"] == "ReceiveConnector")
    old_version = rc["status"]["policyVersion"]
    secret = kube.get_json("secret", "relay-users", "-n", ns)
    users = secret.get("stringData") or {"users": base64.b64decode(secret["data"]["users"]).decode()}
    rotated = users["users"].replace("$6$ku423yW2NrD", "$6$rotatedSalt0")
    kube.apply_text(ns, yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "relay-users"},
                                        "type": "Opaque", "stringData": {"users": rotated}}))

    def picked_up():
        obj = kube.get_json(f"receiveconnectors.{GROUP}", "client-submission", "-n", ns)
        v = obj.get("status", {}).get("policyVersion")
        return obj if v and v != old_version else None

    obj = wait_for("the connector to report a policy with the rotated Secret", picked_up)
    assert obj["metadata"]["generation"] == rc["metadata"]["generation"]
    assert obj["status"]["policyVersion"] == operator.policy_version()


# ------------------------------------------------------------- explain against the API server
# Last in the module: the objects it applies join the policy of the whole cluster.

EXPLAIN_EXAMPLE = EXAMPLES / "004-ip-restriction-flag"
EXPLAIN_NS = "explain-004"
# (client, tls, auth, mail, rcpt): seed 004's AnonymousOnly connector, anonymous and authenticated
EXPLAIN_TABLE = [
    ("127.0.0.40", False, None, "app@customer.test", "dave@example.com"),          # on-list: local domain
    ("127.0.0.40", False, None, "app@customer.test", "someone@elsewhere.test"),    # on-list: relay refused
    ("127.0.0.41", False, None, "app@customer.test", "dave@example.com"),          # off-list: 530 5.7.3
    ("127.0.0.41", True, ("dave@example.com", "Dave-Pass-004"), "dave@example.com", "someone@elsewhere.test"),
    ("127.0.0.41", True, ("dave@example.com", "Dave-Pass-004"), "someone@example.com", "x@elsewhere.test"),
    ("127.0.0.41", True, ("dave@example.com", "Wrong-Pass"), "dave@example.com", "x@elsewhere.test"),
]


def policy_tool() -> Path:
    build = Path(os.environ.get("KUBERELAY_BUILD", REPO / "build"))
    return build / "tools" / "kuberelay-policy"


def explain_args(client, tls, auth, mail, rcpt, port):
    args = ["--from", client, "--to-port", str(port), "--mail", mail, "--rcpt", rcpt, "--json"]
    if tls:
        args.append("--tls")
    if auth:
        args += ["--auth", f"{auth[0]}:{auth[1]}"]
    return args


@pytest.fixture(scope="module")
def explain_namespace(kube, crds):
    apply_example(kube, EXPLAIN_NS, EXPLAIN_EXAMPLE)
    return EXPLAIN_NS


def integration_helpers():
    """tests/integration's relay and smtp-sink wrappers (a relay in local mode, a next hop)."""
    import sys
    path = str(REPO / "tests" / "integration")
    if path not in sys.path:
        sys.path.insert(0, path)
    import relaytest
    return relaytest


def comparable(explained: dict, namespace: str) -> list:
    """Stages, replies, reasons and traces, with the namespace (the only difference between a
    directory, whose objects are in "default", and the cluster) normalized."""
    text = re.sub(rf"\b{re.escape(namespace)}\b", "default", json.dumps(explained["stages"]))
    return json.loads(text)


@pytest.mark.parametrize("row", EXPLAIN_TABLE, ids=[f"{r[0]}-{r[3]}-{r[4]}-{'auth' if r[2] else 'anon'}"
                                                     + ("-bad" if r[2] and 'Wrong' in r[2][1] else "")
                                                     for r in EXPLAIN_TABLE])
def test_explain_from_the_cluster_a_directory_and_a_real_session_agree(kube, explain_namespace, tmp_path, row):
    """`kuberelay-policy explain --cluster` (objects and Secrets read from the API server), the
    same command on the example directory, and a real SMTP session to a relay running on that
    directory give the same answer."""
    h = integration_helpers()
    tool = policy_tool()
    assert tool.exists(), f"{tool} not built"
    client, tls, auth, mail, rcpt = row

    from_dir = run([tool, "explain", EXPLAIN_EXAMPLE, *explain_args(*row, 2525)], timeout=30, check=False)
    from_cluster = run([tool, "explain", "--cluster", "--kubeconfig", kube.kubeconfig, "--namespace", explain_namespace,
                        *explain_args(*row, 2525)], timeout=60, check=False)
    assert from_dir.returncode in (0, 1), from_dir.stderr
    assert from_cluster.returncode == from_dir.returncode, from_cluster.stderr
    d, c = json.loads(from_dir.stdout), json.loads(from_cluster.stdout)
    assert c["connector"] == f"{EXPLAIN_NS}/hub-anonymous-only"
    assert comparable(c, EXPLAIN_NS) == comparable(d, EXPLAIN_NS)

    # The real session, against a relay in local mode on the same directory.
    sink = h.Sink(tmp_path)
    relay = h.Relay(EXPLAIN_EXAMPLE.name, tmp_path, sink)
    try:
        with h.RawSMTP(relay.port(2525), source=client) as s:
            assert s.greeting().code == 220
            s.ehlo()
            outcome = None
            if tls:
                assert s.starttls().code == 220
                s.ehlo()
            if auth:
                a = s.auth_plain(*auth)
                if a.code != 235:
                    outcome = (False, a.status)
            if outcome is None:
                m = s.cmd(f"MAIL FROM:<{mail}>")
                if m.code != 250:
                    outcome = (False, m.status)
                else:
                    t = s.cmd(f"RCPT TO:<{rcpt}>")
                    outcome = (t.code == 250, t.status)
    finally:
        relay.stop()
        sink.stop()
    last = c["stages"][-1]
    assert (c["allowed"], " ".join(last["reply"].split(" ")[:2])) == outcome

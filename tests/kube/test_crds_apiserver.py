"""The CRDs, examples and schema fixtures against a real kube-apiserver + etcd.

scripts/kube-env.sh builds both once from the Go module proxy (cached under ~/.cache/kuberelay,
the first build takes a long time) and starts them on 127.0.0.1 in a temporary directory; this
module stops them at the end whatever happens.

* crds/ applies server-side and every CRD becomes Established (structural, CEL rules compile and
  fit the cost budget).
* every examples/ folder applies server-side in a namespace of its own, is listed by
  ``kubectl get``, and the server applied exactly the schema's defaults.
* tests/schema/bad/ and bad-cel/ are refused by the server (``kubectl create --dry-run=server``);
  bad-cel/ with the exact CEL rule message. For bad/ the server's wording differs from
  jsonschema's: the expectation is translated (path + apiserver phrase) and a mismatch is only
  reported as a warning; an accepted manifest fails.
* the harness itself: compact makes an old resourceVersion 410 Gone (at once in etcd; through the
  watch cache after restart-apiserver, or at once with --watch-cache=false); restart-apiserver
  keeps port, kubeconfig and data.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE_ENV = REPO / "scripts" / "kube-env.sh"
CRD_DIR = REPO / "crds"
EXAMPLES_DIR = REPO / "examples"
BAD_DIR = REPO / "tests" / "schema" / "bad"
BAD_CEL_DIR = REPO / "tests" / "schema" / "bad-cel"

GROUP = "smtp.kuberelay.io"
VERSION = "v1alpha1"
INSTALL_TIMEOUT = int(os.environ.get("KUBE_ENV_INSTALL_TIMEOUT", "7200"))  # a cold build is long
KUBECTL_TIMEOUT = 90


class ServerMessageDiffers(UserWarning):
    """The server refused a bad/ manifest, but not with the translated jsonschema expectation."""


def run(cmd, timeout, check=True, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def load_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def expectations(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(":")
        if sep and key.strip() in ("expect", "at", "why"):
            found[key.strip()] = value.strip()
    return found


class Kube:
    def __init__(self, directory: Path):
        self.dir = directory
        self.kubeconfig = directory / "kubeconfig"
        self.cache_dir = directory / "kubectl-cache"
        env = dict(line.split("=", 1) for line in (directory / "env").read_text().splitlines() if "=" in line)
        self.port = int(env["APISERVER_PORT"])
        self.server = f"https://127.0.0.1:{self.port}"
        self.ca = directory / "pki" / "ca.crt"
        self.token = "token"
        self.applied: dict[Path, str] = {}  # examples/ folders applied so far

    def kubectl(self, *args, check=True, timeout=KUBECTL_TIMEOUT):
        return run(["kubectl", "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir,
                    "--request-timeout=30s", *args], timeout=timeout, check=check)

    def get_json(self, *args):
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def http(self, path: str, timeout=30):
        """GET path with the admin token; returns (status, body text)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        req = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


@pytest.fixture(scope="session")
def installed():
    """Builds kube-apiserver and etcd on first use (long), then they are cached: never skipped."""
    assert shutil.which("kubectl"), "kubectl is not on PATH"
    proc = run(["bash", KUBE_ENV, "install"], timeout=INSTALL_TIMEOUT, check=False)
    assert proc.returncode == 0, f"kube-env.sh install failed:\n{proc.stderr[-6000:]}"


def start_env(directory: Path, **extra_env) -> Kube:
    # The watchdog stops the servers if this process dies before its clean-up runs.
    env = {**os.environ, "KUBE_ENV_OWNER_PID": str(os.getpid()), **extra_env}
    run(["bash", KUBE_ENV, "start", directory], timeout=180, env=env)
    return Kube(directory)


def stop_env(directory: Path):
    run(["bash", KUBE_ENV, "stop", directory], timeout=120, check=False)


@pytest.fixture(scope="session")
def kube(installed, tmp_path_factory):
    directory = tmp_path_factory.mktemp("kube-env")
    # SIGTERM (a timeout around pytest) unwinds like Ctrl-C so that the finally below runs.
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield start_env(directory)
    finally:
        stop_env(directory)
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def crds_established(kube):
    proc = kube.kubectl("apply", "--server-side", "--field-manager=kuberelay-tests", "-f", CRD_DIR)
    for line in proc.stderr.splitlines():
        if line.startswith("Warning:"):
            warnings.warn(f"kubectl apply crds/: {line}")
    names = sorted(doc["metadata"]["name"] for p in sorted(CRD_DIR.glob("*.yaml")) for doc in load_docs(p))
    kube.kubectl("wait", "--for", "condition=established", "--timeout=60s",
                 *[f"crd/{n}" for n in names], timeout=90)
    return names


def crd_schema(kind: str) -> dict:
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in load_docs(path):
            if doc["spec"]["names"]["kind"] == kind:
                version = next(v for v in doc["spec"]["versions"] if v["name"] == VERSION)
                return version["schema"]["openAPIV3Schema"]
    raise KeyError(kind)


def with_defaults(node: dict, value):
    """What the apiserver's structural defaulting makes of value (defaults recurse into defaults)."""
    if isinstance(value, dict) and "properties" in node:
        value = dict(value)
        for name, sub in node["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = with_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [with_defaults(node["items"], v) for v in value]
    return value


# ------------------------------------------------------------------------------------- CRDs


def test_crds_are_established(kube, crds_established):
    for name in crds_established:
        crd = kube.get_json(f"crd/{name}")
        conditions = {c["type"]: c for c in crd["status"]["conditions"]}
        assert conditions["Established"]["status"] == "True", conditions
        assert conditions["NamesAccepted"]["status"] == "True", conditions
        assert "NonStructuralSchema" not in conditions, conditions["NonStructuralSchema"]["message"]
    resources = kube.kubectl("api-resources", f"--api-group={GROUP}", "-o", "name").stdout.split()
    assert sorted(resources) == sorted(crds_established)


# --------------------------------------------------------------------------------- examples


def example_folders() -> list[Path]:
    return sorted({p.parent for p in EXAMPLES_DIR.rglob("*.yaml")})


def namespace_for(folder: Path) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(folder.relative_to(EXAMPLES_DIR)).lower()).strip("-")
    return f"ex-{slug}"[:63].rstrip("-")


def apply_example(kube, folder: Path) -> str:
    """Apply one examples/ folder (once per session) in its own namespace; returns kubectl's stderr."""
    if folder not in kube.applied:
        ns = namespace_for(folder)
        kube.kubectl("create", "namespace", ns)
        # kubectl -f DIR without -R: one folder at a time, as the examples are meant to be loaded.
        proc = kube.kubectl("apply", "--server-side", "--field-manager=kuberelay-tests", "-n", ns, "-f", folder)
        kube.applied[folder] = proc.stderr
    return kube.applied[folder]


@pytest.mark.parametrize("folder", example_folders(), ids=lambda p: str(p.relative_to(EXAMPLES_DIR)))
def test_example_folder_applies_and_is_defaulted(kube, crds_established, folder):
    ns = namespace_for(folder)
    stderr = apply_example(kube, folder)
    assert "Warning" not in stderr, stderr

    docs = [d for p in sorted(folder.glob("*.yaml")) for d in load_docs(p)]
    custom = [d for d in docs if d["apiVersion"] == f"{GROUP}/{VERSION}"]
    assert custom, f"{folder} has no custom resources"

    connectors = sorted(d["metadata"]["name"] for d in custom if d["kind"] == "ReceiveConnector")
    table = kube.kubectl("get", "receiveconnectors", "-n", ns).stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "READY", "BINDINGS", "RELAYS", "AGE"], table
    assert sorted(r.split()[0] for r in rows) == connectors, table

    for doc in custom:
        kind, name = doc["kind"], doc["metadata"]["name"]
        stored = kube.get_json(f"{kind.lower()}s.{GROUP}/{name}", "-n", ns)
        expected = with_defaults(crd_schema(kind), doc)
        assert stored["spec"] == expected["spec"], f"{kind}/{name}: server defaulting differs"


def test_examples_exercise_the_connector_defaults(kube, crds_established):
    """The defaults the relay relies on, read back from objects that do not set them."""
    checked_limits = checked_ranges = 0
    for folder in example_folders():
        apply_example(kube, folder)
        for path in sorted(folder.glob("*.yaml")):
            for doc in load_docs(path):
                if doc.get("kind") != "ReceiveConnector":
                    continue
                stored = kube.get_json(f"receiveconnectors.{GROUP}/{doc['metadata']['name']}",
                                       "-n", namespace_for(folder))["spec"]
                limits = doc["spec"].get("limits", {})
                if "maxRecipientsPerMessage" not in limits:
                    assert stored["limits"]["maxRecipientsPerMessage"] == 200
                    checked_limits += 1
                if "maxMessageSize" not in limits:
                    assert stored["limits"]["maxMessageSize"] == "36Mi"
                assert stored["limits"].get("maxHopCount") == limits.get("maxHopCount", 30)
                if "remoteIPRanges" not in doc["spec"]:
                    assert stored["remoteIPRanges"] == ["0.0.0.0/0", "::/0"]
                    checked_ranges += 1
                assert stored["enabled"] is True or doc["spec"].get("enabled") is False
                assert stored["forwarding"]["tls"] in ("None", "Opportunistic", "Required")
    assert checked_limits > 0, "no example leaves limits.maxRecipientsPerMessage to its default"
    assert checked_ranges > 0, "no example leaves remoteIPRanges to its default"


# ---------------------------------------------------------------------------- bad manifests

BAD_NS = "schema-bad"


@pytest.fixture(scope="session")
def bad_namespace(kube, crds_established):
    kube.kubectl("create", "namespace", BAD_NS)
    return BAD_NS


KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")
WRITE_STATUS = re.compile(r"\] (POST|PUT|PATCH) https://\S+ (\d{3}) ")


def server_refusal(kube, ns, path: Path) -> str:
    """Create path with dryRun=All; assert the SERVER refused it; return kubectl's error text.

    kubectl -v=6 logs each request with its status: the proof that the refusal is the server's
    (kubectl prints an Invalid (422) as 'The X "n" is invalid: ...' without 'Error from server')."""
    proc = kube.kubectl("create", "--dry-run=server", "-n", ns, "-f", path, "-o", "name", "-v=6", check=False)
    assert proc.returncode != 0, f"the server ACCEPTED {path.name}: {proc.stdout.strip()}"
    statuses = [int(m.group(2)) for m in WRITE_STATUS.finditer(proc.stderr)]
    message, in_object = [], False
    for line in proc.stderr.splitlines():
        if KLOG_LINE.match(line):
            in_object = "server response object" in line
        elif in_object:
            in_object = line != "}]"
        else:
            message.append(line)
    text = "\n".join(message).strip()
    assert statuses and all(400 <= s < 500 for s in statuses), \
        f"{path.name} was not refused by the server (write statuses {statuses}):\n{proc.stderr[-3000:]}"
    return text


def k8s_path(dotted: str) -> str:
    """jsonschema's 'spec.bindings.0' -> the apiserver's 'spec.bindings[0]'."""
    if dotted in ("", "<root>"):
        return ""
    out = ""
    for part in dotted.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def translate(expect: str, at: str) -> list[str]:
    """The fragments the apiserver's message should contain for a jsonschema expectation."""
    path = k8s_path(at)
    join = (lambda field: f"{path}.{field}" if path else field)
    if m := re.match(r"'(\w+)' is a required property", expect):
        if (path, m.group(1)) == ("metadata", "name"):
            return ["name or generateName is required"]
        return [f"{join(m.group(1))}: Required value"]
    if m := re.search(r"Additional properties are not allowed \('(\w+)' was unexpected\)", expect):
        return [f'unknown field "{join(m.group(1))}"']
    if "does not match" in expect:
        return [f"{path}: Invalid value", f"{path} in body should match"]
    if "is not one of" in expect:
        return [f"{path}: Unsupported value"]
    if "should be non-empty" in expect:
        return [f"{path}: Invalid value", "should have at least 1 items"]
    if m := re.search(r"is not of type '(\w+)'", expect):
        return [f"{path}: Invalid value", f"must be of type {m.group(1)}"]
    if m := re.search(r"is greater than the maximum of (\S+)", expect):
        return [f"{path}: Invalid value", f"should be less than or equal to {m.group(1)}"]
    if m := re.search(r"is less than the minimum of (\S+)", expect):
        return [f"{path}: Invalid value", f"should be greater than or equal to {m.group(1)}"]
    if "has non-unique elements" in expect:
        return [f"{path}[", "Duplicate value"]
    if "is not valid under any of the given schemas" in expect:
        return [f"{path}: Invalid value", "must validate at least one schema (anyOf)"]
    return [expect]


@pytest.mark.parametrize("path", sorted(BAD_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_manifest_is_refused_by_the_server(kube, bad_namespace, path):
    message = server_refusal(kube, bad_namespace, path)
    exp = expectations(path)
    wanted = translate(exp["expect"], exp.get("at", ""))
    missing = [w for w in wanted if w not in message]
    if missing:
        warnings.warn(ServerMessageDiffers(
            f"{path.name}: refused, but without {missing} (jsonschema: {exp['expect']!r} at "
            f"{exp.get('at')!r}); server said: {message.strip()}"))


@pytest.mark.parametrize("path", sorted(BAD_CEL_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_cel_manifest_is_refused_with_the_rule_message(kube, bad_namespace, path):
    message = server_refusal(kube, bad_namespace, path)
    assert expectations(path)["expect"] in message, message


def test_bad_manifests_are_all_there():
    assert len(list(BAD_DIR.glob("*.yaml"))) >= 12
    assert len(list(BAD_CEL_DIR.glob("*.yaml"))) >= 1


# ------------------------------------------------------------------------- the harness itself


def watch_from(kube, path: str, resource_version: str):
    """Watch path from resource_version for 2 s: (HTTP status, list of events)."""
    query = urllib.parse.urlencode({"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "2"})
    status, body = kube.http(f"{path}?{query}", timeout=30)
    events = [json.loads(line) for line in body.splitlines() if line.strip()] if status == 200 else []
    return status, events


def is_gone(status, events) -> bool:
    return status == 410 or any(e["type"] == "ERROR" and e["object"].get("code") == 410 for e in events)


def compacted_old_version(kube, ns: str) -> str:
    """A resourceVersion from before an etcd compaction (2+ writes behind it)."""
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("create", "configmap", "c0", "-n", ns, "--from-literal=v=0")
    old_rv = kube.get_json("configmap/c0", "-n", ns)["metadata"]["resourceVersion"]
    for i in range(1, 4):
        kube.kubectl("create", "configmap", f"c{i}", "-n", ns, "--from-literal=v=1")
    rev = run(["bash", KUBE_ENV, "compact", kube.dir], timeout=60).stdout.strip()
    assert int(rev) >= int(old_rv) + 3
    return old_rv


def test_compact_then_restart_apiserver(kube, crds_established):
    """compact: etcd refuses an old RV at once (an exact list reaches etcd); the watch cache
    still serves a watch from it until restart-apiserver, which keeps the port and the data."""
    ns = "harness-restart"
    old_rv = compacted_old_version(kube, ns)
    status, body = kube.http(f"/api/v1/namespaces/{ns}/configmaps?resourceVersion={old_rv}"
                             "&resourceVersionMatch=Exact")
    assert status == 410, body

    old_pids = (kube.dir / "pids").read_text()
    started = time.monotonic()
    run(["bash", KUBE_ENV, "restart-apiserver", kube.dir], timeout=180)
    assert time.monotonic() - started < 120
    pids = (kube.dir / "pids").read_text()
    assert pids != old_pids and [l for l in pids.split() if l.startswith("etcd=")] == \
        [l for l in old_pids.split() if l.startswith("etcd=")]
    assert kube.http("/readyz")[0] == 200  # same port, same kubeconfig

    status, events = watch_from(kube, f"/api/v1/namespaces/{ns}/configmaps", old_rv)
    assert is_gone(status, events), f"watch from {old_rv} after restart: HTTP {status}, {events}"
    assert kube.get_json("configmap/c3", "-n", ns)["data"] == {"v": "1"}
    assert kube.get_json(f"crd/receiveconnectors.{GROUP}")["status"]["acceptedNames"]["kind"] == "ReceiveConnector"
    assert kube.kubectl("get", "receiveconnectors", "-A", "-o", "name").stdout.strip()


def test_compact_without_watch_cache_makes_a_watch_gone(installed, tmp_path):
    """KUBE_ENV_APISERVER_ARGS=--watch-cache=false: a watch from a compacted RV is 410 at once."""
    try:
        kube = start_env(tmp_path, KUBE_ENV_APISERVER_ARGS="--watch-cache=false")
        ns = "harness-compact"
        old_rv = compacted_old_version(kube, ns)
        status, events = watch_from(kube, f"/api/v1/namespaces/{ns}/configmaps", old_rv)
        assert is_gone(status, events), f"watch from compacted {old_rv}: HTTP {status}, {events}"
        newer = kube.get_json("configmap/c3", "-n", ns)["metadata"]["resourceVersion"]
        status, events = watch_from(kube, f"/api/v1/namespaces/{ns}/configmaps", newer)
        assert status == 200 and not is_gone(status, events), events
    finally:
        stop_env(tmp_path)

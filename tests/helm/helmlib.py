"""Shared helpers of the Helm chart tests: the real helm (built from the Go module proxy by
scripts/kube-env.sh install-helm and cached like the API server), rendering, and lookups in the
rendered manifests."""

from __future__ import annotations

import base64
import functools
import os
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kuberelay"
EVERYTHING = Path(__file__).resolve().parent / "values-everything.yaml"
KUBE_ENV = REPO / "scripts" / "kube-env.sh"
INSTALL_TIMEOUT = int(os.environ.get("KUBE_ENV_INSTALL_TIMEOUT", "7200"))
KUBE_VERSION = "1.32.0"  # what the test API server runs (scripts/kube-env.sh)
MONITORING = ["--api-versions", "monitoring.coreos.com/v1"]
CERT_MANAGER = ["--api-versions", "cert-manager.io/v1"]


def run(cmd, timeout=120, check=True, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


@functools.cache
def helm() -> str:
    """The cached helm binary (built on first use, which takes minutes)."""
    if os.environ.get("KUBERELAY_HELM"):
        return os.environ["KUBERELAY_HELM"]
    proc = run(["bash", KUBE_ENV, "install-helm"], timeout=INSTALL_TIMEOUT, check=False)
    assert proc.returncode == 0, f"kube-env.sh install-helm failed:\n{proc.stderr[-6000:]}"
    paths = dict(line.split("=", 1) for line in run(["bash", KUBE_ENV, "paths"]).stdout.split())
    assert os.access(paths["HELM"], os.X_OK), paths
    return paths["HELM"]


def template_proc(*args, chart: Path = CHART, release="kr", namespace="mail", kube_version=KUBE_VERSION):
    return run([helm(), "template", release, chart, "--namespace", namespace,
                "--kube-version", kube_version, *args], check=False, timeout=120)


def render(*args, **kw) -> list[dict]:
    """helm template; the rendered objects."""
    proc = template_proc(*args, **kw)
    assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def render_text(*args, **kw) -> str:
    proc = template_proc(*args, **kw)
    assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def everything(*extra) -> list[str]:
    return ["-f", str(EVERYTHING), *MONITORING, *CERT_MANAGER, *extra]


def of_kind(docs, kind) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name=None) -> dict:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def component(docs, kind, comp) -> list[dict]:
    return [d for d in of_kind(docs, kind)
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == comp]


def container(deployment: dict, name: str) -> dict:
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name} in {deployment['metadata']['name']}")


def flags(c: dict) -> dict[str, str]:
    """--name=value arguments of a container as a dict (a bare flag maps to "")."""
    out = {}
    for a in c.get("args", []):
        m = re.match(r"^(--[a-z0-9-]+)(?:=(.*))?$", a)
        assert m, f"argument {a!r} is not --flag[=value]"
        assert m.group(1) not in out, f"{m.group(1)} given twice: {c.get('args')}"
        out[m.group(1)] = m.group(2) if m.group(2) is not None else ""
    return out


def secret_data(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}


def pod_templates(docs) -> list[tuple[str, dict]]:
    """(name, pod spec) of every workload."""
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append((f"CronJob/{d['metadata']['name']}", d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            out.append((f"Pod/{d['metadata']['name']}", d["spec"]))
    return out


def cert_text(pem: bytes) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True,
                          timeout=30, check=True).stdout.decode()


def cert_dns_names(pem: bytes) -> set[str]:
    text = cert_text(pem)
    m = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)\n", text)
    return {p.strip()[4:] for p in m.group(1).split(",") if p.strip().startswith("DNS:")} if m else set()


# The exact permissions kuberelay-operator needs (operator/src: informers on the three kinds and
# Secrets, status patches, Events, statusHasField's CRD reads, the leader Lease). Rules as
# (apiGroup, resource, verb, resourceName or ""), scope "cluster" or a namespace.
KINDS = ("receiveconnectors", "senderpermissions", "accepteddomains")


def operator_needs(events=True) -> set[tuple[str, str, str, str]]:
    rules = set()
    for kind in KINDS:
        for verb in ("get", "list", "watch"):
            rules.add(("smtp.kuberelay.io", kind, verb, ""))
        for verb in ("patch", "update"):
            rules.add(("smtp.kuberelay.io", f"{kind}/status", verb, ""))
    for verb in ("get", "list", "watch"):
        rules.add(("", "secrets", verb, ""))
    if events:
        rules |= {("", "events", "create", ""), ("", "events", "patch", "")}
    return rules


CRD_RULES = {("apiextensions.k8s.io", "customresourcedefinitions", "get", f"{k}.smtp.kuberelay.io") for k in KINDS}


def lease_rules(lease: str) -> set[tuple[str, str, str, str]]:
    return {("coordination.k8s.io", "leases", "create", ""),
            ("coordination.k8s.io", "leases", "get", lease),
            ("coordination.k8s.io", "leases", "update", lease)}


def expand_rules(rules: list[dict]) -> set[tuple[str, str, str, str]]:
    out = set()
    for r in rules:
        assert "nonResourceURLs" not in r, r
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    for name in r.get("resourceNames") or [""]:
                        out.add((g, res, v, name))
    return out

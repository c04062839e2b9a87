#!/usr/bin/env python3
"""Control-plane benchmark: policy propagation to 100 relays, and the operator at scale.

Starts a real kube-apiserver + etcd (scripts/kube-env.sh), installs the CRDs, runs
kuberelay-operator with the policy channel, and N simulated relays
(kuberelay-policy-subscribers, which ACK at once). Then:

  1. small change: one connector in one namespace; REPS times `kubectl patch` of one field,
     measuring from just before kubectl runs to the last relay's ACK of the new version;
  2. scale: CONNECTORS ReceiveConnectors and PERMISSIONS SenderPermissions across NAMESPACES
     namespaces (kubectl apply --server-side, one file per namespace), measuring the time until
     the operator's compiled policy holds them all (its first complete snapshot), until every
     status is written (reconcile throughput), and the operator's memory;
  3. the same small change on top of that snapshot (thousands of connectors: several MB).

Prints a markdown report and writes it, with the raw samples (JSON), to --out. Every process it
starts is stopped by PID; every wait has a timeout. Not part of `make test` (a benchmark, not a
timed test): `make bench-control-plane`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBE_ENV = REPO / "scripts" / "kube-env.sh"


def run(cmd, timeout=300, check=True, input_text=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          input=input_text)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def percentile(samples, p):
    s = sorted(samples)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Subscribers:
    """kuberelay-policy-subscribers; its "version=..." lines, parsed as they arrive."""

    def __init__(self, binary: Path, target: str, relays: int, log: Path):
        self.proc = subprocess.Popen([str(binary), "--target", target, "--relays", str(relays),
                                      "--seconds", "3600"], stdout=subprocess.PIPE,
                                     stderr=open(log, "w"), text=True)
        self.versions: dict[str, dict] = {}
        self.ready = threading.Event()
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready.set()
            m = dict(re.findall(r"(\w+)=(\S+)", line))
            if "version" in m:
                with self.cv:
                    self.versions[m["version"]] = m
                    self.cv.notify_all()

    def wait_new(self, known: set, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                fresh = [v for k, v in self.versions.items() if k not in known]
                if fresh:
                    return fresh[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no new version reached every relay")
                self.cv.wait(left)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scale_manifests(ns: str, index: int, per_ns_connectors: int, per_ns_permissions: int) -> str:
    docs = []
    for i in range(per_ns_connectors):
        n = index * per_ns_connectors + i
        docs.append(f"""apiVersion: smtp.kuberelay.io/v1alpha1
kind: ReceiveConnector
metadata: {{name: app-{i}, namespace: {ns}}}
spec:
  bindings: ["0.0.0.0:2525"]
  remoteIPRanges: ["10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}/32"]
  permissionGroups: [AnonymousUsers]
  forwarding: {{smarthosts: ["smarthost.{ns}.svc:25"]}}
""")
    for i in range(per_ns_permissions):
        docs.append(f"""apiVersion: smtp.kuberelay.io/v1alpha1
kind: SenderPermission
metadata: {{name: app-{i}-relay, namespace: {ns}}}
spec:
  connector: app-{i % per_ns_connectors}
  principal: Anonymous
  extendedRights: [AcceptAnyRecipient]
""")
    return "---\n".join(docs)


def small_changes(kubectl, subs: Subscribers, reps: int, ns: str, label: str) -> list[float]:
    samples = []
    for i in range(reps):
        known = set(subs.versions)
        t0 = time.time()
        kubectl("patch", "receiveconnector", "quickstart", "-n", ns, "--type", "merge", "-p",
                json.dumps({"spec": {"limits": {"maxRecipientsPerMessage": 1000 + i + (500 if label == 'large' else 0)}}}))
        seen = subs.wait_new(known, timeout=60)
        samples.append(float(seen["last_ack"]) - t0)
        time.sleep(0.3)  # let the statuses settle between changes
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("KUBERELAY_BUILD", str(REPO / "build")))
    ap.add_argument("--relays", type=int, default=100)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--large-reps", type=int, default=10)
    ap.add_argument("--connectors", type=int, default=5000)
    ap.add_argument("--permissions", type=int, default=5000)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / time.strftime("control-plane-%Y%m%d-%H%M%S")))
    args = ap.parse_args()
    build = Path(args.build)
    operator_bin = build / "operator" / "kuberelay-operator"
    subs_bin = build / "bench" / "kuberelay-policy-subscribers"
    for b in (operator_bin, subs_bin):
        if not b.exists():
            print(f"{b} is missing: build it (ninja -C {build} kuberelay-operator kuberelay-policy-subscribers)")
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(["bash", KUBE_ENV, "install"], timeout=7200)
    env_dir = Path(tempfile.mkdtemp(prefix="kr-cp-bench-"))
    os.environ["KUBE_ENV_OWNER_PID"] = str(os.getpid())
    run(["bash", KUBE_ENV, "start", env_dir], timeout=180)
    kubeconfig = env_dir / "kubeconfig"

    def kubectl(*a, input_text=None, timeout=300):
        return run(["kubectl", "--kubeconfig", kubeconfig, "--request-timeout=120s", *a],
                   timeout=timeout, input_text=input_text)

    operator = subs = None
    results: dict = {"relays": args.relays, "machine": os.uname().nodename, "cores": os.cpu_count()}
    try:
        kubectl("apply", "--server-side", "-f", REPO / "crds")
        kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd", "--all")
        admin, grpc_port = free_port(), free_port()
        operator = subprocess.Popen(
            [str(operator_bin), "--kubeconfig", str(kubeconfig), "--admin", f"127.0.0.1:{admin}",
             "--policy-listen", f"127.0.0.1:{grpc_port}", "--policy-insecure", "--no-events"],
            stdout=open(out / "operator.log", "w"), stderr=subprocess.STDOUT)
        subs = Subscribers(subs_bin, f"127.0.0.1:{grpc_port}", args.relays, out / "subscribers.log")
        if not subs.ready.wait(120):
            raise RuntimeError("the simulated relays did not all get a first snapshot")

        # 1. A small change with a small policy.
        kubectl("create", "namespace", "bench-small")
        known = set(subs.versions)
        kubectl("apply", "--server-side", "-n", "bench-small", "-f", REPO / "examples" / "quickstart")
        subs.wait_new(known, timeout=60)
        time.sleep(1)
        small = small_changes(kubectl, subs, args.reps, "bench-small", "small")
        results["small"] = {"samples": small, "p50": percentile(small, 50), "p99": percentile(small, 99),
                            "bytes": int(subs.versions[max(subs.versions, key=lambda v: float(subs.versions[v]['last_ack']))]["bytes"])}
        print(f"small change, {args.relays} relays: p50 {results['small']['p50']*1000:.0f} ms, "
              f"p99 {results['small']['p99']*1000:.0f} ms ({len(small)} changes)", flush=True)

        # 2. Scale.
        per_c = args.connectors // args.namespaces
        per_p = args.permissions // args.namespaces
        rss_before = rss_mib(operator.pid)
        t_start = time.time()
        for i in range(args.namespaces):
            ns = f"bench-{i:02d}"
            kubectl("create", "namespace", ns)
            kubectl("apply", "--server-side", "-f", "-", input_text=scale_manifests(ns, i, per_c, per_p), timeout=600)
        t_applied = time.time()
        total_c, total_p = per_c * args.namespaces + 1, per_p * args.namespaces + 1  # + quickstart's
        deadline = time.monotonic() + 1800
        t_compiled = t_written = t_written_candidate = None
        last_updated = -1.0
        peak = rss_mib(operator.pid)
        while time.monotonic() < deadline:
            text = metrics(admin)
            peak = max(peak, rss_mib(operator.pid))
            accepted_c = metric(text, "kuberelay_operator_objects", kind="ReceiveConnector", state="accepted") + \
                metric(text, "kuberelay_operator_objects", kind="ReceiveConnector", state="rejected")
            accepted_p = metric(text, "kuberelay_operator_objects", kind="SenderPermission", state="accepted") + \
                metric(text, "kuberelay_operator_objects", kind="SenderPermission", state="rejected")
            if t_compiled is None and accepted_c >= total_c and accepted_p >= total_p:
                t_compiled = time.time()
            updated = metric(text, "kuberelay_operator_reconciles_total", result="updated")
            # Every status written: at least one write per object, then a quiet pass.
            if t_compiled and updated >= total_c + total_p:
                if updated == last_updated:
                    t_written = t_written_candidate
                    break
                t_written_candidate = time.time()
            last_updated = updated
            time.sleep(1.0)
        if t_compiled is None or t_written is None:
            raise RuntimeError("the operator did not reach the full snapshot within 30 minutes")
        large_version = subs.wait_new(set(), timeout=5)  # any: the newest is looked up below
        newest = max(subs.versions.values(), key=lambda v: float(v["last_ack"]))
        results["scale"] = {
            "connectors": total_c, "permissions": total_p, "namespaces": args.namespaces,
            "apply_seconds": t_applied - t_start,
            "first_complete_snapshot_seconds": t_compiled - t_start,
            "all_statuses_written_seconds": t_written - t_start,
            "objects_per_second": (total_c + total_p) / (t_written - t_start),
            "operator_rss_mib_before": rss_before, "operator_rss_mib_peak": peak,
            "operator_rss_mib_after": rss_mib(operator.pid),
            "snapshot_bytes": int(newest["bytes"]), "snapshot_objects": int(newest["objects"]),
        }
        del large_version
        print(json.dumps(results["scale"], indent=1), flush=True)

        # 3. A small change on top of the large snapshot.
        time.sleep(2)
        large = small_changes(kubectl, subs, args.large_reps, "bench-small", "large")
        results["large"] = {"samples": large, "p50": percentile(large, 50), "p99": percentile(large, 99),
                            "bytes": int(max(subs.versions.values(), key=lambda v: float(v["last_ack"]))["bytes"])}
        print(f"small change on the {total_c}-connector snapshot: p50 {results['large']['p50']*1000:.0f} ms, "
              f"p99 {results['large']['p99']*1000:.0f} ms", flush=True)
        text = metrics(admin)
        results["operator_propagation_count"] = metric(text, "kuberelay_operator_propagation_seconds_count")
    finally:
        if subs:
            subs.stop()
        if operator:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        run(["bash", KUBE_ENV, "stop", env_dir], timeout=120, check=False)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    report = render(results)
    (out / "report.md").write_text(report)
    print(report)
    return 0


def render(r: dict) -> str:
    s, l, sc = r["small"], r["large"], r["scale"]
    ms = lambda x: f"{x * 1000:.0f} ms"
    return f"""| measurement | result |
|---|---|
| small change → last of {r['relays']} relays ACKed, small policy ({s['bytes']} B snapshot) | p50 {ms(s['p50'])}, p99 {ms(s['p99'])} ({len(s['samples'])} changes) |
| small change → last of {r['relays']} relays ACKed, {sc['connectors']}-connector policy ({l['bytes'] / 1e6:.1f} MB snapshot) | p50 {ms(l['p50'])}, p99 {ms(l['p99'])} ({len(l['samples'])} changes) |
| apply {sc['connectors']} connectors + {sc['permissions']} permissions in {sc['namespaces']} namespaces (kubectl) | {sc['apply_seconds']:.1f} s |
| from the first apply to the operator's first complete snapshot | {sc['first_complete_snapshot_seconds']:.1f} s |
| ... to every object's status written | {sc['all_statuses_written_seconds']:.1f} s ({sc['objects_per_second']:.0f} objects/s) |
| operator memory (RSS) before / peak / after | {sc['operator_rss_mib_before']:.0f} / {sc['operator_rss_mib_peak']:.0f} / {sc['operator_rss_mib_after']:.0f} MiB |
"""


if __name__ == "__main__":
    sys.exit(main())

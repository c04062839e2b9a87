"""The Helm chart (helm/kuberelay) with a real helm, no cluster: lint, template, the values
schema, and what the rendered manifests must say (security contexts, drain timing, the SMTP port
mapping, least-privilege RBAC, the policy channel's certificates, optional objects).

Two value sets throughout: the defaults, and tests/helm/values-everything.yaml (every option on:
cert-manager, ServiceMonitors, PrometheusRule, HPA, NetworkPolicies, a LoadBalancer with
externalTrafficPolicy Local, two extra pools, watched namespaces). test_chart_apiserver.py applies
the same renders to a real kube-apiserver.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess

import pytest
import yaml

from helmlib import (CHART, CRD_RULES, EVERYTHING, MONITORING, REPO, component, container, everything,
                     expand_rules, flags, helm, lease_rules, of_kind, one, operator_needs, pod_templates, render,
                     run, secret_data, template_proc, cert_dns_names)

VALUE_SETS = {"default": list(MONITORING), "everything": everything()}


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(request):
    return request.param, render(*VALUE_SETS[request.param])


@pytest.fixture(scope="module")
def default_docs():
    return render(*MONITORING)


@pytest.fixture(scope="module")
def all_docs():
    return render(*everything())


# ------------------------------------------------------------------------------- lint, crds/

@pytest.mark.parametrize("values", ["default", "everything"])
def test_helm_lint_strict(values):
    args = ["-f", str(EVERYTHING)] if values == "everything" else []
    proc = run([helm(), "lint", "--strict", CHART, *args], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_chart_crds_are_the_repository_crds():
    """helm/kuberelay/crds/ is a byte-for-byte copy of crds/ (make sync-chart-crds)."""
    top = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (CHART / "crds").iterdir())
    assert top and chart == top, f"crds/ has {top}, the chart's crds/ has {chart}: run make sync-chart-crds"
    for name in top:
        assert filecmp.cmp(REPO / "crds" / name, CHART / "crds" / name, shallow=False), \
            f"helm/kuberelay/crds/{name} differs from crds/{name}: run make sync-chart-crds"


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["type"] == "application"
    assert chart["appVersion"] and chart["version"]
    assert chart["kubeVersion"].startswith(">=1.27")
    # Too old a cluster is refused with a clear message.
    proc = template_proc(kube_version="1.26.0")
    assert proc.returncode != 0 and "incompatible with Kubernetes v1.26.0" in proc.stderr


def test_renders_every_expected_object(rendered):
    name, docs = rendered
    kinds = {d["kind"] for d in docs}
    expected = {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                "RoleBinding", "PodDisruptionBudget", "ServiceMonitor"}
    if name == "default":
        expected |= {"Secret"}
        assert not kinds & {"NetworkPolicy", "HorizontalPodAutoscaler", "Certificate", "Issuer"}
    else:
        expected |= {"NetworkPolicy", "HorizontalPodAutoscaler", "Certificate", "Issuer"}
        assert "Secret" not in kinds, "with cert-manager the chart must not generate the certificates"
    assert expected <= kinds, f"missing {expected - kinds}"
    # Every object of a namespaced kind is in the release namespace (or a watched/dashboard one).
    for d in docs:
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in d["metadata"]
        else:
            assert d["metadata"]["namespace"] in ("mail", "mail-a", "mail-b", "monitoring"), d["metadata"]


# ---------------------------------------------------------------------------------- schema

BAD_VALUES = [
    (["--set", "relay.service.type=Ingress"], "relay.service.type"),
    (["--set", "relay.replica=3"], "Additional property replica is not allowed"),
    (["--set", "operator.replicas=0"], "operator.replicas"),
    (["--set", "relay.smtpPorts[0].name=smtp,relay.smtpPorts[0].port=25,relay.smtpPorts[0].containerPort=25"],
     "containerPort"),
    (["--set", "relay.drainTimeoutSeconds=soon"], "relay.drainTimeoutSeconds"),
    (["--set", "relay.extraPools[0].name=Bad_Pool"], "name"),
    (["--set", "operator.logLevel=verbose"], "operator.logLevel"),
    (["--set", "certManager.issuerRef.kind=Vault"], "certManager.issuerRef.kind"),
]


@pytest.mark.parametrize("args,path", BAD_VALUES, ids=[p for _, p in BAD_VALUES])
def test_schema_rejects_bad_values(args, path):
    """helm template and helm lint both refuse a bad value, naming it."""
    proc = template_proc(*args)
    assert proc.returncode != 0, f"helm template accepted {args}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert path in proc.stderr, proc.stderr
    lint = run([helm(), "lint", CHART, *args], check=False)
    assert lint.returncode != 0 and path in lint.stdout + lint.stderr, lint.stdout + lint.stderr


CHART_CHECKS = [
    (["--set", "operator.leaderElection.enabled=false"], "needs operator.leaderElection.enabled"),
    (["--set", "metrics.podMonitor.enabled=true"], "choose one"),
    (["--set", "relay.service.externalTrafficPolicy=Local"], "needs service.type NodePort or LoadBalancer"),
    (["--set", "relay.extraPools[0].name=default"], 'the pool "default" is listed twice'),
]


@pytest.mark.parametrize("args,message", CHART_CHECKS, ids=[m for _, m in CHART_CHECKS])
def test_chart_refuses_inconsistent_values(args, message):
    proc = template_proc(*args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_single_operator_without_leader_election_is_allowed():
    docs = render("--set", "operator.replicas=1", "--set", "operator.leaderElection.enabled=false")
    op = one(docs, "Deployment", "kr-kuberelay-operator")
    assert flags(container(op, "operator"))["--leader-elect"] == "false"
    assert not [r for r in of_kind(docs, "Role") if "lease" in r["metadata"]["name"]]
    assert not component(docs, "PodDisruptionBudget", "operator")


# -------------------------------------------------------------------------------- security

def test_every_container_is_locked_down(rendered):
    name, docs = rendered
    pods = pod_templates(docs)
    assert len(pods) == (2 if name == "default" else 4)
    for where, spec in pods:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0, where
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), where
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc.get("runAsUser", psc["runAsUser"]) != 0, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], where
            # A writable /tmp on an emptyDir (the root filesystem is read-only).
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where
            for port in c["ports"]:
                assert port["containerPort"] >= 1024, f"{where}: {port} needs a capability"


def test_relays_have_no_api_token_and_operator_has_one(rendered):
    _, docs = rendered
    for d in component(docs, "Deployment", "relay"):
        assert d["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        assert "--protocol-log-dir" not in flags(container(d, "relay")) or \
            {m["mountPath"] for m in container(d, "relay")["volumeMounts"]} >= {"/var/log/kuberelay"}
    for d in component(docs, "ServiceAccount", "relay"):
        assert d["automountServiceAccountToken"] is False
    for d in component(docs, "Deployment", "operator"):
        assert d["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


# -------------------------------------------------------------------------------- operator

def test_operator_deployment(default_docs):
    op = one(default_docs, "Deployment", "kr-kuberelay-operator")
    spec = op["spec"]["template"]["spec"]
    c = container(op, "operator")
    f = flags(c)
    assert op["spec"]["replicas"] == 2
    assert f["--leader-elect"] == "true" and f["--leader-election-id"] == "kr-kuberelay-operator"
    assert f["--admin"] == "0.0.0.0:9091" and f["--policy-listen"] == "0.0.0.0:9443"
    assert "--policy-insecure" not in f
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-admin"}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc-policy": 9443, "http-admin": 9091}
    # The TLS files come from the server Secret.
    mount = next(m for m in c["volumeMounts"] if m["name"] == "policy-tls")
    for flag in ("--policy-tls-cert", "--policy-tls-key", "--policy-client-ca"):
        assert f[flag].startswith(mount["mountPath"] + "/")
    volume = next(v for v in spec["volumes"] if v["name"] == "policy-tls")
    assert volume["secret"]["secretName"] == "kr-kuberelay-policy-server"
    pdb = one(default_docs, "PodDisruptionBudget", "kr-kuberelay-operator")
    assert pdb["spec"]["selector"]["matchLabels"] == op["spec"]["selector"]["matchLabels"]
    # Services: the policy channel (9443) and the admin/metrics port, both onto the operator pods.
    policy = one(default_docs, "Service", "kr-kuberelay-policy")
    assert [(p["name"], p["port"], p["targetPort"]) for p in policy["spec"]["ports"]] == \
        [("grpc-policy", 9443, "grpc-policy")]
    metrics = one(default_docs, "Service", "kr-kuberelay-operator-metrics")
    assert [(p["name"], p["port"]) for p in metrics["spec"]["ports"]] == [("http-admin", 9091)]
    for svc in (policy, metrics):
        assert svc["spec"]["selector"] == op["spec"]["selector"]["matchLabels"]


def test_operator_watch_namespaces(all_docs):
    op = one(all_docs, "Deployment", "kuberelay-all-operator")
    args = container(op, "operator")["args"]
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=mail-a", "--namespace=mail-b"]
    assert op["spec"]["replicas"] == 3


# -------------------------------------------------------------------------------- relays

def relay_pools(docs):
    return {d["metadata"]["labels"]["kuberelay.io/pool"]: d for d in component(docs, "Deployment", "relay")}


def test_relay_deployment(default_docs):
    pools = relay_pools(default_docs)
    assert list(pools) == ["default"]
    d = pools["default"]
    spec = d["spec"]["template"]["spec"]
    c = container(d, "relay")
    f = flags(c)
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert f["--control-plane"] == "kr-kuberelay-policy.mail.svc:9443"
    assert f["--pool"] == "default" and f["--admin"] == "0.0.0.0:9090"
    assert "--control-plane-insecure" not in f
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-admin"}
    assert {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]} == {"POD_NAME": "metadata.name"}
    keys = {t["topologyKey"]: t for t in spec["topologySpreadConstraints"]}
    assert set(keys) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for t in keys.values():
        assert t["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    pdb = one(default_docs, "PodDisruptionBudget", "kr-kuberelay-relay")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    assert not of_kind(default_docs, "HorizontalPodAutoscaler")
    volume = next(v for v in spec["volumes"] if v["name"] == "policy-tls")
    assert volume["secret"]["secretName"] == "kr-kuberelay-policy-client"


@pytest.mark.parametrize("kube_version,form", [("1.32.0", "sleep"), ("1.27.0", "exec")])
def test_relay_drain_fits_in_the_grace_period(kube_version, form):
    """preStop sleep, then SIGTERM starts the drain: the grace period covers both, with a margin."""
    for docs in (render(kube_version=kube_version), render(*everything(), kube_version=kube_version)):
        for d in component(docs, "Deployment", "relay"):
            c = container(d, "relay")
            drain = int(flags(c)["--drain-timeout"])
            pre = c["lifecycle"]["preStop"]
            assert list(pre) == [form]
            sleep = pre["sleep"]["seconds"] if form == "sleep" else int(pre["exec"]["command"][1])
            assert pre.get("exec", {}).get("command", ["sleep"])[0] == "sleep"
            grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            assert sleep >= 3 and grace > drain + sleep, (grace, drain, sleep)


def test_smtp_service_maps_the_standard_ports(default_docs):
    svc = one(default_docs, "Service", "kr-kuberelay-smtp")
    assert svc["spec"]["type"] == "ClusterIP" and "externalTrafficPolicy" not in svc["spec"]
    assert [(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("smtp", 25, 2525, "TCP"), ("submission", 587, 2587, "TCP"), ("smtps", 465, 2465, "TCP")]
    d = relay_pools(default_docs)["default"]
    assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
    c = container(d, "relay")
    container_ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert container_ports == {"smtp": 2525, "submission": 2587, "smtps": 2465, "http-admin": 9090}
    # Before the first policy the relay answers 421 on exactly the ports the Service sends to.
    assert flags(c)["--standby-ports"] == "2525,2587,2465"
    admin = one(default_docs, "Service", "kr-kuberelay-relay-metrics")
    assert admin["spec"]["clusterIP"] == "None"
    assert [(p["name"], p["port"]) for p in admin["spec"]["ports"]] == [("http-admin", 9090)]
    assert "kuberelay.io/pool" not in admin["spec"]["selector"]  # every pool


def test_everything_pools_services_and_autoscaling(all_docs):
    pools = relay_pools(all_docs)
    assert set(pools) == {"default", "internal", "submission"}
    services = {d["metadata"]["labels"]["kuberelay.io/pool"]: d for d in component(all_docs, "Service", "relay")
                if d["metadata"]["labels"].get("kuberelay.io/service") != "metrics"}
    main = services["default"]["spec"]
    assert main["type"] == "LoadBalancer" and main["externalTrafficPolicy"] == "Local"
    assert main["ports"][0]["nodePort"] == 30025
    assert services["internal"]["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in services["internal"]["spec"]["ports"]] == [25]
    assert [(p["port"], p["targetPort"]) for p in services["submission"]["spec"]["ports"]] == [(587, 2587), (465, 2465)]
    assert flags(container(pools["submission"], "relay"))["--standby-ports"] == "2587,2465"
    assert flags(container(pools["internal"], "relay"))["--pool"] == "internal"
    # HPA (autoscaling/v2 on CPU) where enabled; no fixed replicas there.
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(all_docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"kuberelay-all-relay", "kuberelay-all-relay-submission"}
    for name, h in hpas.items():
        assert h["apiVersion"] == "autoscaling/v2"
        assert h["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert "replicas" not in one(all_docs, "Deployment", name)["spec"]
    assert pools["internal"]["spec"]["replicas"] == 2
    assert "topologySpreadConstraints" not in pools["internal"]["spec"]["template"]["spec"]
    pdbs = {p["metadata"]["name"] for p in component(all_docs, "PodDisruptionBudget", "relay")}
    assert pdbs == {"kuberelay-all-relay", "kuberelay-all-relay-submission"}


# ---------------------------------------------------------------------------------- RBAC

def test_rbac_is_exactly_what_the_operator_needs(default_docs):
    """Cluster-wide: the three kinds, Secrets, status, Events, the three CRDs by name; the Lease
    by name in the release namespace. Nothing else (no wildcard, no delete, no pods)."""
    sa = one(default_docs, "ServiceAccount", "kr-kuberelay-operator")
    cluster_role = one(default_docs, "ClusterRole")
    assert expand_rules(cluster_role["rules"]) == operator_needs() | CRD_RULES
    binding = one(default_docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "mail"}]
    role = one(default_docs, "Role")
    assert role["metadata"]["namespace"] == "mail"
    lease = flags(container(one(default_docs, "Deployment", "kr-kuberelay-operator"), "operator"))["--leader-election-id"]
    assert expand_rules(role["rules"]) == lease_rules(lease)
    rb = one(default_docs, "RoleBinding")
    assert rb["roleRef"]["name"] == role["metadata"]["name"] and rb["subjects"][0]["name"] == sa["metadata"]["name"]
    # The relays get a ServiceAccount with no role at all.
    relay_sa = one(default_docs, "ServiceAccount", "kr-kuberelay-relay")["metadata"]["name"]
    for b in of_kind(default_docs, "RoleBinding") + of_kind(default_docs, "ClusterRoleBinding"):
        assert relay_sa not in [s["name"] for s in b["subjects"]]


def test_rbac_with_watched_namespaces(all_docs):
    """operator.watchNamespaces: the namespaced rules move into a Role per namespace; the
    cluster-wide part shrinks to the CRD reads."""
    assert expand_rules(one(all_docs, "ClusterRole")["rules"]) == CRD_RULES
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in of_kind(all_docs, "Role")}
    assert expand_rules(roles[("mail-a", "kuberelay-all-operator-watch")]["rules"]) == operator_needs()
    assert expand_rules(roles[("mail-b", "kuberelay-all-operator-watch")]["rules"]) == operator_needs()
    assert expand_rules(roles[("mail", "kuberelay-all-operator-lease")]["rules"]) == lease_rules("kuberelay-all-leader")
    assert len(roles) == 3
    no_events = render("--set", "operator.events=false")
    assert expand_rules(one(no_events, "ClusterRole")["rules"]) == operator_needs(events=False) | CRD_RULES
    assert "--no-events" in flags(container(one(no_events, "Deployment", "kr-kuberelay-operator"), "operator"))


# --------------------------------------------------------------------- policy channel TLS

def test_generated_policy_certificates(default_docs, tmp_path):
    server = secret_data(one(default_docs, "Secret", "kr-kuberelay-policy-server"))
    client = secret_data(one(default_docs, "Secret", "kr-kuberelay-policy-client"))
    assert set(server) == set(client) == {"tls.crt", "tls.key", "ca.crt"}
    assert server["ca.crt"] == client["ca.crt"]
    names = cert_dns_names(server["tls.crt"])
    assert names == {"kr-kuberelay-policy", "kr-kuberelay-policy.mail", "kr-kuberelay-policy.mail.svc",
                     "kr-kuberelay-policy.mail.svc.cluster.local"}
    # The name the relays dial is in the server certificate.
    relay = one(default_docs, "Deployment", "kr-kuberelay-relay")
    assert flags(container(relay, "relay"))["--control-plane"].rsplit(":", 1)[0] in names
    for name, data in (("server", server), ("client", client)):
        for k, v in data.items():
            (tmp_path / f"{name}-{k}").write_bytes(v)
        run(["openssl", "verify", "-CAfile", tmp_path / f"{name}-ca.crt", tmp_path / f"{name}-tls.crt"])
        # The key belongs to the certificate.
        pub_cert = run(["openssl", "x509", "-noout", "-pubkey", "-in", tmp_path / f"{name}-tls.crt"]).stdout
        pub_key = run(["openssl", "pkey", "-pubout", "-in", tmp_path / f"{name}-tls.key"]).stdout
        assert pub_cert == pub_key
    extra = render("--set", "policyTLS.extraDNSNames={localhost,relay-policy.example.com}")
    assert {"localhost", "relay-policy.example.com"} <= cert_dns_names(
        secret_data(one(extra, "Secret", "kr-kuberelay-policy-server"))["tls.crt"])


def test_cert_manager_certificates(all_docs):
    certs = {c["metadata"]["name"]: c["spec"] for c in of_kind(all_docs, "Certificate")}
    issuers = {i["metadata"]["name"]: i["spec"] for i in of_kind(all_docs, "Issuer")}
    assert issuers == {"kuberelay-all-selfsigned": {"selfSigned": {}},
                       "kuberelay-all-policy-ca": {"ca": {"secretName": "kuberelay-all-policy-ca"}}}
    assert certs["kuberelay-all-policy-ca"]["isCA"] is True
    server, client = certs["kuberelay-all-policy-server"], certs["kuberelay-all-policy-client"]
    assert server["dnsNames"] == ["kuberelay-all-policy", "kuberelay-all-policy.mail", "kuberelay-all-policy.mail.svc",
                                  "kuberelay-all-policy.mail.svc.cluster.local", "kuberelay-policy.mail.example.com"]
    assert "server auth" in server["usages"] and "client auth" in client["usages"]
    assert server["issuerRef"]["name"] == client["issuerRef"]["name"] == "kuberelay-all-policy-ca"
    # The Deployments mount what the Certificates write.
    mounted = {v["secret"]["secretName"] for _, spec in pod_templates(all_docs) for v in spec["volumes"] if "secret" in v}
    assert mounted == {server["secretName"], client["secretName"]}
    own = render("-f", str(EVERYTHING), "--set", "certManager.issuerRef.name=corp-ca,certManager.issuerRef.kind=ClusterIssuer")
    assert not of_kind(own, "Issuer")
    assert {c["spec"]["issuerRef"]["name"] for c in of_kind(own, "Certificate")} == {"corp-ca"}


# ------------------------------------------------------------------------------- network

def test_network_policies(all_docs):
    nps = {n["metadata"]["name"]: n["spec"] for n in of_kind(all_docs, "NetworkPolicy")}
    assert set(nps) == {"kuberelay-all-relay", "kuberelay-all-relay-internal", "kuberelay-all-relay-submission",
                        "kuberelay-all-operator"}
    op_labels = one(all_docs, "Deployment", "kuberelay-all-operator")["spec"]["selector"]["matchLabels"]
    for name, spec in nps.items():
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        dns = [e for e in spec["egress"] if {"port": 53, "protocol": "UDP"} in e["ports"]]
        assert dns, f"{name}: no DNS egress"
    relay = nps["kuberelay-all-relay"]
    smtp_in = relay["ingress"][0]
    assert [p["port"] for p in smtp_in["ports"]] == [2525, 2587, 2465]
    assert smtp_in["from"][0] == {"ipBlock": {"cidr": "10.0.0.0/8"}}
    admin_in = relay["ingress"][1]
    assert admin_in["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert admin_in["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    to_operator = relay["egress"][0]
    assert to_operator["ports"] == [{"port": 9443, "protocol": "TCP"}]
    assert to_operator["to"] == [{"podSelector": {"matchLabels": op_labels}}]
    next_hops = relay["egress"][2]
    assert [p["port"] for p in next_hops["ports"]] == [25, 587]
    op = nps["kuberelay-all-operator"]
    grpc_in = op["ingress"][0]
    assert grpc_in["ports"] == [{"port": 9443, "protocol": "TCP"}]
    assert [f["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for f in grpc_in["from"]] == ["relay"]
    assert op["egress"][0] == {"ports": [{"port": 6443, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}]}
    # Defaults (when enabled): SMTP from anywhere, next hops anywhere on 25/587/465.
    on = {n["metadata"]["name"]: n["spec"] for n in of_kind(render("--set", "networkPolicy.enabled=true"), "NetworkPolicy")}
    assert "from" not in on["kr-kuberelay-relay"]["ingress"][0]
    assert "to" not in on["kr-kuberelay-relay"]["egress"][2]


# ---------------------------------------------------------------------------- monitoring

def test_monitoring_objects_only_with_the_prometheus_operator():
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & {d["kind"] for d in render()}
    docs = render(*MONITORING)
    monitors = {m["metadata"]["name"]: m for m in of_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {"kr-kuberelay-operator", "kr-kuberelay-relay"}
    for name, m in monitors.items():
        comp = name.rsplit("-", 1)[1]
        svc = [s for s in component(docs, "Service", comp) if s["metadata"]["labels"].get("kuberelay.io/service") == "metrics"]
        assert len(svc) == 1
        labels = svc[0]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in m["spec"]["selector"]["matchLabels"].items()), name
        assert m["spec"]["endpoints"][0]["port"] == "http-admin" and m["spec"]["endpoints"][0]["path"] == "/metrics"
    pods = render(*MONITORING, "--set", "metrics.serviceMonitor.enabled=false,metrics.podMonitor.enabled=true")
    assert not of_kind(pods, "ServiceMonitor")
    pms = {p["metadata"]["name"]: p for p in of_kind(pods, "PodMonitor")}
    assert set(pms) == {"kr-kuberelay-operator", "kr-kuberelay-relay"}
    assert pms["kr-kuberelay-relay"]["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["targetLabel"] == "pool"


def chart_copy(tmp_path, dashboards: dict | None, rules: dict | None):
    """The chart without the dashboards engineer's files, plus the given ones."""
    dest = tmp_path / "kuberelay"
    shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("dashboards", "alerts"))
    if dashboards is not None:
        (dest / "dashboards").mkdir()
        for name, body in dashboards.items():
            (dest / "dashboards" / name).write_text(json.dumps(body, indent=2))
    if rules is not None:
        (dest / "alerts").mkdir()
        (dest / "alerts" / "kuberelay.rules.yaml").write_text(yaml.safe_dump(rules))
    return dest


def test_without_dashboards_and_rules(tmp_path):
    """No dashboards/ and no alerts/ (or empty ones): everything else renders, and no empty
    ConfigMap or PrometheusRule."""
    for d, r in ((None, None), ({}, {})):
        chart = chart_copy(tmp_path / str(d is None), d, r)
        run([helm(), "lint", "--strict", chart])
        docs = render(*MONITORING, chart=chart)
        assert not of_kind(docs, "ConfigMap") and not of_kind(docs, "PrometheusRule")
        assert of_kind(docs, "ServiceMonitor")


def test_dashboards_and_rules_are_loaded(tmp_path):
    dashboards = {"overview.json": {"title": "KubeRelay overview", "panels": [{"expr": 'sum(rate(x{a="b"}[5m]))'}]},
                  "policy.json": {"title": "KubeRelay policy"}}
    rules = {"groups": [{"name": "kuberelay", "rules": [
        {"alert": "KubeRelayNack", "expr": "increase(kuberelay_policy_updates_total{result=\"nack\"}[5m]) > 0",
         "for": "5m", "labels": {"severity": "warning"},
         "annotations": {"summary": "{{ $labels.pod }} refused policy {{ $value }}"}}]}]}
    chart = chart_copy(tmp_path, dashboards, rules)
    docs = render(*MONITORING, "--set", "grafana.dashboards.namespace=monitoring", chart=chart)
    cms = {c["metadata"]["name"]: c for c in of_kind(docs, "ConfigMap")}
    assert set(cms) == {"kr-kuberelay-dashboard-overview", "kr-kuberelay-dashboard-policy"}
    for name, cm in cms.items():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == "monitoring"
        (key, body), = cm["data"].items()
        assert json.loads(body) == dashboards[key]
    rule = one(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == rules["groups"]  # Prometheus templates survive untouched
    relabelled = render(*MONITORING, "--set", "grafana.dashboards.label=dash,grafana.dashboards.labelValue=yes",
                        chart=chart)
    assert {c["metadata"]["labels"].get("dash") for c in of_kind(relabelled, "ConfigMap")} == {"yes"}
    off = render(*MONITORING, "--set", "grafana.dashboards.enabled=false,prometheusRule.enabled=false", chart=chart)
    assert not of_kind(off, "ConfigMap") and not of_kind(off, "PrometheusRule")


def test_the_chart_ships_the_dashboards_and_rules_that_exist():
    """Whatever is in helm/kuberelay/dashboards and alerts now: one ConfigMap per dashboard, the
    rule file's groups in the PrometheusRule."""
    docs = render(*MONITORING)
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json")) if (CHART / "dashboards").is_dir() else []
    keys = sorted(k for c in of_kind(docs, "ConfigMap") for k in c["data"])
    assert keys == files
    rules_file = CHART / "alerts" / "kuberelay.rules.yaml"
    rules = yaml.safe_load(rules_file.read_text()) if rules_file.is_file() else None
    if rules and rules.get("groups"):
        assert one(docs, "PrometheusRule")["spec"]["groups"] == rules["groups"]
    else:
        assert not of_kind(docs, "PrometheusRule")


def test_values_yaml_documents_every_key():
    """values.yaml and values.schema.json describe the same keys (the schema is strict)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(v, s, path):
        if "$ref" in s:
            s = schema["definitions"][s["$ref"].split("/")[-1]]
        if isinstance(v, dict) and s.get("additionalProperties") is False:
            assert set(v) <= set(s["properties"]), f"{path}: {set(v) - set(s['properties'])} not in the schema"
            for k, sub in v.items():
                walk(sub, s["properties"][k], f"{path}.{k}")
            missing = set(s["properties"]) - set(v) - {"global", "issuerRef", "claims", "successThreshold",
                                                       "terminationGracePeriodSeconds", "rotationPolicy"}
            if path not in (".operator.livenessProbe", ".operator.readinessProbe", ".relay.livenessProbe",
                            ".relay.readinessProbe", ".operator.resources", ".relay.resources",
                            ".certManager.privateKey", ".certManager.issuerRef"):
                assert not missing, f"{path}: {missing} in the schema but not in values.yaml"
    walk(values, schema, "")

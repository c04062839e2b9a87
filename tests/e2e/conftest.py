"""The end-to-end stack, started once for the tier: a real kube-apiserver + etcd with the CRDs,
kuberelay-operator (policy channel with mutual TLS, Events on), two kuberelay-relay processes in
cluster mode, one smtp-sink as their next hop, and Prometheus scraping the operator and both
relays every second."""

from __future__ import annotations

import e2elib  # noqa: F401  (first: puts tests/operator, integration and dashboards on sys.path)
import pytest
from e2elib import (OPERATOR_JOB, RELAY_JOB, ClusterRelay, Operator, PrometheusServer, Sink, Stack, port_offset,
                    relaytest, wait_for)
from test_distribution import pki  # noqa: F401  (module fixture: the policy channel's CA and certificates)
from test_operator_apiserver import crds, kube  # noqa: F401  (module fixtures: the API server and the CRDs)

RELAYS = ("relay-a", "relay-b")  # the names pki() made client certificates for


@pytest.fixture(scope="module")
def stack(kube, crds, pki, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("e2e")
    stoppers = []
    try:
        sink = Sink(work)
        stoppers.append(sink.stop)
        grpc_port = relaytest.free_port()
        operator = Operator(kube, work / "operator.log",
                            "--policy-listen", f"127.0.0.1:{grpc_port}", "--policy-tls-cert", str(pki / "operator.crt"),
                            "--policy-tls-key", str(pki / "operator.key"), "--policy-client-ca", str(pki / "ca.crt"))
        stoppers.append(operator.stop)
        operator.wait_ready()
        relays: list[ClusterRelay] = []
        for name in RELAYS:
            relays.append(ClusterRelay(name, grpc_port, pki, work, port_offset({r.offset for r in relays})))
            stoppers.append(relays[-1].stop)
        wait_for("both relays subscribed", lambda: operator.metric("kuberelay_operator_relays_connected",
                                                                   pool="default") == 2, timeout=30)
        prom = PrometheusServer(work, {
            OPERATOR_JOB: [(operator.port, {})],
            RELAY_JOB: [(r.admin_port, {"pod": r.name}) for r in relays],
        })
        stoppers.append(prom.stop)
        wait_for("Prometheus to scrape the operator and both relays",
                 lambda: len(prom.api.query('up == 1')) == 3, timeout=30)
        yield Stack(kube, operator, relays, sink, prom, work)
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as e:  # keep stopping the others
                print(f"stopping: {e}")

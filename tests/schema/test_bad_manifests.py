"""Manifests that must be refused.

bad/      one defect each, caught by the openAPIV3Schema. First line ``# expect: <substring of the
          jsonschema message>``, optionally ``# at: <dotted path>`` (``<root>`` for the object).
bad-cel/  schema-valid objects that only a CEL rule (x-kubernetes-validations) refuses. ``# expect:``
          is the rule's exact message; kube-apiserver tests apply these and look for it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import crdschema
from crdschema import HERE, dotted, expectations, load_yaml_documents, schema_errors

BAD_DIR = HERE / "bad"
BAD_CEL_DIR = HERE / "bad-cel"


def manifests(folder: Path):
    return [pytest.param(p, id=p.stem) for p in sorted(folder.glob("*.yaml"))]


def single_object(path: Path) -> dict:
    docs = load_yaml_documents(path)
    assert len(docs) == 1, "one object per file"
    return docs[0]


def describe(errors) -> list[str]:
    return [f"{dotted(e.absolute_path) or '<root>'}: {e.message}" for e in errors]


def test_there_are_enough_bad_manifests():
    assert len(manifests(BAD_DIR)) >= 12
    kinds = {single_object(p.values[0])["kind"] for p in manifests(BAD_DIR)}
    assert kinds == set(crdschema.CRD_KINDS)


@pytest.mark.parametrize("path", manifests(BAD_DIR))
def test_bad_manifest_is_rejected_with_the_expected_message(path):
    expect = expectations(path)
    assert path.read_text(encoding="utf-8").startswith("# expect: ")
    errors = schema_errors(single_object(path))
    assert len(errors) == 1, f"expected exactly one error (one defect per file), got {describe(errors)}"
    assert expect["expect"] in errors[0].message, describe(errors)
    if "at" in expect:
        assert (dotted(errors[0].absolute_path) or "<root>") == expect["at"], describe(errors)


@pytest.mark.parametrize("path", manifests(BAD_CEL_DIR))
def test_cel_only_manifest_passes_the_schema_and_names_a_real_rule_message(path):
    doc = single_object(path)
    assert describe(schema_errors(doc)) == [], "only the CEL rule may reject this manifest"
    messages = [
        rule["message"]
        for _, node in crdschema.walk_schema(crdschema.openapi_schema(doc["kind"]))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert expectations(path)["expect"] in messages


def test_every_cel_rule_has_a_manifest_that_breaks_it():
    targeted = {expectations(p.values[0])["expect"] for p in manifests(BAD_CEL_DIR)}
    for kind in crdschema.CRD_KINDS:
        for path, node in crdschema.walk_schema(crdschema.openapi_schema(kind)):
            for rule in node.get("x-kubernetes-validations", []):
                assert rule["message"] in targeted, f"{kind}.{'.'.join(path)}: no bad-cel manifest for {rule['message']!r}"


# --- the other side: unusual but valid values stay accepted -----------------------------------

BASE_CONNECTOR = {
    "apiVersion": crdschema.API_VERSION,
    "kind": "ReceiveConnector",
    "metadata": {"name": "edge"},
    "spec": {"bindings": ["0.0.0.0:2525"], "forwarding": {"smarthosts": ["127.0.0.1:2526"]}},
}

VALID_CONNECTOR_VALUES = [
    ("bindings", ["[::]:2525", "[2001:db8::1]:25", "127.0.0.1:1", "10.0.0.5:65535", "[::ffff:10.0.0.1]:587"]),
    ("remoteIPRanges", ["192.168.1.1", "192.168.1.1-192.168.1.254", "192.168.1.0/24", "2001:0DB8::CD3/60",
                        "fe80::39bd:88f7:6969:d223%11", "::1", "0.0.0.0/0"]),
    ("remoteIPRanges", []),
    ("authMechanisms", []),
    ("permissionGroups", ["AnonymousUsers", "ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers", "Partners", "Custom"]),
    ("fqdn", "Relay-1.Example.com"),
    ("banner", "220 relay.example.com KubeRelay ESMTP ready"),
    ("limits", {"maxMessageSize": 1048576, "maxHeaderSize": "64Ki"}),
    ("limits", {"maxMessageSize": "25M", "connectionTimeout": "1h30m", "connectionInactivityTimeout": "90s"}),
    ("limits", {"tarpitInterval": "0s", "authTarpitInterval": "500ms", "maxLogonFailures": 0, "messageRateLimit": 0}),
    ("limits", {"connectionTimeout": "1.5h", "maxInboundConnection": 2147483647, "maxInboundConnectionPerSource": 10000}),
    ("proxyProtocol", {"trustedRanges": ["10.0.0.0/8", "fd00::/8"]}),
    ("forwarding", {"smarthosts": ["smtp.example.com:587", "[2001:db8::25]:25", "10.1.2.3:25"], "tls": "Required",
                    "credentialsSecretName": "smarthost-credentials", "caSecretName": "smarthost-ca"}),
    ("forwarding", {"dropDirectory": "/var/spool/kuberelay/drop"}),
    ("tls", {"secretName": "relay-tls", "implicit": True}),
    ("relayPool", "edge-pool-1"),
    ("protocolLogging", "Verbose"),
    ("enforcement", "Audit"),
]

VALID_PERMISSION_SPECS = [
    {"principal": "Anonymous", "extendedRights": ["MS-EXCH-SMTP-SUBMIT", "acceptanyrecipient", "Ms-Exchange-SMTP-Accept-Any-Recipient"]},
    {"principal": "ExternallySecured", "extendedRights": [
        "ms-Exch-SMTP-Submit", "ms-Exch-SMTP-Accept-Any-Recipient", "ms-Exch-SMTP-Accept-Any-Sender",
        "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender", "ms-Exch-Accept-Headers-Routing",
        "ms-Exch-Accept-Headers-Organization", "ms-Exch-Accept-Headers-Forest", "ms-Exch-Bypass-Anti-Spam",
        "ms-Exch-Bypass-Message-Size-Limit", "ms-Exch-SMTP-Accept-Authentication-Flag", "ms-Exch-SMTP-Accept-Exch50"]},
    {"principal": "Partners", "extendedRights": [
        "Submit", "AcceptAnyRecipient", "AcceptAnySender", "AcceptAuthoritativeDomainSender", "AcceptRoutingHeaders",
        "AcceptOrganizationHeaders", "AcceptForestHeaders", "BypassAntiSpam", "BypassMessageSizeLimit",
        "AcceptAuthenticationFlag", "AcceptExch50"]},
    {"principal": "User", "name": "mail.express@example.com", "extendedRights": ["AcceptAnySender"], "deny": True,
     "sendAs": ["alice@example.com", "*@example.com", "*@*.example.org", "o'brien+tag@Example.COM"]},
    {"principal": "Group", "name": "web-apps", "extendedRights": ["Submit"]},
]


@pytest.mark.parametrize(("field", "value"), VALID_CONNECTOR_VALUES,
                         ids=[f"{f}={v!r}"[:60] for f, v in VALID_CONNECTOR_VALUES])
def test_unusual_but_valid_connector_value_is_accepted(field, value):
    doc = copy.deepcopy(BASE_CONNECTOR)
    doc["spec"][field] = value
    assert describe(schema_errors(doc)) == []


@pytest.mark.parametrize("spec", VALID_PERMISSION_SPECS, ids=lambda s: s["principal"])
def test_unusual_but_valid_sender_permission_is_accepted(spec):
    doc = {"apiVersion": crdschema.API_VERSION, "kind": "SenderPermission", "metadata": {"name": "edge"},
           "spec": {"connector": "relay", **spec}}
    assert describe(schema_errors(doc)) == []


@pytest.mark.parametrize("domain", ["example.com", "*.example.com", "EXAMPLE.COM", "localdomain", "xn--bcher-kva.example"])
def test_unusual_but_valid_accepted_domain_is_accepted(domain):
    doc = {"apiVersion": crdschema.API_VERSION, "kind": "AcceptedDomain", "metadata": {"name": "edge"},
           "spec": {"domainName": domain, "domainType": "InternalRelay"}}
    assert describe(schema_errors(doc)) == []

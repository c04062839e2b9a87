"""The CRDs themselves: names, structural-schema hygiene, fixed field names, defaults, CEL rules."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

import crdschema
from crdschema import CRD_KINDS, GROUP, VERSION, openapi_schema, to_json_schema, walk_schema

EXPECTED_NAMES = {
    "ReceiveConnector": ("receiveconnectors", "receiveconnector", ["rc"]),
    "SenderPermission": ("senderpermissions", "senderpermission", ["sp"]),
    "AcceptedDomain": ("accepteddomains", "accepteddomain", ["ad"]),
}

# Field names are part of the API contract with the C++ decoder: any change must be deliberate.
EXPECTED_FIELDS = {
    ("ReceiveConnector", "spec"): {
        "enabled", "relayPool", "bindings", "remoteIPRanges", "ipRestrictionMode", "authMechanisms",
        "permissionGroups", "requireTLS", "fqdn", "banner", "tls", "users", "limits", "proxyProtocol",
        "forwarding", "protocolLogging", "enforcement",
    },
    ("ReceiveConnector", "spec.tls"): {"secretName", "implicit"},
    ("ReceiveConnector", "spec.users"): {"secretName"},
    ("ReceiveConnector", "spec.limits"): {
        "maxMessageSize", "maxHeaderSize", "maxRecipientsPerMessage", "maxHopCount",
        "maxInboundConnection", "maxInboundConnectionPerSource", "connectionTimeout",
        "connectionInactivityTimeout", "maxProtocolErrors", "maxLogonFailures", "tarpitInterval",
        "authTarpitInterval", "messageRateLimit",
    },
    ("ReceiveConnector", "spec.proxyProtocol"): {"trustedRanges"},
    ("ReceiveConnector", "spec.forwarding"): {"smarthosts", "tls", "credentialsSecretName", "caSecretName", "dropDirectory"},
    ("ReceiveConnector", "status"): {"observedGeneration", "policyVersion", "relays", "conditions"},
    ("ReceiveConnector", "status.relays"): {"total", "applied"},
    ("SenderPermission", "spec"): {"connector", "principal", "name", "extendedRights", "deny", "sendAs"},
    ("SenderPermission", "status"): {"observedGeneration", "policyVersion", "relays", "conditions"},
    ("AcceptedDomain", "spec"): {"domainName", "domainType"},
    ("AcceptedDomain", "status"): {"observedGeneration", "policyVersion", "relays", "conditions"},
}

EXPECTED_REQUIRED = {
    ("ReceiveConnector", "spec"): {"bindings", "forwarding"},
    ("ReceiveConnector", "spec.tls"): {"secretName"},
    ("ReceiveConnector", "spec.users"): {"secretName"},
    ("ReceiveConnector", "spec.proxyProtocol"): {"trustedRanges"},
    ("SenderPermission", "spec"): {"connector", "principal", "extendedRights"},
    ("AcceptedDomain", "spec"): {"domainName"},
}

# Defaults the C++ decoder must apply identically when a field is absent.
EXPECTED_DEFAULTS = {
    ("ReceiveConnector", "spec.enabled"): True,
    ("ReceiveConnector", "spec.relayPool"): "default",
    ("ReceiveConnector", "spec.remoteIPRanges"): ["0.0.0.0/0", "::/0"],
    ("ReceiveConnector", "spec.ipRestrictionMode"): "AllClients",
    ("ReceiveConnector", "spec.requireTLS"): False,
    ("ReceiveConnector", "spec.tls.implicit"): False,
    ("ReceiveConnector", "spec.limits"): {},
    ("ReceiveConnector", "spec.limits.maxMessageSize"): "36Mi",
    ("ReceiveConnector", "spec.limits.maxHeaderSize"): "256Ki",
    ("ReceiveConnector", "spec.limits.maxRecipientsPerMessage"): 200,
    ("ReceiveConnector", "spec.limits.maxHopCount"): 30,
    ("ReceiveConnector", "spec.limits.maxInboundConnection"): 5000,
    ("ReceiveConnector", "spec.limits.maxInboundConnectionPerSource"): 20,
    ("ReceiveConnector", "spec.limits.connectionTimeout"): "10m",
    ("ReceiveConnector", "spec.limits.connectionInactivityTimeout"): "5m",
    ("ReceiveConnector", "spec.limits.maxProtocolErrors"): 5,
    ("ReceiveConnector", "spec.limits.maxLogonFailures"): 3,
    ("ReceiveConnector", "spec.limits.tarpitInterval"): "5s",
    ("ReceiveConnector", "spec.limits.authTarpitInterval"): "5s",
    ("ReceiveConnector", "spec.limits.messageRateLimit"): 0,
    ("ReceiveConnector", "spec.forwarding.tls"): "Opportunistic",
    ("ReceiveConnector", "spec.protocolLogging"): "None",
    ("ReceiveConnector", "spec.enforcement"): "Enforce",
    ("SenderPermission", "spec.deny"): False,
    ("AcceptedDomain", "spec.domainType"): "Authoritative",
}

EXPECTED_ENUMS = {
    ("ReceiveConnector", "spec.ipRestrictionMode"): ["AllClients", "AnonymousOnly"],
    ("ReceiveConnector", "spec.authMechanisms[]"): ["Tls", "BasicAuth", "BasicAuthRequireTLS", "ExternalAuthoritative"],
    ("ReceiveConnector", "spec.permissionGroups[]"): [
        "AnonymousUsers", "ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers", "Partners", "Custom",
    ],
    ("ReceiveConnector", "spec.forwarding.tls"): ["None", "Opportunistic", "Required"],
    ("ReceiveConnector", "spec.protocolLogging"): ["None", "Verbose"],
    ("ReceiveConnector", "spec.enforcement"): ["Enforce", "Audit"],
    ("SenderPermission", "spec.principal"): ["Anonymous", "AuthenticatedUsers", "User", "Group", "ExternallySecured", "Partners"],
    ("AcceptedDomain", "spec.domainType"): ["Authoritative", "InternalRelay", "ExternalRelay"],
}

EXPECTED_PRINTER_COLUMNS = {
    "ReceiveConnector": [
        ("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        ("Bindings", ".spec.bindings"),
        ("Relays", ".status.relays.applied"),
        ("Age", ".metadata.creationTimestamp"),
    ],
    "SenderPermission": [
        ("Connector", ".spec.connector"),
        ("Principal", ".spec.principal"),
        ("Rights", ".spec.extendedRights"),
        ("Deny", ".spec.deny"),
        ("Age", ".metadata.creationTimestamp"),
    ],
    "AcceptedDomain": [
        ("Domain", ".spec.domainName"),
        ("Type", ".spec.domainType"),
        ("Age", ".metadata.creationTimestamp"),
    ],
}

CEL_KEYS = {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}
CEL_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


def node_at(kind: str, dotted_path: str) -> dict:
    """Schema node for 'spec.limits.maxHopCount' or 'spec.authMechanisms[]'."""
    node = openapi_schema(kind)
    for part in dotted_path.split("."):
        items = part.endswith("[]")
        node = node["properties"][part.removesuffix("[]")]
        if items:
            node = node["items"]
    return node


def all_nodes():
    for kind in CRD_KINDS:
        for path, node in walk_schema(openapi_schema(kind)):
            yield kind, path, node


def label(kind, path):
    return f"{kind}.{'.'.join(path) or '<root>'}"


def cel_rules():
    return [
        pytest.param(kind, path, node, rule, id=f"{label(kind, path)}#{index}")
        for kind, path, node in all_nodes()
        for index, rule in enumerate(node.get("x-kubernetes-validations", []))
    ]


# --- CRD identity -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CRD_KINDS)
def test_crd_file_holds_one_crd_named_plural_dot_group(kind):
    docs = crdschema.load_yaml_documents(crdschema.crd_file(kind))
    assert len(docs) == 1
    crd = docs[0]
    plural, singular, short = EXPECTED_NAMES[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["singular"] == singular
    assert spec["names"]["listKind"] == f"{kind}List"
    assert spec["names"]["shortNames"] == short
    assert spec["names"]["categories"] == ["kuberelay"]


@pytest.mark.parametrize("kind", CRD_KINDS)
def test_crd_serves_and_stores_v1alpha1_with_status_subresource(kind, crds):
    versions = crds[kind]["spec"]["versions"]
    assert [v["name"] for v in versions] == [VERSION]
    version = versions[0]
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    root = version["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    assert root["required"] == ["spec"]
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}


@pytest.mark.parametrize("kind", CRD_KINDS)
def test_printer_columns(kind, crds):
    columns = crdschema.served_version(crds[kind])["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"]) for c in columns] == EXPECTED_PRINTER_COLUMNS[kind]
    types = {c["name"]: c["type"] for c in columns}
    assert types["Age"] == "date"
    assert set(types.values()) <= {"string", "integer", "number", "boolean", "date"}


# --- API contract -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "path"), sorted(EXPECTED_FIELDS), ids=lambda v: v if isinstance(v, str) else None)
def test_field_names_are_exactly_the_agreed_ones(kind, path):
    assert set(node_at(kind, path)["properties"]) == EXPECTED_FIELDS[(kind, path)]


@pytest.mark.parametrize(("kind", "path"), sorted(EXPECTED_REQUIRED), ids=lambda v: v if isinstance(v, str) else None)
def test_required_fields(kind, path):
    assert set(node_at(kind, path).get("required", [])) == EXPECTED_REQUIRED[(kind, path)]


@pytest.mark.parametrize(("kind", "path"), sorted(EXPECTED_DEFAULTS), ids=lambda v: v if isinstance(v, str) else None)
def test_default_value(kind, path):
    assert node_at(kind, path)["default"] == EXPECTED_DEFAULTS[(kind, path)]


def test_every_default_is_listed_in_the_contract():
    found = set()
    for kind, path, node in all_nodes():
        if "default" in node:
            found.add((kind, ".".join(path).replace(".[]", "[]")))
    assert found == set(EXPECTED_DEFAULTS)


@pytest.mark.parametrize(("kind", "path"), sorted(EXPECTED_ENUMS), ids=lambda v: v if isinstance(v, str) else None)
def test_enum_values(kind, path):
    assert node_at(kind, path)["enum"] == EXPECTED_ENUMS[(kind, path)]


# --- structural-schema hygiene (what kube-apiserver and its CEL cost estimator need) -----------


def test_every_node_is_typed():
    untyped = [
        label(kind, path)
        for kind, path, node in all_nodes()
        if "type" not in node and not node.get("x-kubernetes-int-or-string")
    ]
    assert untyped == []


def test_int_or_string_nodes_use_the_structural_anyof_form():
    for kind, path, node in all_nodes():
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, label(kind, path)
            assert node.get("anyOf", [{"type": "integer"}, {"type": "string"}]) == [
                {"type": "integer"}, {"type": "string"},
            ], label(kind, path)


def test_every_string_is_bounded():
    # apiVersion and kind at the root are checked by the apiserver itself and never reach CEL
    unbounded = [
        label(kind, path)
        for kind, path, node in all_nodes()
        if path not in (("apiVersion",), ("kind",))
        and (node.get("type") == "string" or node.get("x-kubernetes-int-or-string"))
        and "maxLength" not in node
        and "enum" not in node
        and node.get("format") != "date-time"
    ]
    assert unbounded == []


def test_every_list_is_bounded_and_has_items():
    bad = [
        label(kind, path)
        for kind, path, node in all_nodes()
        if node.get("type") == "array" and ("maxItems" not in node or "items" not in node)
    ]
    assert bad == []


def test_every_number_has_minimum_and_maximum():
    bad = [
        label(kind, path)
        for kind, path, node in all_nodes()
        if (node.get("type") in ("integer", "number") or node.get("x-kubernetes-int-or-string"))
        and ("minimum" not in node or "maximum" not in node)
    ]
    assert bad == []


def test_integers_declare_a_format():
    bad = [
        label(kind, path)
        for kind, path, node in all_nodes()
        if node.get("type") == "integer" and node.get("format") not in ("int32", "int64")
    ]
    assert bad == []


def test_enum_lists_are_sets():
    bad = [
        label(kind, path)
        for kind, path, node in all_nodes()
        if node.get("type") == "array" and "enum" in node["items"] and node.get("x-kubernetes-list-type") != "set"
    ]
    assert bad == []


def test_objects_declare_their_properties():
    bad = []
    for kind, path, node in all_nodes():
        if node.get("type") != "object" or path == ("metadata",):
            continue
        if "properties" in node and "additionalProperties" in node:
            bad.append(f"{label(kind, path)}: properties and additionalProperties are exclusive")
        if "properties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            bad.append(f"{label(kind, path)}: no properties")
        for name in node.get("required", []):
            if name not in node.get("properties", {}):
                bad.append(f"{label(kind, path)}: required {name!r} is not a property")
    assert bad == []


def test_condition_lists_are_maps_keyed_by_type():
    for kind in CRD_KINDS:
        conditions = node_at(kind, "status.conditions")
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
        assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_patterns_are_anchored_and_compile():
    for kind, path, node in all_nodes():
        if "pattern" not in node:
            continue
        pattern = node["pattern"]
        assert re.sub(r"^\(\?i\)", "", pattern).startswith("^"), label(kind, path)
        re.compile(crdschema.re2_to_python(pattern))
        # RE2 has no look-around and no back-references
        assert not re.search(r"\(\?[=!<]|\\[1-9]", pattern), label(kind, path)


def test_defaults_validate_against_their_own_schema():
    for kind, path, node in all_nodes():
        if "default" in node:
            errors = list(Draft202012Validator(to_json_schema(node)).iter_errors(node["default"]))
            assert errors == [], f"{label(kind, path)}: {[e.message for e in errors]}"


# --- CEL rules --------------------------------------------------------------------------------

SELF_REF = re.compile(r"(has\(\s*)?\bself((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\s*\()?")


def _balanced(rule: str) -> bool:
    stack, quote = [], None
    pairs = {")": "(", "]": "[", "}": "{"}
    for c in rule:
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([{":
            stack.append(c)
        elif c in pairs:
            if not stack or stack.pop() != pairs[c]:
                return False
    return not stack and quote is None


def test_cel_rules_exist_where_agreed():
    counts = {
        ("ReceiveConnector", "spec"): 6,
        ("ReceiveConnector", "spec.forwarding"): 1,
        ("SenderPermission", "spec"): 2,
    }
    found = {}
    for kind, path, node in all_nodes():
        if node.get("x-kubernetes-validations"):
            found[(kind, ".".join(path))] = len(node["x-kubernetes-validations"])
    assert found == counts


@pytest.mark.parametrize(("kind", "path", "node", "rule"), cel_rules())
def test_cel_rule_is_well_formed(kind, path, node, rule):
    assert set(rule) <= CEL_KEYS
    assert isinstance(rule.get("rule"), str) and rule["rule"].strip()
    assert isinstance(rule.get("message"), str) and rule["message"].strip()
    assert "\n" not in rule["message"]
    assert _balanced(rule["rule"]), "unbalanced brackets or quotes"
    if "reason" in rule:
        assert rule["reason"] in CEL_REASONS
    if "fieldPath" in rule:
        assert rule["fieldPath"].startswith(".")
        target = node
        for part in rule["fieldPath"][1:].split("."):
            assert part in target.get("properties", {}), f"fieldPath {rule['fieldPath']} does not exist"
            target = target["properties"][part]


@pytest.mark.parametrize(("kind", "path", "node", "rule"), cel_rules())
def test_cel_rule_only_reads_declared_fields_and_guards_optional_ones(kind, path, node, rule):
    text = rule["rule"]
    for match in SELF_REF.finditer(text):
        inside_has, chain, is_call = match.group(1), match.group(2)[1:].split("."), match.group(3)
        if is_call:  # self.list.all(...), self.x.size() ...: the last name is a method
            chain = chain[:-1]
        current, prefix = node, []
        for name in chain:
            assert name in current.get("properties", {}), f"self.{'.'.join([*prefix, name])} is not a field"
            optional = name not in current.get("required", []) and "default" not in current["properties"][name]
            prefix.append(name)
            last = len(prefix) == len(chain)
            if optional and not (inside_has and last):
                assert f"has(self.{'.'.join(prefix)})" in text, f"self.{'.'.join(prefix)} is read without has()"
            current = current["properties"][name]

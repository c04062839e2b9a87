"""The example manifests: every custom resource validates against its CRD, every folder is
self-contained (a folder is loaded on its own, non-recursively), and the fixtures (Secrets,
passwords in README.md, loopback addresses, ports) are what the end-to-end tests rely on."""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
import subprocess
from pathlib import Path

import pytest

import crdschema
from crdschema import API_VERSION, CRD_KINDS, EXAMPLES_DIR, dotted, load_yaml_documents, schema_errors

ALLOWED_KINDS = {*CRD_KINDS, "Secret"}
LISTEN_PORTS = {2525, 2587, 2465}  # stand for 25, 587, 465
TEST_SMARTHOSTS = ["127.0.0.1:2526"]  # the local smtp-sink of the end-to-end tests
DEFAULT_RANGES = ["0.0.0.0/0", "::/0"]
USERS_LINE = re.compile(r"^(?P<name>[^\s:,]+):(?P<hash>\$6\$[^:$]+\$[^:$]+)(?::(?P<groups>[^\s:,]+(?:,[^\s:,]+)*))?$")

# What each scenario folder must contain (from the seeds); connector -> (bindings, auth, groups).
SCENARIOS = {
    "quickstart": {
        "quickstart": (["0.0.0.0:2525"], [], ["AnonymousUsers"]),
    },
    "000-anonymous-web-app": {
        "web-app-submission": (["0.0.0.0:2587"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"], ["ExchangeUsers"]),
    },
    "001-authenticated-submission": {
        "client-submission": (["0.0.0.0:2587"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"], ["ExchangeUsers"]),
    },
    "002-anonymous-by-connector-role": {
        "internet-bridgehead": (["0.0.0.0:2525"], ["Tls"], ["AnonymousUsers"]),
        "internal-hub": (["0.0.0.0:2525"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"],
                         ["ExchangeServers", "ExchangeLegacyServers"]),
        "client-submission": (["0.0.0.0:2587"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"], ["ExchangeUsers"]),
    },
    "002-anonymous-by-connector-role/risky": {
        "internet-bridgehead": (["0.0.0.0:2525"], ["Tls"], ["AnonymousUsers"]),
        "internal-hub": (["0.0.0.0:2525"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"],
                         ["ExchangeServers", "ExchangeLegacyServers", "AnonymousUsers"]),
        "client-submission": (["0.0.0.0:2587"], ["Tls", "BasicAuth"], ["ExchangeUsers", "AnonymousUsers"]),
    },
    "003-anonymous-relay-ip-restricted": {
        "anonymous-relay": (["0.0.0.0:2525"], ["Tls"], ["AnonymousUsers"]),
        "externally-secured-relay": (["0.0.0.0:2525"], ["Tls", "ExternalAuthoritative"], ["ExchangeServers"]),
        "internet-default": (["0.0.0.0:2525"], ["Tls"], ["AnonymousUsers"]),
    },
    "004-ip-restriction-flag": {
        "hub-anonymous-only": (["0.0.0.0:2525"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"],
                               ["AnonymousUsers", "ExchangeUsers", "ExchangeServers"]),
    },
    "004-ip-restriction-flag/all-clients": {
        "hub-anonymous-only": (["0.0.0.0:2525"], ["Tls", "BasicAuth", "BasicAuthRequireTLS"],
                               ["AnonymousUsers", "ExchangeUsers", "ExchangeServers"]),
    },
}


# --- collection -------------------------------------------------------------------------------


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))


def example_folders() -> list[Path]:
    return sorted({p.parent for p in example_files()})


def rel(path: Path) -> str:
    return path.relative_to(EXAMPLES_DIR).as_posix()


def example_documents():
    params = []
    for path in example_files():
        for index, doc in enumerate(load_yaml_documents(path)):
            name = (doc.get("metadata") or {}).get("name", "?")
            params.append(pytest.param(doc, id=f"{rel(path)}#{index}:{doc.get('kind')}/{name}"))
    return params


def custom_resources():
    return [p for p in example_documents() if p.values[0].get("kind") in CRD_KINDS]


@functools.cache
def folder_objects(folder: Path) -> dict[tuple[str, str], dict]:
    """(kind, name) -> object for the manifests directly in `folder` (not in subfolders)."""
    objects: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.y*ml")):
        for doc in load_yaml_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{rel(path)}: duplicate {key[0]}/{key[1]}"
            objects[key] = doc
    return objects


def of_kind(folder: Path, kind: str) -> list[dict]:
    return [obj for (k, _), obj in folder_objects(folder).items() if k == kind]


def secret_value(secret: dict, key: str) -> str | None:
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    if key in (secret.get("data") or {}):
        return base64.b64decode(secret["data"][key], validate=True).decode()
    return None


def users_in(secret: dict) -> dict[str, tuple[str, list[str]]]:
    """name -> (crypt hash, groups) from a users Secret."""
    users = {}
    for line in secret_value(secret, "users").splitlines():
        if not line.strip():
            continue
        match = USERS_LINE.match(line)
        assert match, f"users line is not name:$6$salt$hash[:group,...]: {line!r}"
        assert match["name"] not in users, f"duplicate user {match['name']}"
        users[match["name"]] = (match["hash"], match["groups"].split(",") if match["groups"] else [])
    return users


def readme_accounts(folder: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (password, groups) from the '| user | password | groups |' table of README.md."""
    accounts, in_table = {}, False
    for line in (folder / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells and cells[:2] == ["user", "password"]:
            in_table = True
        elif in_table and cells and not set(cells[0]) <= set("-: "):
            groups = cells[2].split(",") if len(cells) > 2 and cells[2] else []
            accounts[cells[0]] = (cells[1], [g.strip() for g in groups])
        elif in_table and not cells:
            in_table = False
    return accounts


def ip_intervals(spec: str) -> tuple[int, int, int]:
    """'a', 'a/len', 'a-b' -> (ip version, first, last)."""
    if "-" in spec:
        first, last = (ipaddress.ip_address(part) for part in spec.split("-", 1))
        assert first.version == last.version and int(first) <= int(last), spec
        return first.version, int(first), int(last)
    network = ipaddress.ip_network(spec.split("%", 1)[0] if "/" not in spec else spec, strict=False)
    return network.version, int(network.network_address), int(network.broadcast_address)


LOOPBACK = [ip_intervals("127.0.0.0/8"), ip_intervals("::1")]


@functools.cache
def openssl_out(openssl: str, args: tuple[str, ...], stdin: str) -> str:
    result = subprocess.run([openssl, *args], input=stdin, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --- every document ---------------------------------------------------------------------------


@pytest.mark.parametrize("doc", example_documents())
def test_document_kind_is_known_and_not_namespaced(doc):
    assert doc.get("kind") in ALLOWED_KINDS
    assert doc["apiVersion"] == ("v1" if doc["kind"] == "Secret" else API_VERSION)
    assert "namespace" not in doc.get("metadata", {}), "examples must not set metadata.namespace"


@pytest.mark.parametrize("doc", custom_resources())
def test_custom_resource_validates_against_its_crd(doc):
    errors = schema_errors(doc)
    assert [f"{dotted(e.absolute_path)}: {e.message}" for e in errors] == []


# --- every folder -----------------------------------------------------------------------------


folders = pytest.mark.parametrize("folder", example_folders(), ids=rel)


def test_every_scenario_folder_exists():
    assert {rel(f) for f in example_folders()} == set(SCENARIOS)


@folders
def test_folder_has_readme(folder):
    assert (folder / "README.md").is_file()


@folders
def test_folder_accepts_example_com_as_authoritative(folder):
    domains = {(d["spec"]["domainName"], d["spec"].get("domainType", "Authoritative")) for d in of_kind(folder, "AcceptedDomain")}
    assert ("example.com", "Authoritative") in domains


@folders
def test_connectors_match_the_seed_scenario(folder):
    connectors = {c["metadata"]["name"]: c["spec"] for c in of_kind(folder, "ReceiveConnector")}
    expected = SCENARIOS[rel(folder)]
    assert set(connectors) == set(expected)
    for name, (bindings, auth, groups) in expected.items():
        spec = connectors[name]
        assert (spec["bindings"], spec.get("authMechanisms", []), spec.get("permissionGroups", [])) == (
            bindings, auth, groups), name


@folders
def test_referenced_secrets_exist_in_the_same_folder(folder):
    secrets = {s["metadata"]["name"]: s for s in of_kind(folder, "Secret")}
    for connector in of_kind(folder, "ReceiveConnector"):
        spec, name = connector["spec"], connector["metadata"]["name"]
        if "tls" in spec:
            secret = secrets.get(spec["tls"]["secretName"])
            assert secret is not None, f"{name}: tls Secret {spec['tls']['secretName']} missing"
            assert secret.get("type") == "kubernetes.io/tls"
            assert {"tls.crt", "tls.key"} <= set(secret.get("data", {})), "TLS Secrets carry base64 data"
        if "users" in spec:
            secret = secrets.get(spec["users"]["secretName"])
            assert secret is not None, f"{name}: users Secret {spec['users']['secretName']} missing"
            assert secret.get("type") == "Opaque"
            assert secret_value(secret, "users"), f"{name}: users Secret has no 'users' key"
        if "credentialsSecretName" in spec["forwarding"]:
            secret = secrets.get(spec["forwarding"]["credentialsSecretName"])
            assert secret is not None, f"{name}: forwarding credentials Secret missing"
            assert secret_value(secret, "username") and secret_value(secret, "password")
        if "caSecretName" in spec["forwarding"]:
            secret = secrets.get(spec["forwarding"]["caSecretName"])
            assert secret is not None, f"{name}: forwarding CA Secret missing"
            assert "BEGIN CERTIFICATE" in secret_value(secret, "ca.crt")


@folders
def test_every_secret_is_used(folder):
    used = set()
    for connector in of_kind(folder, "ReceiveConnector"):
        spec = connector["spec"]
        used |= {spec.get("tls", {}).get("secretName"), spec.get("users", {}).get("secretName"),
                 spec["forwarding"].get("credentialsSecretName"), spec["forwarding"].get("caSecretName")}
    assert {s["metadata"]["name"] for s in of_kind(folder, "Secret")} <= used


@folders
def test_sender_permissions_name_a_connector_and_known_principals(folder):
    connectors = {c["metadata"]["name"]: c for c in of_kind(folder, "ReceiveConnector")}
    secrets = {s["metadata"]["name"]: s for s in of_kind(folder, "Secret")}
    for permission in of_kind(folder, "SenderPermission"):
        spec = permission["spec"]
        assert spec["connector"] in connectors, f"{permission['metadata']['name']}: no connector {spec['connector']}"
        if spec["principal"] in ("User", "Group"):
            connector = connectors[spec["connector"]]["spec"]
            users = users_in(secrets[connector["users"]["secretName"]])
            if spec["principal"] == "User":
                assert spec["name"] in users
            else:
                assert any(spec["name"] in groups for _, groups in users.values())


@folders
def test_users_secret_lines_are_well_formed(folder):
    for secret in of_kind(folder, "Secret"):
        if secret_value(secret, "users") is not None:
            assert users_in(secret)


@folders
def test_readme_passwords_match_the_users_secret(folder, openssl):
    accounts = readme_accounts(folder)
    users = {}
    for secret in of_kind(folder, "Secret"):
        if secret_value(secret, "users") is not None:
            users |= users_in(secret)
    assert set(accounts) == set(users), "README.md password table and users Secret disagree"
    for name, (crypt_hash, groups) in users.items():
        password, readme_groups = accounts[name]
        salt = crypt_hash.split("$")[2]
        computed = openssl_out(openssl, ("passwd", "-6", "-salt", salt, "-stdin"), password + "\n").strip()
        assert computed == crypt_hash, f"{name}: README password does not match the hash"
        assert readme_groups == groups, f"{name}: groups differ between README.md and the Secret"


@folders
def test_tls_secrets_hold_the_example_localhost_certificate(folder, openssl):
    for secret in of_kind(folder, "Secret"):
        if secret.get("type") != "kubernetes.io/tls":
            continue
        crt, key = secret_value(secret, "tls.crt"), secret_value(secret, "tls.key")
        assert crt.startswith("-----BEGIN CERTIFICATE-----")
        assert key.startswith("-----BEGIN PRIVATE KEY-----") or key.startswith("-----BEGIN EC PRIVATE KEY-----")
        text = openssl_out(openssl, ("x509", "-noout", "-subject", "-ext", "subjectAltName"), crt)
        assert "CN = localhost" in text or "CN=localhost" in text
        assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
        openssl_out(openssl, ("x509", "-noout", "-checkend", str(30 * 86400)), crt)  # valid for 30 more days
        assert openssl_out(openssl, ("x509", "-noout", "-pubkey"), crt) == openssl_out(openssl, ("pkey", "-pubout"), key)
        assert "prime256v1" in openssl_out(openssl, ("pkey", "-noout", "-text"), key)
    for path in folder.glob("*.y*ml"):
        if "kubernetes.io/tls" in path.read_text(encoding="utf-8"):
            assert "EXAMPLE / TEST KEY ONLY" in path.read_text(encoding="utf-8"), f"{rel(path)} must say so"


@folders
def test_clients_are_loopback_and_ports_unprivileged(folder):
    for connector in of_kind(folder, "ReceiveConnector"):
        spec, name = connector["spec"], connector["metadata"]["name"]
        for binding in spec["bindings"]:
            assert int(binding.rsplit(":", 1)[1]) in LISTEN_PORTS, f"{name}: {binding}"
        for spec_range in spec.get("remoteIPRanges", []):
            version, first, last = ip_intervals(spec_range)
            assert any(v == version and lo <= first and last <= hi for v, lo, hi in LOOPBACK), f"{name}: {spec_range}"


@folders
def test_forwarding_goes_to_the_local_sink(folder):
    for connector in of_kind(folder, "ReceiveConnector"):
        forwarding = connector["spec"]["forwarding"]
        if rel(folder) == "quickstart":
            assert forwarding == {"dropDirectory": "/tmp/kuberelay-quickstart/drop"}
        else:
            assert forwarding["smarthosts"] == TEST_SMARTHOSTS


@folders
def test_connectors_sharing_a_binding_have_distinct_nested_ranges(folder):
    """Exchange: IP:port may repeat only if RemoteIPRanges differ, and overlapping ranges must nest."""
    by_binding: dict[str, list[tuple[str, list]]] = {}
    for connector in of_kind(folder, "ReceiveConnector"):
        ranges = connector["spec"].get("remoteIPRanges", DEFAULT_RANGES)
        for binding in connector["spec"]["bindings"]:
            by_binding.setdefault(binding, []).append((connector["metadata"]["name"], ranges))
    for binding, entries in by_binding.items():
        for i, (name_a, ranges_a) in enumerate(entries):
            for name_b, ranges_b in entries[i + 1:]:
                assert sorted(ranges_a) != sorted(ranges_b), f"{binding}: {name_a} and {name_b} have the same ranges"
                for va, fa, la in map(ip_intervals, ranges_a):
                    for vb, fb, lb in map(ip_intervals, ranges_b):
                        if va != vb or la < fb or lb < fa:
                            continue  # disjoint
                        nested = (fa <= fb and lb <= la) or (fb <= fa and la <= lb)
                        assert nested, f"{binding}: ranges of {name_a} and {name_b} overlap without nesting"

"""Helpers for the schema tests: load the CRDs and turn their openAPIV3Schema into JSON Schema.

The conversion follows what kube-apiserver does with a structural schema, as far as JSON Schema can
express it:

* ``x-kubernetes-int-or-string: true`` -> ``anyOf: [{type: integer}, {type: string}]``
  (value validations such as ``pattern``/``minimum`` stay next to it and apply to the matching type).
* ``x-kubernetes-preserve-unknown-fields: true`` -> unknown fields allowed; otherwise objects with
  ``properties`` get ``additionalProperties: false``. kube-apiserver prunes unknown fields, and
  ``kubectl apply`` (strict field validation, the default since 1.25) rejects them; here they fail.
* ``x-kubernetes-list-type: set`` -> ``uniqueItems: true`` (the apiserver rejects duplicates in sets).
* ``nullable: true`` -> ``null`` added to the allowed types.
* ``default``, ``description`` and every other ``x-kubernetes-*`` key are dropped.
* Patterns: RE2 (Go) anchors ``$`` at the very end of the text, Python's ``$`` also matches before a
  trailing newline, so unescaped ``$`` outside a character class becomes ``\\Z``.
* ``metadata`` at the root becomes an object that requires a DNS-1123 subdomain ``name``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Iterator

import yaml
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
EXAMPLES_DIR = REPO / "examples"
HERE = Path(__file__).resolve().parent

GROUP = "smtp.kuberelay.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_KINDS = ("ReceiveConnector", "SenderPermission", "AcceptedDomain")

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": DNS_SUBDOMAIN},
    },
}

# Keys of an OpenAPI schema node that carry no validation for jsonschema.
_DROPPED = {"default", "description", "example", "externalDocs", "nullable", "title"}


def re2_to_python(pattern: str) -> str:
    """Make ``$`` mean end-of-text in Python, as it does in RE2 without the ``m`` flag."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            # a ']' right after '[' or '[^' is a literal member of the class
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                out.append(pattern[i : j + 1])
                i = j + 1
                continue
        elif c == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """Convert one openAPIV3Schema node (recursively) into a JSON Schema node."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not"):
            out[key] = to_json_schema(value)
        elif key == "additionalProperties":
            out[key] = value if isinstance(value, bool) else to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "pattern":
            out[key] = re2_to_python(value)
        else:
            out[key] = value

    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


@functools.cache
def load_crds() -> dict[str, dict[str, Any]]:
    """All CRDs under crds/, keyed by kind."""
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            crds[doc["spec"]["names"]["kind"]] = doc
    return crds


def crd_file(kind: str) -> Path:
    return CRD_DIR / f"{load_crds()[kind]['spec']['names']['plural']}.yaml"


def served_version(crd: dict[str, Any], name: str = VERSION) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v["name"] == name)


def openapi_schema(kind: str) -> dict[str, Any]:
    return served_version(load_crds()[kind])["schema"]["openAPIV3Schema"]


@functools.cache
def validator(kind: str) -> Draft202012Validator:
    schema = to_json_schema(openapi_schema(kind))
    metadata = copy.deepcopy(METADATA_SCHEMA)
    metadata["properties"]["name"]["pattern"] = re2_to_python(DNS_SUBDOMAIN)
    schema["properties"]["metadata"] = metadata
    schema["properties"]["apiVersion"] = {"const": API_VERSION}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(doc: dict[str, Any]) -> list:
    """jsonschema errors of a custom resource, sorted by path."""
    return sorted(validator(doc["kind"]).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))


def dotted(path) -> str:
    return ".".join(str(p) for p in path)


def walk_schema(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict]]:
    """Yield (path, node) for every schema node, depth first. Paths use property names, '[]' for items."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk_schema(sub, (*path, name))
    if isinstance(node.get("items"), dict):
        yield from walk_schema(node["items"], (*path, "[]"))
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schema(node["additionalProperties"], (*path, "{}"))


def expectations(path: Path) -> dict[str, str]:
    """Leading ``# key: value`` comment lines of a manifest (``# expect: ...``, ``# at: ...``)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(":")
        if sep and key.strip() in ("expect", "at", "why"):
            found[key.strip()] = value.strip()
    return found

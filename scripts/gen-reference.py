#!/usr/bin/env python3
"""Writes docs/reference.md from the CRDs in crds/: every field with its type, default and
validation, and each CRD's CEL rules. Run after changing a CRD:

    python3 scripts/gen-reference.py            # rewrite docs/reference.md
    python3 scripts/gen-reference.py --check    # exit 1 if docs/reference.md is out of date

tests/schema/test_reference.py runs --check, so the reference cannot drift from the CRDs."""

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "reference.md"
ORDER = ["receiveconnectors.yaml", "senderpermissions.yaml", "accepteddomains.yaml"]


def type_of(s: dict) -> str:
    if s.get("x-kubernetes-int-or-string"):
        return "integer or string"
    t = s.get("type", "")
    if t == "array":
        return f"list of {type_of(s.get('items', {}))}"
    if s.get("format"):
        return f"{t} ({s['format']})"
    return t or "object"


def validation(s: dict) -> str:
    parts = []
    if "enum" in s:
        parts.append("one of " + ", ".join(f"`{v}`" for v in s["enum"]))
    items = s.get("items", {})
    if "enum" in items:
        parts.append("each one of " + ", ".join(f"`{v}`" for v in items["enum"]))
    for key, label in (("minimum", "min"), ("maximum", "max"), ("minLength", "min length"),
                       ("maxLength", "max length"), ("minItems", "min items"),
                       ("maxItems", "max items")):
        if key in s:
            parts.append(f"{label} {s[key]}")
    if "pattern" in s:
        parts.append(f"pattern `{s['pattern']}`")
    if "pattern" in items:
        parts.append(f"each matches `{items['pattern']}`")
    if "maxLength" in items:
        parts.append(f"each at most {items['maxLength']} characters")
    if s.get("x-kubernetes-list-type") == "set":
        parts.append("no duplicates")
    return "; ".join(parts)


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def walk(schema: dict, path: str, required: set, rows: list, rules: list) -> None:
    for rule in schema.get("x-kubernetes-validations", []):
        rules.append((path or "(root)", rule.get("rule", ""), rule.get("message", "")))
    for name, sub in schema.get("properties", {}).items():
        p = f"{path}.{name}" if path else name
        default = sub.get("default")
        rows.append((p, type_of(sub), "yes" if name in required else "",
                     "" if default is None else f"`{json.dumps(default)}`",
                     validation(sub), sub.get("description", "")))
        target = sub.get("items", sub) if sub.get("type") == "array" else sub
        if target.get("properties") or target.get("x-kubernetes-validations"):
            walk(target, p + ("[]" if sub.get("type") == "array" else ""),
                 set(target.get("required", [])), rows, rules)


def render() -> str:
    out = ["# API reference (smtp.kuberelay.io/v1alpha1)", "",
           "Generated from `crds/` by `scripts/gen-reference.py`; do not edit by hand. What the",
           "fields mean for mail is in [concepts.md](concepts.md) and",
           "[policy-semantics.md](policy-semantics.md).", ""]
    for file in ORDER:
        crd = yaml.safe_load((REPO / "crds" / file).read_text())
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        out += [f"## {names['kind']}", "",
                f"`kubectl get {names['plural']}` (short names: {', '.join(names.get('shortNames', []))}); "
                f"namespaced; status subresource.", ""]
        if schema.get("description"):
            out += [cell(schema["description"]), ""]
        for part in ("spec", "status"):
            sub = schema["properties"].get(part)
            if not sub:
                continue
            rows, rules = [], []
            walk(sub, part, set(sub.get("required", [])), rows, rules)
            out += [f"### {part}", "", "| field | type | required | default | validation | description |",
                    "|---|---|---|---|---|---|"]
            out += [f"| `{r[0]}` | {cell(r[1])} | {r[2]} | {cell(r[3])} | {cell(r[4])} | {cell(r[5])} |"
                    for r in rows]
            out.append("")
            if rules:
                out += [f"Cross-field rules on `{part}` (CEL, checked at `kubectl apply` and again by the compiler):", "",
                        "| where | rule | message |", "|---|---|---|"]
                out += [f"| `{w}` | `{cell(r)}` | {cell(m)} |" for w, r, m in rules]
                out.append("")
    return "\n".join(out)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 scripts/gen-reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the dashboards tier and render.py share: the dashboards and rules of the chart, Grafana
variable substitution, the comparison of an alert expression, and a small Prometheus HTTP API
client. Standard library only (render.py runs under whichever Python has matplotlib)."""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kuberelay"
DASHBOARD_DIR = CHART / "dashboards"
RULES_FILE = CHART / "alerts" / "kuberelay.rules.yaml"
PNG_DIR = REPO / "docs" / "dashboards"

# Grafana's variables, as the tests evaluate them: every selector variable at "All" (its
# allValue ".*"), interval variables at fixed durations. $datasource is never inside an
# expression (it names the data source of a panel).
SUBSTITUTIONS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "10m",
    "namespace": ".*",
    "job": ".*",
    "operator_job": ".*",
    "connector": ".*",
    "pool": ".*",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)(?::[\w]+)?\]\]")
METRIC_NAME = re.compile(r"\bkuberelay_[a-z0-9_]+\b")


def variables_used(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def substitute(expr: str, overrides: dict[str, str] | None = None) -> str:
    """The expression with Grafana's variables replaced; KeyError names an unknown variable."""
    values = {**SUBSTITUTIONS, **(overrides or {})}

    def repl(m: re.Match) -> str:
        name = next(g for g in m.groups() if g)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    # label_replace's "${1}" is a capture-group reference, not a variable.
    return _VARIABLE.sub(lambda m: m.group(0) if (m.group(1) or "").isdigit() else repl(m), expr)


# --------------------------------------------------------------------------------- dashboards

@dataclass
class Target:
    dashboard: str      # file stem: overview, authentication, ...
    uid: str
    panel: dict
    target: dict

    @property
    def expr(self) -> str:
        return self.target["expr"]

    @property
    def id(self) -> str:
        title = re.sub(r"[^A-Za-z0-9]+", "-", self.panel["title"]).strip("-")
        return f"{self.dashboard}:{title}:{self.target['refId']}"

    @property
    def where(self) -> str:
        return (f"dashboard {self.dashboard}.json (uid {self.uid}), panel {self.panel['id']} "
                f"\"{self.panel['title']}\", target {self.target['refId']}")


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict) -> list[dict]:
    """Every panel, including those inside collapsed rows, in order."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def targets(path: Path) -> list[Target]:
    d = load_dashboard(path)
    return [Target(path.stem, d["uid"], p, t) for p in panels(d) for t in p.get("targets", [])
            if t.get("expr")]


def all_targets() -> list[Target]:
    return [t for f in dashboard_files() for t in targets(f)]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?(\w+)\s*\)\s*$", re.S)


def variable_query(var: dict) -> tuple[str, str] | None:
    """(selector, label) of a `label_values(selector, label)` query variable, else None."""
    if var.get("type") != "query":
        return None
    q = var.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = _LABEL_VALUES.match(q or "")
    if not m:
        raise ValueError(f"variable {var.get('name')}: only label_values(selector, label) is supported: {q!r}")
    return (m.group(1) or "").strip(), m.group(2)


# -------------------------------------------------------------------------------- alert rules

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?(" + _NUMBER + r")\s*$")


def split_comparison(expr: str) -> tuple[str, str | None, float | None]:
    """`query OP number` -> (query, OP, number) when OP is at the top level (outside every
    parenthesis, brace, bracket and string) and is the expression's last operator; else
    (expr, None, None). The tests evaluate the query: the series the condition looks at must
    exist, whether or not the condition holds."""
    depth = 0
    quote = None
    top_level_ops = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c in "=!<>":
            two = expr[i:i + 2]
            if two in ("==", "!=", ">=", "<="):
                top_level_ops.append(i)
                i += 2
                continue
            if c in "<>":
                top_level_ops.append(i)
        i += 1
    if not top_level_ops:
        return expr.strip(), None, None
    pos = top_level_ops[-1]
    m = _COMPARISON.match(expr, pos)
    if not m:
        return expr.strip(), None, None
    return expr[:pos].strip(), m.group(1), float(m.group(2))


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def markdown_anchors(path: Path) -> set[str]:
    out = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"^#{1,6} ", line):
            out.add(github_anchor(line.lstrip("#")))
    return out


# -------------------------------------------------------------------------------- Prometheus

class PrometheusError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, url: str, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict | None = None) -> dict:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                body = json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read().decode())
            except ValueError:
                raise PrometheusError(f"{path}: HTTP {e.code}") from e
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict]:
        params = {"query": expr}
        if time is not None:
            params["time"] = f"{time:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        data = self._get("/api/v1/query_range",
                         {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"})
        return data["result"]

    def targets(self) -> list[dict]:
        return self._get("/api/v1/targets")["activeTargets"]

    def rules(self) -> list[dict]:
        return self._get("/api/v1/rules")["groups"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


def finite(result: list[dict]) -> bool:
    """Whether any sample of an instant query's result is a finite number."""
    for series in result:
        try:
            if math.isfinite(float(series["value"][1])):
                return True
        except (KeyError, ValueError, TypeError):
            continue
    return False


def legend(fmt: str, labels: dict) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    if not fmt or fmt == "__auto":
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip() or "value"


def legend_labels(fmt: str) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", fmt or ""))

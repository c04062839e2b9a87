#!/usr/bin/env python3
"""Renders helm/kuberelay/dashboards/*.json to PNG for reviewers: the same PromQL as every panel
(variables at "All"), taken from a running Prometheus with query_range over a time window, drawn
with matplotlib in the dashboard's own grid (24 columns, gridPos). One PNG per dashboard,
<out>/<uid>.png. Time series panels are line plots, stat panels their last value (with the
series behind it), tables their rows at the end of the window, text panels their text.

    render.py --prometheus http://127.0.0.1:9090 --start UNIX --end UNIX [--step 1] [--out DIR]

tests/dashboards runs it at the end of its run against the Prometheus that scraped the test's
relays and operator; it exits non-zero (with the reason) if matplotlib cannot be imported.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402

try:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # panel text has $ signs, never TeX
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
except ImportError as err:  # the caller reports this; never a silent skip
    sys.stderr.write(f"render.py: matplotlib cannot be imported by {sys.executable}: {err}\n")
    sys.exit(3)

ROW_INCH = 0.36     # one gridPos height unit
WIDTH_INCH = 20.0
COLORS = {"green": "#37872d", "orange": "#e0752d", "red": "#c4162a", "blue": "#1f60c4"}


def fmt_value(v: float, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if unit == "percentunit":
        return f"{v * 100:.1f} %"
    if unit == "s":
        return f"{v * 1000:.1f} ms" if abs(v) < 1 else f"{v:.2f} s"
    if unit == "bytes":
        for suffix, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(v) >= scale:
                return f"{v / scale:.1f} {suffix}"
        return f"{v:.0f} B"
    if unit == "ops":
        return f"{v:.3g}/s"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def axis_formatter(unit: str):
    return FuncFormatter(lambda v, _pos: fmt_value(v, unit))


def threshold_color(panel: dict, value: float) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    color = "green"
    for s in steps:
        if s.get("value") is None or (value is not None and not math.isnan(value) and value >= s["value"]):
            color = s["color"]
    return COLORS.get(color, color)


def series_overrides(panel: dict) -> dict[str, str]:
    out = {}
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        if o.get("matcher", {}).get("id") != "byName":
            continue
        for p in o.get("properties", []):
            if p.get("id") == "color":
                out[o["matcher"]["options"]] = COLORS.get(p["value"].get("fixedColor"), p["value"].get("fixedColor"))
    return out


class Renderer:
    def __init__(self, prom: promql.Prometheus, start: float, end: float, step: float):
        self.prom = prom
        self.start = start
        self.end = end
        self.step = step
        span = max(60, int(end - start))
        # $__range is the window; $__rate_interval as in the tests.
        # Grafana's $__rate_interval is 4 scrape intervals at least; 10 s keeps a few seconds' load
        # readable (the tests evaluate with 1m).
        self.overrides = {"__range": f"{span}s", "__rate_interval": "10s"}
        self.errors: list[str] = []

    def expr(self, target: dict) -> str:
        return promql.substitute(target["expr"], self.overrides)

    def range_series(self, panel: dict):
        for t in panel.get("targets", []):
            try:
                result = self.prom.query_range(self.expr(t), self.start, self.end, self.step)
            except promql.PrometheusError as e:
                self.errors.append(f"{panel['title']} {t['refId']}: {e}")
                continue
            for s in result:
                xs = [float(v[0]) - self.start for v in s["values"]]
                ys = [float(v[1]) for v in s["values"]]
                yield promql.legend(t.get("legendFormat", ""), s["metric"]), xs, ys

    def timeseries(self, ax, panel: dict):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        colors = series_overrides(panel)
        n = 0
        for name, xs, ys in self.range_series(panel):
            ax.plot(xs, ys, label=name, linewidth=1.2, color=colors.get(name))
            n += 1
        ax.yaxis.set_major_formatter(axis_formatter(unit))
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, self.end - self.start)
        ax.grid(True, alpha=0.3)
        if n:
            ax.legend(fontsize=6, loc="upper left", ncol=2 if n > 4 else 1, framealpha=0.6)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")

    def stat(self, ax, panel: dict):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        series = list(self.range_series(panel))
        ax.set_xticks([])
        ax.set_yticks([])
        if not series:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
            return
        name, xs, ys = series[0]
        last = next((y for y in reversed(ys) if not math.isnan(y)), float("nan"))
        color = threshold_color(panel, last)
        spark = ax.twinx()
        spark.plot(xs, ys, color=color, alpha=0.35, linewidth=1)
        spark.fill_between(xs, ys, color=color, alpha=0.1)
        spark.set_yticks([])
        decimals = panel.get("fieldConfig", {}).get("defaults", {}).get("decimals")
        shown = f"{last:.{decimals}f}" if decimals is not None and unit == "short" else fmt_value(last, unit)
        ax.text(0.5, 0.45, shown, ha="center", va="center", transform=ax.transAxes,
                fontsize=20, color=color, fontweight="bold")

    def table(self, ax, panel: dict):
        ax.axis("off")
        hide = set()
        for tr in panel.get("transformations", []):
            hide |= {k for k, v in tr.get("options", {}).get("excludeByName", {}).items() if v}
        rename = {}
        for tr in panel.get("transformations", []):
            rename.update(tr.get("options", {}).get("renameByName", {}))
        rows, columns = [], []
        for t in panel.get("targets", []):
            try:
                result = self.prom.query(self.expr(t), self.end)
            except promql.PrometheusError as e:
                self.errors.append(f"{panel['title']} {t['refId']}: {e}")
                continue
            for s in result:
                labels = {k: v for k, v in s["metric"].items() if k != "__name__"}
                decimals = panel.get("fieldConfig", {}).get("defaults", {}).get("decimals")
                value = float(s["value"][1])
                labels["Value"] = f"{value:.{decimals}f}" if decimals is not None else fmt_value(value, "short")
                for k in labels:
                    if k not in columns and k not in hide:
                        columns.append(k)
                rows.append(labels)
        if not rows:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
            return
        cells = [[textwrap.shorten(str(r.get(c, "")), 40) for c in columns] for r in rows[:12]]
        tab = ax.table(cellText=cells, colLabels=[rename.get(c, c) for c in columns], loc="upper center",
                       cellLoc="left")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
        tab.scale(1, 1.2)

    def text(self, ax, panel: dict):
        ax.axis("off")
        content = panel.get("options", {}).get("content", "")
        lines = []
        for para in content.replace("```", "").split("\n"):
            lines += textwrap.wrap(para, 170) or [""]
        ax.text(0.0, 1.0, "\n".join(lines[:14]), ha="left", va="top", transform=ax.transAxes, fontsize=7,
                family="monospace")

    def dashboard(self, path: Path, out_dir: Path) -> Path:
        d = promql.load_dashboard(path)
        ps = promql.panels(d)
        units = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in ps)
        head, margin = 0.7, 0.15
        width, height = WIDTH_INCH, head + units * ROW_INCH + margin
        column = (width - 2 * margin) / 24
        fig = plt.figure(figsize=(width, height))

        def axes(g, pad_left, pad_top, pad_bottom, pad_right=0.15):
            x0 = margin + g["x"] * column
            top = head + g["y"] * ROW_INCH
            w, h = g["w"] * column, g["h"] * ROW_INCH
            return fig.add_axes([(x0 + pad_left) / width, 1 - (top + h - pad_bottom) / height,
                                 (w - pad_left - pad_right) / width, (h - pad_top - pad_bottom) / height])

        for p in ps:
            g = p["gridPos"]
            if p["type"] == "row":
                ax = axes(g, 0.05, 0.0, 0.05)
                ax.axis("off")
                ax.text(0, 0.1, p["title"], fontsize=12, fontweight="bold", transform=ax.transAxes)
                ax.axhline(0, color="#888888", linewidth=0.6)
                continue
            kind = p["type"]
            if kind == "timeseries":
                ax = axes(g, 0.75, 0.3, 0.3)
            else:
                ax = axes(g, 0.1, 0.3, 0.1)
            ax.set_title(p["title"], fontsize=9, loc="left")
            if kind == "stat":
                self.stat(ax, p)
            elif kind == "table":
                self.table(ax, p)
            elif kind == "text":
                self.text(ax, p)
            else:
                self.timeseries(ax, p)
        seconds = int(self.end - self.start)
        fig.text(0.01, 1 - 0.3 / height, f"{d['title']}  (uid {d['uid']})", fontsize=14, fontweight="bold",
                 va="center")
        fig.text(0.01, 1 - 0.58 / height,
                 f"Rendered by tests/dashboards/render.py from the Prometheus of a test run (two relays in local mode, "
                 f"one in cluster mode, the operator; a short load): x axes are seconds of a {seconds} s window, "
                 f"$__rate_interval = {self.overrides['__rate_interval']}, every variable at All.",
                 fontsize=9, va="center", color="#444444")
        out = out_dir / f"{d['uid']}.png"
        fig.savefig(out, dpi=80)
        plt.close(fig)
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=promql.PNG_DIR)
    ap.add_argument("--dashboards", type=Path, default=promql.DASHBOARD_DIR)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    r = Renderer(promql.Prometheus(args.prometheus), args.start, args.end, args.step)
    for path in sorted(args.dashboards.glob("*.json")):
        print(r.dashboard(path, args.out))
    for e in r.errors:
        print(f"render.py: query failed: {e}", file=sys.stderr)
    return 1 if r.errors else 0


if __name__ == "__main__":
    sys.exit(main())

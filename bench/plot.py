#!/usr/bin/env python3
"""Grouped bar chart of a bench/run.sh result directory.

usage: plot.py RESULTDIR OUT.png

Left: plain SMTP (smtp-source), delivered msg/s per cell (size x sessions) for the sink alone
(reference), Postfix, Haraka and KubeRelay: bar = median over repetitions, whisker = min..max,
log scale, KubeRelay's ratio to the sink written above its bar. Middle: STARTTLS
(smtp-load.js). Right: relay CPU seconds per 1,000 messages (plain SMTP).
Uses matplotlib when importable; otherwise writes a plain PNG (bars only, no text) with zlib.
"""
import csv
import os
import statistics
import struct
import sys
import zlib

ORDER = ["sink", "postfix", "haraka", "kuberelay"]
NAMES = {"sink": "smtp-sink alone", "postfix": "Postfix 3.7 (queue)", "haraka": "Haraka 3.3.4 (nodes=2)",
         "kuberelay": "KubeRelay"}
COLORS = {"sink": "#9e9e9e", "postfix": "#1f77b4", "haraka": "#2ca02c", "kuberelay": "#d62728"}


def kind(label):
    for k in ORDER:
        if label.startswith(k):
            return k
    return label


def load(path):
    """{(size, sessions): {kind: {"mps": [..], "cpu1000": [..]}}}"""
    cells = {}
    if not os.path.exists(path):
        return cells
    with open(path) as f:
        for r in csv.DictReader(f):
            if r.get("ts") == "ts":
                continue
            c = cells.setdefault((int(r["size"]), int(r["sessions"])), {}).setdefault(
                kind(r["label"]), {"mps": [], "cpu1000": [], "rep": []})
            c["mps"].append(float(r["e2e_mps"]))
            c["rep"].append(r["rep"])
            d = int(r["delivered"])
            if d > 0:
                c["cpu1000"].append(1000 * float(r["relay_cpu_s"]) / d)
    return cells


def cell_name(k):
    size, sess = k
    s = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
    return f"{s}\n{sess} sess."


def with_matplotlib(plain, tls, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("Plain SMTP (smtp-source): delivered msg/s", plain, "mps", True),
              ("STARTTLS (smtp-load.js): delivered msg/s", tls, "mps", True),
              ("Relay CPU seconds per 1,000 messages (plain)", plain, "cpu1000", False)]
    panels = [p for p in panels if p[1]]
    # top row: the plain matrix over the full width; bottom row: STARTTLS and CPU per message
    fig = plt.figure(figsize=(12, 9.5))
    gs = fig.add_gridspec(2, 5)
    slots = [gs[0, :], gs[1, :2], gs[1, 2:]]
    axes = [[fig.add_subplot(slot) for slot in slots[:len(panels)]]]
    for ax, (title, cells, key, logy) in zip(axes[0], panels):
        keys = sorted(cells)
        kinds = [k for k in ORDER if any(k in cells[c] for c in keys)]
        if key == "cpu1000":
            kinds = [k for k in kinds if k != "sink"]
        w = 0.8 / max(1, len(kinds))
        for i, kd in enumerate(kinds):
            xs, meds, lo, hi = [], [], [], []
            for j, c in enumerate(keys):
                v = cells[c].get(kd, {}).get(key, [])
                if not v:
                    continue
                m = statistics.median(v)
                xs.append(j - 0.4 + w * (i + 0.5)); meds.append(m); lo.append(m - min(v)); hi.append(max(v) - m)
            ax.bar(xs, meds, w, yerr=[lo, hi], capsize=2, color=COLORS.get(kd), label=NAMES.get(kd, kd),
                   edgecolor="black", linewidth=0.4)
            for x, m, c in zip(xs, meds, [c for c in keys if cells[c].get(kd, {}).get(key)]):
                txt = f"{m:.0f}" if key == "mps" else f"{m:.2f}"
                if key == "mps" and kd == "kuberelay" and "sink" in cells[c]:
                    sm = statistics.median(cells[c]["sink"]["mps"])
                    if sm > 0:
                        txt += f"\n{m / sm:.2f}x"
                top = max(cells[c][kd][key])   # above the whisker
                ax.annotate(txt, (x, top), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([cell_name(c) for c in keys], fontsize=8)
        ax.set_title(title, fontsize=9.5)
        if logy:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3, which="both")
        ax.margins(y=0.15)
    handles, labels = [], []
    for ax in axes[0]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h); labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8.5, frameon=False)
    fig.suptitle("KubeRelay vs Postfix vs Haraka, all forwarding to smtp-sink on 127.0.0.1, 2 cores\n"
                 "bars: median of the repetitions, whiskers: min..max; under KubeRelay's value: its ratio "
                 "to the sink alone", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(out, dpi=110)


def png_fallback(plain, out):
    """Bars only (log scale), no text: colours as in COLORS, cells left to right."""
    W, H, pad = 900, 400, 20
    img = [[(255, 255, 255)] * W for _ in range(H)]
    keys = sorted(plain)
    vals = [v for c in keys for kd in ORDER for v in plain[c].get(kd, {}).get("mps", [])]
    if not vals:
        return
    import math
    top = math.log10(max(vals) * 1.5)
    bot = math.log10(max(1, min(vals) / 2))
    cw = (W - 2 * pad) / max(1, len(keys))
    for j, c in enumerate(keys):
        for i, kd in enumerate(ORDER):
            v = plain[c].get(kd, {}).get("mps", [])
            if not v:
                continue
            m = statistics.median(v)
            h = int((H - 2 * pad) * (math.log10(max(m, 1)) - bot) / (top - bot))
            x0 = int(pad + j * cw + cw * 0.1 + i * cw * 0.2)
            col = tuple(int(COLORS[kd][k:k + 2], 16) for k in (1, 3, 5))
            for y in range(H - pad - max(h, 1), H - pad):
                for x in range(x0, x0 + int(cw * 0.18)):
                    img[y][x] = col
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in img)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(out, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    d, out = sys.argv[1], sys.argv[2]
    plain = load(os.path.join(d, "plain", "results.csv"))
    tls = load(os.path.join(d, "tls", "results.csv"))
    try:
        with_matplotlib(plain, tls, out)
    except ImportError:
        print("matplotlib not available: writing a bars-only PNG", file=sys.stderr)
        png_fallback(plain, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

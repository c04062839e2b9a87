#!/usr/bin/env python3
"""Markdown tables from one bench/run.sh result directory.

usage: report.py RESULTDIR   (contains plain/results.csv, tls/results.csv, latency.jsonl,
                              idle.jsonl, loadavg.txt, env.txt; any of them may be missing)

Throughput is the harness's end-to-end rate (e2e_mps: messages counted by smtp-sink / time
from the first connect until the sink has them all), so queueing Postfix and in-line relays are
compared on delivered mail. "x sink" = median of the relay / median of the sink alone in the
same cell of the same bench.sh call; "worst rep" = lowest relay/sink ratio of one repetition
(relay and sink of the same rep). CPU s / 1000 msg = relay_cpu_s (whole process tree, cgroup
cpuacct) / delivered x 1000, median over repetitions.
"""
import csv
import json
import os
import statistics
import sys

ORDER = ["sink", "postfix", "haraka", "kuberelay"]


def kind(label):
    for k in ORDER:
        if label.startswith(k):
            return k
    return label


def load_csv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r.get("ts") != "ts"]


def group(rows):
    g = {}
    for r in rows:
        g.setdefault((int(r["size"]), int(r["sessions"])), {}).setdefault(r["label"], []).append(r)
    return g


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def size_txt(b):
    return f"{b // 1024} KiB" if b >= 1024 and b % 1024 == 0 else f"{b} B"


def cpu_per_1000(rows):
    vals = [1000 * float(r["relay_cpu_s"]) / int(r["delivered"]) for r in rows if int(r["delivered"]) > 0]
    return med(vals)


def problems(rows):
    p = []
    bad = [r for r in rows if r["rc"] != "0"]
    if bad:
        p.append(f"rc!=0 x{len(bad)}")
    short = [r for r in rows if int(r["delivered"]) < int(r["count"])]
    if short:
        p.append(f"undelivered x{len(short)} ({sum(int(r['count']) - int(r['delivered']) for r in short)} msgs)")
    q = [r for r in rows if int(r["queue_left"]) > 0]
    if q:
        p.append(f"queue left x{len(q)}")
    return "; ".join(p) or "-"


def f0(x):
    return "-" if x != x else f"{x:.0f}"


def f2(x):
    return "-" if x != x else f"{x:.2f}"


def sorted_labels(labels):
    return sorted(labels, key=lambda l: (ORDER.index(kind(l)) if kind(l) in ORDER else 99, l))


def plain_table(rows, out):
    g = group(rows)
    out.append("| size | sess | relay | n | delivered msg/s min / med / max | x sink (median) | worst rep x sink "
               "| relay CPU s / 1000 msg | relay CPU % | other CPU % (med) | problems |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    verdict = []
    for (size, sess) in sorted(g):
        cell = g[(size, sess)]
        sink_rows = next((v for k, v in cell.items() if kind(k) == "sink"), [])
        sink_med = med([float(r["e2e_mps"]) for r in sink_rows])
        sink_by_rep = {r["rep"]: float(r["e2e_mps"]) for r in sink_rows}
        cpu = {}
        for label in sorted_labels(cell):
            rs = cell[label]
            v = [float(r["e2e_mps"]) for r in rs]
            m = med(v)
            is_sink = kind(label) == "sink"
            ratio = m / sink_med if sink_med == sink_med and sink_med > 0 and not is_sink else float("nan")
            per_rep = [float(r["e2e_mps"]) / sink_by_rep[r["rep"]] for r in rs
                       if r["rep"] in sink_by_rep and sink_by_rep[r["rep"]] > 0]
            worst = min(per_rep) if per_rep and not is_sink else float("nan")
            c = cpu_per_1000(rs) if not is_sink else float("nan")
            cpu[kind(label)] = c
            out.append(
                f"| {size_txt(size)} | {sess} | {label} | {rs[0]['count']} | {f0(min(v))} / {f0(m)} / {f0(max(v))} | "
                f"{'-' if is_sink else f2(ratio)} | {'-' if is_sink else f2(worst)} | {'-' if is_sink else f2(c)} | "
                f"{'-' if is_sink else f0(med([float(r['relay_cpu_pct']) for r in rs]))} | "
                f"{f0(med([float(r['other_cpu_pct']) for r in rs]))} | {problems(rs)} |")
            if kind(label) == "kuberelay":
                mine = (size, sess, ratio, worst, c)
        if "kuberelay" in cpu:
            verdict.append(mine + (cpu.get("postfix", float("nan")), cpu.get("haraka", float("nan"))))
    return verdict


def tls_table(rows, out):
    g = group(rows)
    out.append("| size | sess | relay | n | delivered msg/s min / med / max | relay CPU s / 1000 msg | relay CPU % "
               "| loadgen CPU % | other CPU % | problems |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for (size, sess) in sorted(g):
        cell = g[(size, sess)]
        for label in sorted_labels(cell):
            rs = cell[label]
            v = [float(r["e2e_mps"]) for r in rs]
            lg = med([100 * float(r["loadgen_cpu_s"]) / float(r["e2e_s"]) for r in rs if float(r["e2e_s"]) > 0])
            out.append(f"| {size_txt(size)} | {sess} | {label} | {rs[0]['count']} | {f0(min(v))} / {f0(med(v))} / {f0(max(v))} | "
                       f"{f2(cpu_per_1000(rs))} | {f0(med([float(r['relay_cpu_pct']) for r in rs]))} | {f0(lg)} | "
                       f"{f0(med([float(r['other_cpu_pct']) for r in rs]))} | {problems(rs)} |")


def main():
    d = sys.argv[1]
    out = []
    if os.path.exists(os.path.join(d, "env.txt")):
        out.append("```\n" + open(os.path.join(d, "env.txt")).read().strip() + "\n```\n")
    plain = load_csv(os.path.join(d, "plain", "results.csv"))
    verdict = []
    if plain:
        out.append("### Plain SMTP (smtp-source, one connection per message)\n")
        verdict = plain_table(plain, out)
        out.append("")
    if verdict:
        out.append("### KubeRelay against the target (>= 0.5 x sink, CPU per message below both peers)\n")
        out.append("| size | sess | x sink (median) | worst rep | >= 0.5? | CPU s/1000: KubeRelay | Postfix | Haraka | lower than both? |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for size, sess, ratio, worst, c, cp, ch in verdict:
            ok = "yes" if ratio >= 0.5 else "**no**"
            if worst == worst and worst < 0.5 <= ratio:
                ok += " (not in every rep)"
            lower = "yes" if c < cp and c < ch else "**no**"
            out.append(f"| {size_txt(size)} | {sess} | {f2(ratio)} | {f2(worst)} | {ok} | {f2(c)} | {f2(cp)} | {f2(ch)} | {lower} |")
        out.append("")
    tls = load_csv(os.path.join(d, "tls", "results.csv"))
    if tls:
        out.append("### STARTTLS (smtp-load.js --starttls, one connection per message)\n")
        tls_table(tls, out)
        out.append("")
    lat_path = os.path.join(d, "latency.jsonl")
    if os.path.exists(lat_path):
        out.append("### Per-message latency (bench/latency.py, 1 KiB, persistent connections, MAIL..250 after DATA)\n")
        out.append("| relay | sessions | messages | p50 ms | p90 ms | p99 ms | max ms | msg/s | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        rows = [json.loads(l) for l in open(lat_path) if l.strip()]
        rows.sort(key=lambda r: (r["sessions"], ORDER.index(kind(r["label"])) if kind(r["label"]) in ORDER else 99))
        for r in rows:
            out.append(f"| {r['label']} | {r['sessions']} | {r['count']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                       f"{r['p99_ms']:.2f} | {r['max_ms'] if r['max_ms'] is None else round(r['max_ms'], 2)} | {r['mps']:.0f} | {r['errors']} |")
        out.append("")
    idle_path = os.path.join(d, "idle.jsonl")
    if os.path.exists(idle_path):
        out.append("### KubeRelay memory per idle connection (bench/idle_conns.py)\n")
        out.append("| N requested | N open | errors | VmRSS before KiB | VmRSS with N idle KiB | KiB / connection (RSS) | KiB / connection (RssAnon) | fds in relay | note |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for l in open(idle_path):
            if not l.strip():
                continue
            r = json.loads(l)
            if "skipped" in r:
                out.append(f"| {r['n_requested']} | - | - | - | - | - | - | - | skipped: {r['skipped']} |")
                continue
            out.append(f"| {r['n_requested']} | {r['n_open']} | {r['errors']} | {r['before']['VmRSS']} | {r['after']['VmRSS']} | "
                       f"{r['kib_per_conn_rss']} | {r.get('kib_per_conn_anon', '-')} | {r['after'].get('fds', '-')} | "
                       f"{'; '.join(r.get('first_errors', []))[:120] or '-'} |")
        out.append("")
    la = os.path.join(d, "loadavg.txt")
    if os.path.exists(la):
        out.append("### Load average (1, 5, 15 min) per stage\n")
        out.append("```\n" + open(la).read().strip() + "\n```")
    print("\n".join(out))


if __name__ == "__main__":
    main()

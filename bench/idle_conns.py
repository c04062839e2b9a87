#!/usr/bin/env python3
"""Memory per idle SMTP connection of a relay process (loopback only).

usage: idle_conns.py --pid PID [-n N] [--batch B] [--settle S] [--json FILE] 127.0.0.1:PORT

1. warm-up: opens and closes 200 connections (each waits for the 220 banner), so that
   one-time allocations (allocator arenas, TLS/policy caches) are not counted;
2. reads VmRSS / RssAnon of PID from /proc/PID/status (after --settle seconds);
3. opens N connections in batches of B (each one waits for its 220 banner, i.e. the relay has
   accepted it and started the session), sends nothing else: the sessions stay idle;
4. waits --settle seconds, reads the RSS again, reports (after - before) / N in KiB;
5. closes everything (QUIT is not sent; the sockets are just closed) and reads the RSS again.

Source addresses are spread over 127.0.0.10.. (--per-source connections per address, default 500) so that
per-source limits and the ephemeral port range are not the limit. Needs ~N+50 open files in
this process and in the relay (raise `ulimit -n`). Bounded: N <= 20000, every connect and
banner read has a 10 s timeout, the whole run --max-seconds (default 300).
"""
import argparse
import asyncio
import json
import os
import sys
import time

PER_SOURCE = 500


def rss(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        out["fds"] = -1
    return out


async def open_one(host, port, src):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(src, 0)), 10)
    line = await asyncio.wait_for(reader.readline(), 10)
    if not line.startswith(b"220"):
        writer.close()
        raise RuntimeError(f"banner: {line[:80]!r}")
    # drain a multi-line banner, if any (220-...)
    while line[3:4] == b"-":
        line = await asyncio.wait_for(reader.readline(), 10)
    return writer


async def open_many(host, port, n, batch, first_index, writers, errors):
    i = 0
    while i < n:
        k = min(batch, n - i)
        srcs = [f"127.0.0.{10 + (first_index + i + j) // PER_SOURCE}" for j in range(k)]
        res = await asyncio.gather(*(open_one(host, port, s) for s in srcs), return_exceptions=True)
        for r in res:
            if isinstance(r, BaseException):
                errors.append(repr(r))
            else:
                writers.append(r)
        i += k
        if len(errors) > 50:
            break
        await asyncio.sleep(0.02)


async def close_all(writers):
    for w in writers:
        w.close()
    await asyncio.sleep(0.5)


async def run(a, host, port):
    res = {"n_requested": a.n, "batch": a.batch}
    # 1. warm-up
    warm, errs = [], []
    await open_many(host, port, 200, 100, 0, warm, errs)
    await close_all(warm)
    await asyncio.sleep(a.settle)
    res["warmup_errors"] = len(errs)
    # 2. before
    res["before"] = rss(a.pid)
    # 3. open N idle connections
    writers, errors = [], []
    t0 = time.monotonic()
    await open_many(host, port, a.n, a.batch, 0, writers, errors)
    res["open_seconds"] = round(time.monotonic() - t0, 2)
    res["n_open"] = len(writers)
    res["errors"] = len(errors)
    res["first_errors"] = errors[:3]
    await asyncio.sleep(a.settle)
    # 4. after
    res["after"] = rss(a.pid)
    # are they all still open? (the relay may have closed some: EOF is readable)
    await close_all(writers)
    await asyncio.sleep(a.settle)
    res["closed"] = rss(a.pid)
    n = max(1, res["n_open"])
    res["kib_per_conn_rss"] = round((res["after"]["VmRSS"] - res["before"]["VmRSS"]) / n, 2)
    if "RssAnon" in res["after"]:
        res["kib_per_conn_anon"] = round((res["after"]["RssAnon"] - res["before"]["RssAnon"]) / n, 2)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pid", type=int, required=True, help="relay process whose RSS is read")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--per-source", type=int, default=500, help="connections per source address")
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--json")
    ap.add_argument("target")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    if not host.startswith("127."):
        sys.exit(f"refusing non-loopback target {host}")
    global PER_SOURCE
    PER_SOURCE = max(1, a.per_source)
    if not 1 <= a.n <= 20000:
        sys.exit("N must be 1..20000")
    res = asyncio.run(asyncio.wait_for(run(a, host, int(port)), a.max_seconds))
    line = json.dumps(res)
    print(line)
    if a.json:
        with open(a.json, "w") as f:
            f.write(line + "\n")
    sys.exit(0 if res["errors"] == 0 else 1)


if __name__ == "__main__":
    main()

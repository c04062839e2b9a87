#!/usr/bin/env python3
"""Per-message SMTP latency over persistent connections (loopback only).

usage: latency.py [-s SESSIONS] [-m COUNT] [-l BYTES] [-w WARMUP] [--max-seconds N]
                  [--label NAME] [--json FILE] 127.0.0.1:PORT

Each of SESSIONS connections does EHLO once, then sends its share of COUNT messages back to
back (closed loop: the next MAIL goes out as soon as the previous message got its 250). For
every message the time from writing "MAIL FROM" to reading the 250 after the final "." is
recorded (MAIL, RCPT, DATA, payload; one round trip each, no PIPELINING). The first WARMUP
messages of each session are not counted (connection set-up, caches).

Prints one JSON object: count, errors, p50/p90/p99/max/mean in milliseconds, msg/s over the
measured window. Exit 0 only if every message got 250. Everything is bounded: COUNT messages
and --max-seconds (default 120) for the whole run.
"""
import argparse
import asyncio
import json
import statistics
import sys
import time

FROM = "sender@source.invalid"
TO = "rcpt@sink.invalid"
HELO = "loadgen.invalid"


def make_body(size: int) -> bytes:
    hdr = f"From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: latency\r\n\r\n"
    line = "x" * 78 + "\r\n"
    body = ""
    while len(body) + len(line) <= size:
        body += line
    body += "y" * max(0, size - len(body))
    if not body.endswith("\r\n"):
        body += "\r\n"
    return (hdr + body + ".\r\n").encode()


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed by server")
        text = line.decode("latin1").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return int(text[:3]), "\n".join(lines)


async def command(reader, writer, line: bytes, want: int) -> None:
    writer.write(line)
    code, text = await read_reply(reader)
    if code // 100 != want:
        raise RuntimeError(f"{line.strip().decode()} -> {text}")


async def session(host, port, n, warmup, payload, samples, errors, stats):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        code, text = await read_reply(reader)
        if code != 220:
            raise RuntimeError(f"greeting {text}")
        await command(reader, writer, f"EHLO {HELO}\r\n".encode(), 2)
        mail = f"MAIL FROM:<{FROM}>\r\n".encode()
        rcpt = f"RCPT TO:<{TO}>\r\n".encode()
        for i in range(n):
            t0 = time.perf_counter_ns()
            try:
                await command(reader, writer, mail, 2)
                await command(reader, writer, rcpt, 2)
                await command(reader, writer, b"DATA\r\n", 3)
                writer.write(payload)
                code, text = await read_reply(reader)
                if code != 250:
                    raise RuntimeError(f"end of data -> {text}")
            except (RuntimeError, ConnectionError) as e:
                errors.append(str(e))
                if isinstance(e, ConnectionError):
                    return
                await command(reader, writer, b"RSET\r\n", 2)
                continue
            t1 = time.perf_counter_ns()
            if i >= warmup:
                samples.append((t1 - t0) / 1e6)
                stats["first"] = min(stats.get("first", t0), t0)
                stats["last"] = max(stats.get("last", t1), t1)
        writer.write(b"QUIT\r\n")
        try:
            await asyncio.wait_for(read_reply(reader), 5)
        except (asyncio.TimeoutError, ConnectionError):
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


async def main_async(a, host, port):
    payload = make_body(a.l)
    samples, errors, stats = [], [], {}
    per = [a.m // a.s + (1 if i < a.m % a.s else 0) for i in range(a.s)]
    tasks = [session(host, port, n + a.w, a.w, payload, samples, errors, stats) for n in per]
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), a.max_seconds)
    for r in results:
        if isinstance(r, BaseException):
            errors.append(f"session: {r!r}")
    return samples, errors, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-s", type=int, default=1, help="parallel sessions (persistent connections)")
    ap.add_argument("-m", type=int, default=1000, help="measured messages in total")
    ap.add_argument("-l", type=int, default=1024, help="payload bytes")
    ap.add_argument("-w", type=int, default=20, help="warm-up messages per session (not measured)")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--label", default="")
    ap.add_argument("--json", help="also append the result line to this file")
    ap.add_argument("target")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    if not host.startswith("127."):
        sys.exit(f"refusing non-loopback target {host}")
    if not (1 <= a.s <= 1000 and 1 <= a.m <= 1_000_000):
        sys.exit("sessions must be 1..1000 and count 1..1000000")
    t0 = time.monotonic()
    try:
        samples, errors, stats = asyncio.run(main_async(a, host, int(port)))
        timed_out = False
    except asyncio.TimeoutError:
        samples, errors, stats, timed_out = [], ["timeout"], {}, True
    wall = time.monotonic() - t0
    s = sorted(samples)
    window = (stats["last"] - stats["first"]) / 1e9 if stats else 0
    out = {
        "label": a.label, "target": a.target, "sessions": a.s, "size": a.l, "count": len(s),
        "errors": len(errors), "first_errors": errors[:3], "timed_out": timed_out,
        "p50_ms": round(pct(s, 50), 3), "p90_ms": round(pct(s, 90), 3), "p99_ms": round(pct(s, 99), 3),
        "max_ms": round(s[-1], 3) if s else None, "mean_ms": round(statistics.fmean(s), 3) if s else None,
        "mps": round(len(s) / window, 1) if window > 0 else 0, "wall_s": round(wall, 3),
    }
    line = json.dumps(out)
    print(line)
    if a.json:
        with open(a.json, "a") as f:
            f.write(line + "\n")
    sys.exit(0 if not errors and len(s) == a.m else 1)


if __name__ == "__main__":
    main()

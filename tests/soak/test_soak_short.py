"""The short soak: bench/soak.py for 45 s against the AddressSanitizer + UBSan relay.

One relay of $KUBERELAY_ASAN_BUILD (default build-asan) under the soak's mixed load (plain and
STARTTLS sends, AUTH successes and failures, refused relaying, clients vanishing mid-command and
mid-DATA, waves of 300 idle connections, half of them cut by the inactivity timeout), then
SIGTERM. The long run is `make soak` (10 minutes, docs/security.md). A missing ASan build is a
failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOAK = REPO / "bench" / "soak.py"
SECONDS = 45


def asan_build() -> Path:
    path = Path(os.environ.get("KUBERELAY_ASAN_BUILD") or "build-asan")
    return path if path.is_absolute() else REPO / path


@pytest.fixture(scope="module")
def soak(tmp_path_factory) -> dict:
    build = asan_build()
    binary = build / "relay" / "kuberelay-relay"
    if not build.is_dir() or not binary.is_file():
        pytest.fail(f"no AddressSanitizer relay at {binary}: the short soak needs the ASan build "
                    f"(KUBERELAY_ASAN_BUILD={os.environ.get('KUBERELAY_ASAN_BUILD', '')!r}; "
                    f"`make asan-build`, or scripts/run-tests.sh BUILD ASAN_BUILD)", pytrace=False)
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    try:
        p = subprocess.run([sys.executable, str(SOAK), "--build", str(build), "--seconds", str(SECONDS),
                            "--json", str(out)], capture_output=True, text=True, timeout=SECONDS + 200)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"bench/soak.py did not finish within {SECONDS + 200} s:\n{e.stdout}\n{e.stderr}", pytrace=False)
    if not out.is_file():
        pytest.fail(f"bench/soak.py wrote no summary (exit {p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}",
                    pytrace=False)
    result = json.loads(out.read_text())
    result["_output"] = p.stdout[-3000:] + p.stderr[-3000:]
    result["_rc"] = p.returncode
    print(p.stdout[-2500:])
    return result


def test_load_ran(soak):
    c = soak["counts"]
    assert "error" not in soak, soak["error"]
    assert soak["checks"].get("relay_alive_through_load"), soak["_output"]
    # every kind of client took part
    for key in ("messages", "tls_sessions", "auth_success", "auth_failure", "refusals",
                "aborts_mid_command", "aborts_mid_data", "idle_cut_by_timeout", "idle_closed_by_client"):
        assert c.get(key, 0) > 0, f"no {key} in {c}"
    assert soak["idle_held_max"] >= 200, soak["idle_held_max"]


def test_leak_check_clean(soak):
    """SIGTERM, exit status 0, LeakSanitizer ran at exit and nothing was reported."""
    assert soak["checks"]["leak_check"], (soak["leak_check"], soak.get("sanitizer_excerpt", ""), soak["_output"])
    assert soak["exit_status"] == 0 and soak["sanitizer_reports"] == 0 and soak["asan_exit_stats_seen"]
    assert soak["checks"]["drain_answers_421"], soak["drain_replies"]


def test_memory_stayed_within_bounds(soak):
    """Median RSS of the last third <= 1.10 x the middle third's + 2 MiB."""
    mem = soak["memory"]
    assert mem["flat"], (mem, [s["VmRSS"] for s in soak["rss_samples"]])


def test_nothing_lost_nothing_relayed_wrongly(soak):
    sink = soak["sink"]
    assert sink["ok"], sink
    assert sink["messages_at_sink"] == sink["accepted_by_relay"] == soak["counts"]["messages"]


def test_every_reply_as_expected(soak):
    assert soak["unexpected"] == 0, soak["unexpected_examples"]
    assert soak["checks"]["all_threads_finished"]
    assert soak["passed"] and soak["_rc"] == 0, soak["checks"]

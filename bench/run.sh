#!/usr/bin/env bash
# KubeRelay benchmark: one command (`make bench` is meant to call it).
#
#   bench/run.sh                  # everything, ~20-25 min on 2 cores (plus up to 10 min waiting)
#   STAGES="plain plot" bench/run.sh   # only some stages
#
# Uses the shared harness (HARNESS, default <repo>/../shared/bench): smtp-sink as the next hop,
# Postfix (queue mode) and Haraka 3.3.4 (in-line smtp_forward, nodes=2) as peers, KubeRelay as
# the harness's `custom` target (in-line). Everything on 127.0.0.1, every load bounded.
#
# Stages (STAGES, default "setup build plain tls latency idle plot"):
#   setup    the harness's setup.sh (idempotent: postfix, swaks, Haraka, configs)
#   build    Release build of kuberelay-relay in build-bench/ (skipped if KUBERELAY_RELAY is set)
#   plain    ONE bench.sh call: sink postfix haraka:2 kuberelay x SIZES x SESSIONS x REPS,
#            smtp-source, no TLS (rep-major, so background drift hits every target alike)
#   tls      ONE bench.sh call: postfix haraka:2 kuberelay, smtp-load.js --starttls
#   latency  bench/latency.py p50/p99 per message, 1 KiB, 1 and 20 persistent sessions,
#            against sink, postfix, haraka:2, kuberelay
#   idle     bench/idle_conns.py: RSS per idle connection of KubeRelay, for each N in IDLE_NS
#   plot     bench/report.py (markdown tables) + bench/plot.py (docs/benchmarks.png)
#
# Main knobs (env): REPS=3 SIZES="1024 102400" SESSIONS="1 20"
#   COUNT_SMALL=4000 COUNT_SMALL_S1=1000 COUNT_LARGE=2000 COUNT_LARGE_S1=500
#   TLS_SIZES=1024 TLS_COUNT_SMALL=2000 TLS_COUNT_SMALL_S1=300 TLS_KEY=rsa:2048
#   LAT_COUNT_S1=1000 LAT_COUNT_S20=4000   IDLE_NS="2000 10000"
#   QUIET_LOAD=0.7 QUIET_MAX=600 (wait for the 1-min load average before measuring)
#   KUBERELAY_RELAY=/path/to/kuberelay-relay   CUSTOM_PORT=2528 SINK_PORT POSTFIX_PORT HARAKA_PORT
#   RESULTS=<dir> (default $BENCH_ROOT/results/kuberelay-<stamp>); copied to bench/results/<stamp>/
set -u
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
HARNESS=${HARNESS:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo /work/shared/bench)}
[ -r "$HARNESS/lib.sh" ] || { echo "shared harness not found at $HARNESS (set HARNESS)" >&2; exit 1; }
. "$HARNESS/lib.sh"

STAGES=${STAGES:-"setup build plain tls latency idle plot"}
has_stage() { case " $STAGES " in *" $1 "*) return 0 ;; esac; return 1; }

export REPS=${REPS:-3}
export SIZES=${SIZES:-"1024 102400"}
export SESSIONS=${SESSIONS:-"1 20"}
export COUNT_SMALL=${COUNT_SMALL:-4000} COUNT_SMALL_S1=${COUNT_SMALL_S1:-1000}
export COUNT_LARGE=${COUNT_LARGE:-2000} COUNT_LARGE_S1=${COUNT_LARGE_S1:-500}
TLS_SIZES=${TLS_SIZES:-1024}
TLS_SESSIONS=${TLS_SESSIONS:-"1 20"}
TLS_COUNT_SMALL=${TLS_COUNT_SMALL:-2000} TLS_COUNT_SMALL_S1=${TLS_COUNT_SMALL_S1:-300}
TLS_COUNT_LARGE=${TLS_COUNT_LARGE:-1000} TLS_COUNT_LARGE_S1=${TLS_COUNT_LARGE_S1:-200}
LAT_COUNT_S1=${LAT_COUNT_S1:-1000} LAT_COUNT_S20=${LAT_COUNT_S20:-4000} LAT_WARMUP=${LAT_WARMUP:-20}
IDLE_NS=${IDLE_NS:-"2000 10000"}
QUIET_LOAD=${QUIET_LOAD:-0.7} QUIET_MAX=${QUIET_MAX:-600} QUIET_POLL=${QUIET_POLL:-30}
HARAKA_SPEC=${HARAKA_SPEC:-haraka:2}
TLS_KEY=${TLS_KEY:-rsa:2048}   # openssl req -newkey argument for KubeRelay's certificate

DEFAULT_RELAY=$REPO/build-bench/relay/kuberelay-relay
RELAY=${KUBERELAY_RELAY:-$DEFAULT_RELAY}
STAMP=${STAMP:-$(date +%Y%m%d-%H%M%S)}   # reuse an earlier STAMP to re-run some stages into its directory
RESULTS=${RESULTS:-$BENCH_ROOT/results/kuberelay-$STAMP}
mkdir -p "$RESULTS/logs" "$RESULTS/manifests"
RUNLOG=$RESULTS/logs/run.log
LOADLOG=$RESULTS/loadavg.txt
exec 2> >(tee -a "$RUNLOG" >&2)
T_START=$(date +%s)

say() { log "bench/run.sh: $*"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- ports: keep the defaults unless something else holds them ----------------------------
pick_port() {   # pick_port DEFAULT -> DEFAULT, or the next free port above it
    local p=$1 i=0
    while port_listening "$p" && [ $i -lt 100 ]; do p=$((p + 1)); i=$((i + 1)); done
    echo "$p"
}
export SINK_PORT=$(pick_port "$SINK_PORT")
export POSTFIX_PORT=$(pick_port "$POSTFIX_PORT")
export HARAKA_PORT=$(pick_port "$HARAKA_PORT")
CUSTOM_PORT=${CUSTOM_PORT:-2528}
export CUSTOM_PORT=$(pick_port "$CUSTOM_PORT")
for a in "$SINK_PORT $POSTFIX_PORT" "$SINK_PORT $HARAKA_PORT" "$SINK_PORT $CUSTOM_PORT" \
         "$POSTFIX_PORT $HARAKA_PORT" "$POSTFIX_PORT $CUSTOM_PORT" "$HARAKA_PORT $CUSTOM_PORT"; do
    set -- $a; [ "$1" != "$2" ] || die "port clash ($1): set SINK_PORT/POSTFIX_PORT/HARAKA_PORT/CUSTOM_PORT"
done
export CUSTOM_NAME=kuberelay CUSTOM_MODE=inline CUSTOM_STOP_SIGNAL=TERM

# ---- cleanup on exit / Ctrl-C (stops only what this script started, by PID) ----------------
CURRENT=""
cleanup() {
    if [ -n "$CURRENT" ]; then
        say "cleanup: stopping $CURRENT"
        stop_spec "$CURRENT"
    fi
    "$HARNESS/sink.sh" stop 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

spec_env() {   # sets T_NAME and exports what the target script needs
    T_NAME=${1%%:*}
    case "$1" in haraka:*) export HARAKA_NODES=${1#*:} ;; esac
}
start_spec() { spec_env "$1"; "$HARNESS/targets/$T_NAME.sh" start; }
stop_spec()  { spec_env "$1"; "$HARNESS/targets/$T_NAME.sh" stop; }

# ---- manifests ------------------------------------------------------------------------------
# render_manifests DIR TEMPLATE PER_SOURCE MAX_CONN [tls]
render_manifests() {
    local dir=$1 tpl=$2 per=$3 max=$4 tls=${5:-}
    rm -rf "$dir"; mkdir -p "$dir"
    sed -e "s/@PORT@/$CUSTOM_PORT/; s/@SINK_PORT@/$SINK_PORT/; s/@PER_SOURCE@/$per/; s/@MAX_CONN@/$max/" \
        "$BENCH_DIR/manifests/$tpl" > "$dir/receiveconnector.yaml"
    cp "$BENCH_DIR/manifests/senderpermission.yaml" "$dir/"
    if [ -n "$tls" ]; then
        # self-signed, generated per run; only the relay under test ever sees the key. Same key
        # type as the harness's certificate for Postfix and Haraka (RSA 2048) unless TLS_KEY says
        # otherwise: the server's handshake signature is a large part of the STARTTLS cost.
        local tmp; tmp=$(mktemp -d)
        openssl req -x509 -newkey "$TLS_KEY" -nodes -days 2 \
            -subj /CN=relay.bench.invalid -addext subjectAltName=DNS:relay.bench.invalid \
            -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null || die "openssl failed"
        {
            echo "# generated by bench/run.sh for one benchmark run (self-signed, throw-away)"
            echo "apiVersion: v1"
            echo "kind: Secret"
            echo "metadata:"
            echo "  name: bench-relay-tls"
            echo "type: kubernetes.io/tls"
            echo "data:"
            echo "  tls.crt: $(base64 -w0 "$tmp/tls.crt")"
            echo "  tls.key: $(base64 -w0 "$tmp/tls.key")"
        } > "$dir/secret-tls.yaml"
        chmod 600 "$dir/secret-tls.yaml"
        rm -rf "$tmp"
    fi
}
relay_cmd() {   # relay_cmd MANIFEST_DIR LOGFILE -> CUSTOM_START string (exec'ed by bash -c)
    echo "$RELAY --manifests $1 --admin 127.0.0.1:0 --hostname relay.bench.invalid --drain-timeout 10 2>>$2"
}

# ---- quiet machine --------------------------------------------------------------------------
wait_quiet() {
    local waited=0 l
    l=$(cut -d' ' -f1 /proc/loadavg)
    while awk -v l="$l" -v q="$QUIET_LOAD" 'BEGIN{exit !(l >= q)}'; do
        if [ "$waited" -ge "$QUIET_MAX" ]; then
            say "machine not quiet after ${QUIET_MAX}s (load $(loadavg)): measuring anyway"
            echo "quiet-wait: gave up after ${waited}s, load $(loadavg)" >> "$LOADLOG"
            return 1
        fi
        say "waiting for a quiet machine: 1-min load $l >= $QUIET_LOAD (waited ${waited}s of ${QUIET_MAX}s)"
        sleep "$QUIET_POLL"; waited=$((waited + QUIET_POLL))
        l=$(cut -d' ' -f1 /proc/loadavg)
    done
    say "machine quiet enough: load $(loadavg) after ${waited}s"
    echo "quiet-wait: ok after ${waited}s, load $(loadavg)" >> "$LOADLOG"
}

stage_begin() { STAGE_T0=$(date +%s); STAGE_L0=$(loadavg); say "=== stage $1 (load $STAGE_L0) ==="; }
stage_end() {
    local d=$(( $(date +%s) - STAGE_T0 ))
    printf 'stage %-8s start %s load_start %s | end %s load_end %s | %ss\n' "$1" \
        "$(date -d @"$STAGE_T0" +%H:%M:%S)" "$STAGE_L0" "$(date +%H:%M:%S)" "$(loadavg)" "$d" >> "$LOADLOG"
    say "=== stage $1 done in ${d}s (load $(loadavg)) ==="
}

# ---- stages ---------------------------------------------------------------------------------
if has_stage setup; then
    stage_begin setup
    "$HARNESS/setup.sh" > "$RESULTS/logs/setup.log" 2>&1 || { tail -20 "$RESULTS/logs/setup.log"; die "harness setup failed"; }
    if [ ! -x "$BENCH_ROOT/venv/bin/python" ] || ! "$BENCH_ROOT/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        python3 -m venv "$BENCH_ROOT/venv" && timeout 600 "$BENCH_ROOT/venv/bin/pip" install -q matplotlib \
            >> "$RESULTS/logs/setup.log" 2>&1 || say "matplotlib not installable: plot.py uses its fallback"
    fi
    stage_end setup
fi

if has_stage build; then
    stage_begin build
    if [ -z "${KUBERELAY_RELAY:-}" ]; then
        (cd "$REPO" && cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release > "$RESULTS/logs/build.log" 2>&1 \
            && ninja -C build-bench -j2 kuberelay-relay >> "$RESULTS/logs/build.log" 2>&1) \
            || { tail -30 "$RESULTS/logs/build.log"; die "build failed"; }
    fi
    stage_end build
fi
[ -x "$RELAY" ] || die "relay binary $RELAY not found (run the build stage or set KUBERELAY_RELAY)"

ENVFILE=$RESULTS/env.txt
# re-running some stages into an existing STAMP: keep the original description, append one line
if [ -s "$ENVFILE" ] && ! has_stage build; then ENVFILE=$RESULTS/env.rerun.txt; fi
{
    echo "stamp: $STAMP"
    echo "host: $(uname -srm), nproc $(nproc), $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo)"
    echo "cpu: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "relay: $RELAY ($(stat -c '%y' "$RELAY" | cut -d. -f1))"
    echo "repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) ($(git -C "$REPO" status --porcelain 2>/dev/null | grep -vc '^??') modified tracked files at run time)"
    echo "build type: $(grep -s '^CMAKE_BUILD_TYPE' "$REPO/build-bench/CMakeCache.txt" | cut -d= -f2) (build-bench)"
    echo "compiler: $(grep -s '^CMAKE_CXX_COMPILER:' "$REPO/build-bench/CMakeCache.txt" | cut -d= -f2)"
    echo "postfix: $(dpkg-query -W -f='${Version}' postfix 2>/dev/null); haraka: $(node -p "require('$BENCH_ROOT/haraka/node_modules/Haraka/package.json').version" 2>/dev/null) ($HARAKA_SPEC); node $(node --version); $(python3 --version)"
    echo "ports: sink=$SINK_PORT postfix=$POSTFIX_PORT haraka=$HARAKA_PORT kuberelay=$CUSTOM_PORT"
    echo "plain: REPS=$REPS SIZES=$SIZES SESSIONS=$SESSIONS counts small=$COUNT_SMALL/$COUNT_SMALL_S1(s1) large=$COUNT_LARGE/$COUNT_LARGE_S1(s1)"
    echo "tls: KubeRelay key $TLS_KEY (Postfix/Haraka: $(openssl x509 -in "$CERT_DIR/cert.pem" -noout -text 2>/dev/null | grep -m1 'Public Key Algorithm' | awk '{print $NF}') $(openssl x509 -in "$CERT_DIR/cert.pem" -noout -text 2>/dev/null | grep -m1 -o '([0-9]* bit)')) SIZES=$TLS_SIZES SESSIONS=$TLS_SESSIONS counts small=$TLS_COUNT_SMALL/$TLS_COUNT_SMALL_S1(s1) large=$TLS_COUNT_LARGE/$TLS_COUNT_LARGE_S1(s1)"
    echo "latency: 1 KiB, counts s1=$LAT_COUNT_S1 s20=$LAT_COUNT_S20 (+$LAT_WARMUP warm-up per session)"
    echo "idle: N in $IDLE_NS, ulimit -n hard $(ulimit -Hn)"
} > "$ENVFILE"
cat "$ENVFILE" >&2
if [ "$ENVFILE" != "$RESULTS/env.txt" ]; then
    echo "re-run $(date '+%F %T'): stages '$STAGES'; $(grep -E '^(repo|relay|tls):' "$ENVFILE" | tr '\n' ';')" >> "$RESULTS/env.txt"
fi

if has_stage plain || has_stage tls || has_stage latency || has_stage idle; then
    wait_quiet
fi

if has_stage plain; then
    stage_begin plain
    render_manifests "$RESULTS/manifests/plain" receiveconnector.yaml.in 1000 5000
    OUT=$RESULTS/plain TARGETS="sink postfix $HARAKA_SPEC custom" TOOL=smtp-source TLS=0 \
        CUSTOM_START=$(relay_cmd "$RESULTS/manifests/plain" "$RESULTS/logs/kuberelay-plain.log") \
        "$HARNESS/bench.sh" > "$RESULTS/logs/bench-plain.out"
    stage_end plain
fi

if has_stage tls; then
    stage_begin tls
    [ -d "$RESULTS/tls" ] && mv "$RESULTS/tls" "$RESULTS/tls.old-$(date +%H%M%S)"   # bench.sh appends
    render_manifests "$RESULTS/manifests/tls" receiveconnector-tls.yaml.in 1000 5000 tls
    OUT=$RESULTS/tls TARGETS="postfix $HARAKA_SPEC custom" TOOL=smtp-load TLS=1 \
        SIZES=$TLS_SIZES SESSIONS=$TLS_SESSIONS \
        COUNT_SMALL=$TLS_COUNT_SMALL COUNT_SMALL_S1=$TLS_COUNT_SMALL_S1 \
        COUNT_LARGE=$TLS_COUNT_LARGE COUNT_LARGE_S1=$TLS_COUNT_LARGE_S1 \
        CUSTOM_START=$(relay_cmd "$RESULTS/manifests/tls" "$RESULTS/logs/kuberelay-tls.log") \
        "$HARNESS/bench.sh" > "$RESULTS/logs/bench-tls.out"
    stage_end tls
fi

if has_stage latency; then
    stage_begin latency
    render_manifests "$RESULTS/manifests/latency" receiveconnector.yaml.in 1000 5000
    export CUSTOM_START
    CUSTOM_START=$(relay_cmd "$RESULTS/manifests/latency" "$RESULTS/logs/kuberelay-latency.log")
    : > "$RESULTS/latency.jsonl"
    cg_create loadgen
    for spec in sink postfix "$HARAKA_SPEC" custom; do
        case "$spec" in custom) label=kuberelay ;; haraka:*) label=haraka-nodes${spec#*:} ;; *) label=$spec ;; esac
        spec_env "$spec"
        port=$("$HARNESS/targets/$T_NAME.sh" port)
        "$HARNESS/sink.sh" stop; "$HARNESS/sink.sh" start || die "sink start failed"
        CURRENT=$spec
        start_spec "$spec" || { say "start of $spec failed"; stop_spec "$spec"; CURRENT=""; continue; }
        sleep 1
        for s in 1 20; do
            n=$LAT_COUNT_S20; [ "$s" = 1 ] && n=$LAT_COUNT_S1
            ( cg_exec loadgen timeout 200 python3 "$BENCH_DIR/latency.py" -s "$s" -m "$n" -l 1024 -w "$LAT_WARMUP" \
                --max-seconds 180 --label "$label" --json "$RESULTS/latency.jsonl" "127.0.0.1:$port" ) \
                > "$RESULTS/logs/latency-$label-s$s.out" 2>&1 || say "latency $label s=$s: $(tail -c 300 "$RESULTS/logs/latency-$label-s$s.out")"
            say "latency $label s=$s: $(tail -n1 "$RESULTS/logs/latency-$label-s$s.out" | cut -c1-220)"
        done
        stop_spec "$spec"; CURRENT=""
        "$HARNESS/sink.sh" stop
    done
    stage_end latency
fi

if has_stage idle; then
    stage_begin idle
    : > "$RESULTS/idle.jsonl"
    hard=$(ulimit -Hn)
    for n in $IDLE_NS; do
        need=$((n + 200))
        if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
            say "idle N=$n needs ~$need open files, the hard limit is $hard: skipped"
            echo "{\"n_requested\": $n, \"skipped\": \"ulimit -Hn $hard < $need\"}" >> "$RESULTS/idle.jsonl"
            continue
        fi
        per=$n; [ "$per" -gt 10000 ] && per=10000
        render_manifests "$RESULTS/manifests/idle" receiveconnector.yaml.in "$per" $((n + 1000))
        CURRENT=custom     # for the exit trap (the subshell below does not run it)
        (
            ulimit -n "$need"
            export CUSTOM_START
            CUSTOM_START=$(relay_cmd "$RESULTS/manifests/idle" "$RESULTS/logs/kuberelay-idle.log")
            "$HARNESS/sink.sh" start || exit 1     # not used (no mail), but the connector's next hop exists
            "$HARNESS/targets/custom.sh" start || exit 1
            pid=$(cat "$RUN_DIR/custom.pid")
            [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = kuberelay-relay ] || { say "pid $pid is not the relay"; "$HARNESS/targets/custom.sh" stop; exit 1; }
            say "idle N=$n: relay pid $pid, nofile $(awk '/open files/{print $4}' /proc/"$pid"/limits)"
            timeout 400 python3 "$BENCH_DIR/idle_conns.py" --pid "$pid" -n "$n" --batch 250 --per-source 500 \
                --max-seconds 360 --json "$RESULTS/idle-$n.json" "127.0.0.1:$CUSTOM_PORT" \
                > "$RESULTS/logs/idle-$n.out" 2>&1 || say "idle N=$n: $(tail -c 400 "$RESULTS/logs/idle-$n.out")"
            cat "$RESULTS/idle-$n.json" >> "$RESULTS/idle.jsonl" 2>/dev/null
            "$HARNESS/targets/custom.sh" stop
            "$HARNESS/sink.sh" stop
        )
        CURRENT=""
        say "idle N=$n: $(tail -n1 "$RESULTS/logs/idle-$n.out" | grep -o '"kib_per_conn[^,}]*' | tr '\n' ' ')"
    done
    stage_end idle
fi

# ---- relay problems: failed runs, log lines above info ---------------------------------------
{
    for f in "$RESULTS"/plain/results.csv "$RESULTS"/tls/results.csv; do
        [ -f "$f" ] || continue
        awk -F, -v f="$f" 'NR > 1 && ($10 != 0 || $13 < $8) { printf "%s: %s size=%s sess=%s rep=%s rc=%s delivered=%s/%s\n", f, $3, $6, $7, $9, $10, $13, $8 }' "$f"
    done
    for f in "$RESULTS"/logs/kuberelay-*.log; do
        [ -f "$f" ] || continue
        echo "$f: $(wc -l < "$f") lines, $(grep -c 'level=error' "$f") error, $(grep -c 'level=warn' "$f") warn"
        grep -E 'level=(error|warn)' "$f" | cut -c1-300 | sort -k4 | uniq -c -f2 | sort -rn | head -20
    done
    grep -h -E 'start of .* failed|not listening|rc=[1-9]' "$RESULTS"/logs/bench-*.out "$RUNLOG" 2>/dev/null | head -20
} > "$RESULTS/problems.txt"

# ---- collect + report + plot ----------------------------------------------------------------
COPY=$BENCH_DIR/results/$STAMP
mkdir -p "$COPY"
for d in plain tls $(cd "$RESULTS" && ls -d tls.old-* 2>/dev/null); do
    [ -f "$RESULTS/$d/results.csv" ] || continue
    mkdir -p "$COPY/$d"; cp "$RESULTS/$d/results.csv" "$RESULTS/$d/summary.md" "$RESULTS/$d/env.txt" "$COPY/$d/" 2>/dev/null
done
cp "$RESULTS/env.txt" "$RESULTS/loadavg.txt" "$RESULTS/problems.txt" "$COPY/" 2>/dev/null
[ -s "$RESULTS/latency.jsonl" ] && cp "$RESULTS/latency.jsonl" "$COPY/"
[ -s "$RESULTS/idle.jsonl" ] && cp "$RESULTS/idle.jsonl" "$COPY/"
mkdir -p "$COPY/manifests"; cp "$RESULTS/manifests/plain/"*.yaml "$COPY/manifests/" 2>/dev/null
# relay logs: everything except the per-connection decision lines (those are only counted)
for f in "$RESULTS"/logs/kuberelay-*.log; do
    [ -f "$f" ] || continue
    { echo "# $(grep -c 'msg=decision' "$f") msg=decision lines omitted"; grep -v 'msg=decision' "$f" | head -2000; } > "$COPY/$(basename "$f")"
done
echo "$STAMP" > "$BENCH_DIR/results/LATEST"

if has_stage plot; then
    stage_begin plot
    PY=python3; [ -x "$BENCH_ROOT/venv/bin/python" ] && PY=$BENCH_ROOT/venv/bin/python
    "$PY" "$BENCH_DIR/report.py" "$COPY" > "$COPY/report.md" || say "report.py failed"
    "$PY" "$BENCH_DIR/plot.py" "$COPY" "$REPO/docs/benchmarks.png" || say "plot.py failed"
    stage_end plot
    cp "$RESULTS/loadavg.txt" "$COPY/"
fi
T_TOTAL=$(( $(date +%s) - T_START ))
echo "total: ${T_TOTAL}s" >> "$RESULTS/loadavg.txt"; cp "$RESULTS/loadavg.txt" "$COPY/"
cp "$RUNLOG" "$COPY/run.log" 2>/dev/null
say "done in ${T_TOTAL}s: $COPY (raw: $RESULTS)"
[ -f "$COPY/report.md" ] && cat "$COPY/report.md"

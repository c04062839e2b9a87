#!/usr/bin/env bash
# Runs every test tier and prints one closing line "N passed, N failed".
#   scripts/run-tests.sh BUILD_DIR [SANITIZER_BUILD_DIR [FUZZ_BUILD_DIR]]
# Each tier's own summary (ctest's, pytest's) is printed as it finishes.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ASAN_BUILD=${2:-}
FUZZ_BUILD=${3:-}
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
passed=0
failed=0

# ctest: "100% tests passed, 0 tests failed out of 48"
count_ctest() {
  local line total fails
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$1" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); echo "($2: no ctest summary)"; return; fi
  fails=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + total - fails)); failed=$((failed + fails))
}

echo "== unit, golden and component tests (ctest, $BUILD)"
timeout 1800 ctest --test-dir "$BUILD" --output-on-failure -j2 --timeout 300 2>&1 | tee "$LOGS/ctest.log"
count_ctest "$LOGS/ctest.log" "$BUILD"

if [ -n "$ASAN_BUILD" ]; then
  echo "== the same under AddressSanitizer + UndefinedBehaviorSanitizer ($ASAN_BUILD)"
  timeout 1800 ctest --test-dir "$ASAN_BUILD" --output-on-failure -j2 --timeout 600 2>&1 | tee "$LOGS/asan.log"
  count_ctest "$LOGS/asan.log" "$ASAN_BUILD"
fi

if [ -n "$FUZZ_BUILD" ]; then
  echo "== libFuzzer targets over their corpora, a few seconds each ($FUZZ_BUILD)"
  timeout 900 ctest --test-dir "$FUZZ_BUILD" -L fuzz --output-on-failure -j2 2>&1 | tee "$LOGS/fuzz.log"
  count_ctest "$LOGS/fuzz.log" "$FUZZ_BUILD"
  grep -hE "stat::number_of_executed_units" "$FUZZ_BUILD/Testing/Temporary/LastTest.log" 2>/dev/null |
    awk '{s += $2} END {print "fuzz: " s + 0 " executions in total"}'
fi

# pytest prints "3 passed, 1 failed, 2 xfailed in 1.2s"
run_pytest() {
  local title=$1 dir=$2 limit=$3 log="$LOGS/$(basename "$2").log" line p f
  [ -d "$dir" ] || return 0
  echo "== $title (pytest $dir)"
  KUBERELAY_RELAY="$PWD/$BUILD/relay/kuberelay-relay" KUBERELAY_BUILD="$PWD/$BUILD" KUBERELAY_ASAN_BUILD="$PWD/$ASAN_BUILD" \
    timeout "$limit" python3 -m pytest -q -p no:cacheprovider "$dir" 2>&1 | tee "$log"
  line=$(grep -E "[0-9]+ (passed|failed|errors?)" "$log" | tail -1)
  p=$(grep -oE "[0-9]+ passed" <<<"$line" | grep -oE "[0-9]+" || echo 0)
  f=$(grep -oE "[0-9]+ (failed|errors?)" <<<"$line" | awk '{s += $1} END {print s + 0}')
  if [ -z "$line" ]; then echo "($dir: no pytest summary)"; f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
}

run_pytest "CRD schema tests" tests/schema 600
run_pytest "relay integration tests, real clients" tests/integration 1200
run_pytest "adversarial black-box tests" tests/adversarial 900
run_pytest "short soak under LeakSanitizer" tests/soak 300
run_pytest "CRDs against a real kube-apiserver" tests/kube 3600
run_pytest "operator against a real kube-apiserver" tests/operator 1800
run_pytest "end to end: every seed scenario" tests/e2e 1200
run_pytest "dashboards and alerts against a real Prometheus" tests/dashboards 900
run_pytest "Helm chart against a real kube-apiserver" tests/helm 1200

echo
echo "kuberelay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

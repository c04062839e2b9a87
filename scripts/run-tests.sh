#!/usr/bin/env bash
# Runs every test tier and prints one closing line "N passed, N failed".
#   scripts/run-tests.sh BUILD_DIR [SANITIZER_BUILD_DIR]
# Each tier's own summary (ctest's, pytest's) is printed as it finishes.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ASAN_BUILD=${2:-}
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

echo "== CRD schema tests (pytest)"
timeout 600 python3 -m pytest -q -p no:cacheprovider tests/schema 2>&1 | tee "$LOGS/pytest.log"
line=$(grep -E "^[0-9]+ (passed|failed)|[0-9]+ passed|[0-9]+ failed" "$LOGS/pytest.log" | tail -1)
p=$(grep -oE "[0-9]+ passed" <<<"$line" | grep -oE "[0-9]+" || echo 0)
f=$(grep -oE "[0-9]+ (failed|errors?)" <<<"$line" | awk '{s += $1} END {print s + 0}')
[ -n "$line" ] || f=1
passed=$((passed + p)); failed=$((failed + ${f:-0}))

echo
echo "kuberelay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

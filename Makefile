# KubeRelay: `make run` and `make test` on a fresh Debian 12 machine (see README.md).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
SOAK_SECONDS ?= 600
BUILD_TYPE ?= RelWithDebInfo
WERROR     ?= $(if $(CI),ON,OFF)
JOBS       ?= 2
CMAKE_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKUBERELAY_WERROR=$(WERROR)

.PHONY: all deps build asan-build fuzz-build fuzz test run print-policy bench soak check-examples format clean sync-chart-crds

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) > $(BUILD).configure.log || (cat $(BUILD).configure.log; exit 1)
	@cmake --build $(BUILD) -j $(JOBS)

asan-build: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON -DKUBERELAY_WERROR=$(WERROR) > $(ASAN_BUILD).configure.log || (cat $(ASAN_BUILD).configure.log; exit 1)
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# libFuzzer targets need clang; `make test` runs each over its corpus for a few seconds.
FUZZERS = fuzz_command fuzz_address fuzz_session fuzz_proxy fuzz_manifest fuzz_ip_range fuzz_snapshot
fuzz-build: deps
	@CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKUBERELAY_FUZZ=ON > $(FUZZ_BUILD).configure.log || (cat $(FUZZ_BUILD).configure.log; exit 1)
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZERS)

# Longer fuzzing: FUZZ_SECONDS per target; crashes are written to build-fuzz/fuzz/.
fuzz: fuzz-build
	@cmake -S . -B $(FUZZ_BUILD) -DKUBERELAY_FUZZ_SECONDS=$(FUZZ_SECONDS) > /dev/null
	@ctest --test-dir $(FUZZ_BUILD) -L fuzz --output-on-failure -j2; rc=$$?; \
	  cmake -S . -B $(FUZZ_BUILD) -DKUBERELAY_FUZZ_SECONDS=10 > /dev/null; exit $$rc

# Every test tier; the last line is "N passed, N failed".
test: build asan-build fuzz-build
	@scripts/run-tests.sh $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# The relay in local mode on the quickstart policy: SMTP on port 2525 (anonymous relay for
# loopback clients only), mail written to /tmp/kuberelay-quickstart/drop, admin on 9090.
# Edit examples/quickstart/*.yaml while it runs: it reloads. Ctrl-C stops it.
ADMIN ?= 127.0.0.1:9090
run: build
	@$(BUILD)/tools/kuberelay-policy check examples/quickstart
	@echo "kuberelay: try  swaks --server 127.0.0.1:2525 --from me@example.com --to you@example.net"
	@echo "kuberelay: metrics at http://$(ADMIN)/metrics, mail in /tmp/kuberelay-quickstart/drop"
	@exec $(BUILD)/relay/kuberelay-relay --manifests examples/quickstart --admin $(ADMIN)

# The compiled quickstart policy as the relay sees it (no relay started).
print-policy: build
	@$(BUILD)/tools/kuberelay-policy print examples/quickstart

# Policy decision cost, then KubeRelay vs Postfix vs Haraka (docs/benchmarks.md; ~30 minutes,
# run it on a quiet machine).
bench: build
	@$(BUILD)/policy/policy_bench 100 1000 10000
	@bench/run.sh

# SOAK_SECONDS (10 minutes) of mixed load on one relay of the ASan + UBSan build: memory must stay
# flat and LeakSanitizer clean at exit (bench/soak.py, docs/security.md); the summary goes to
# bench/results/soak-<stamp>.json. Builds only the relay (configuring $(ASAN_BUILD) if needed).
soak: deps
	@[ -f $(ASAN_BUILD)/build.ninja ] || cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON -DKUBERELAY_WERROR=$(WERROR) > $(ASAN_BUILD).configure.log || (cat $(ASAN_BUILD).configure.log; exit 1)
	@cmake --build $(ASAN_BUILD) -j $(JOBS) --target kuberelay-relay
	@SOAK_SECONDS=$(SOAK_SECONDS) python3 bench/soak.py --build $(ASAN_BUILD)

check-examples: build
	@for d in $$(find examples -type d); do echo "== $$d"; $(BUILD)/tools/kuberelay-policy check $$d || exit 1; done

# The Helm chart ships a byte-for-byte copy of crds/ (tests/helm checks it).
sync-chart-crds:
	@rm -f helm/kuberelay/crds/*.yaml && cp crds/*.yaml helm/kuberelay/crds/ && echo "helm/kuberelay/crds/ = crds/"

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) *.configure.log

# KubeRelay: `make run` and `make test` on a fresh Debian 12 machine (see README.md).
BUILD      ?= build
ASAN_BUILD ?= build-asan
BUILD_TYPE ?= RelWithDebInfo
WERROR     ?= $(if $(CI),ON,OFF)
JOBS       ?= 2
CMAKE_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKUBERELAY_WERROR=$(WERROR)

.PHONY: all deps build asan-build test run print-policy bench check-examples format clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) > $(BUILD).configure.log || (cat $(BUILD).configure.log; exit 1)
	@cmake --build $(BUILD) -j $(JOBS)

asan-build: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON -DKUBERELAY_WERROR=$(WERROR) > $(ASAN_BUILD).configure.log || (cat $(ASAN_BUILD).configure.log; exit 1)
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test tier; the last line is "N passed, N failed".
test: build asan-build
	@scripts/run-tests.sh $(BUILD) $(ASAN_BUILD)

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

bench: build
	@$(BUILD)/policy/policy_bench 100 1000 10000

check-examples: build
	@for d in $$(find examples -type d); do echo "== $$d"; $(BUILD)/tools/kuberelay-policy check $$d || exit 1; done

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BUILD).configure.log $(ASAN_BUILD).configure.log

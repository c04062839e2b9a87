# KubeRelay: `make run` and `make test` on a fresh Debian 12 machine (see README.md).
BUILD      ?= build
ASAN_BUILD ?= build-asan
BUILD_TYPE ?= RelWithDebInfo
WERROR     ?= $(if $(CI),ON,OFF)
JOBS       ?= 2
CMAKE_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKUBERELAY_WERROR=$(WERROR)

.PHONY: all deps build asan-build test run bench check-examples format clean

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

# Until the relay binary lands, `run` compiles the quickstart policy and shows what the relay
# would enforce: listeners, connectors, rights and the analyzer's findings.
run: build
	@$(BUILD)/tools/kuberelay-policy check examples/quickstart
	@$(BUILD)/tools/kuberelay-policy print examples/quickstart

bench: build
	@$(BUILD)/policy/policy_bench 100 1000 10000

check-examples: build
	@for d in $$(find examples -type d); do echo "== $$d"; $(BUILD)/tools/kuberelay-policy check $$d || exit 1; done

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BUILD).configure.log $(ASAN_BUILD).configure.log

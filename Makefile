# pushcluster — the two commands of the README are `make run` and `make test`.

CARGO      ?= cargo
LISTEN     ?= 127.0.0.1:8080
ADMIN_LISTEN ?= 127.0.0.1:9090
DATA_DIR   ?= ./data
# Development-only secrets for `make run`; set your own in production.
DEV_JWT_SECRET ?= dev-jwt-secret-not-for-production
DEV_API_KEY    ?= dev-api-key-not-for-production
PUSHD      := $(or $(CARGO_TARGET_DIR),target)/debug/pushd

.PHONY: run build test tools unit lint fmt bench bench-idle bench-standalone bench-cluster bench-venv proto js fuzz fuzz-check e2e-k8s

## run: build and start `pushd standalone` on $(LISTEN) with dev secrets and $(DATA_DIR)
run: build
	@token=$$(PUSHD_JWT_SECRET='$(DEV_JWT_SECRET)' $(PUSHD) token --user demo --ttl 24h) && \
	echo "" && \
	echo "  token (user demo, 24h): $$token" && \
	echo "  WebSocket URL:          ws://$(LISTEN)/ws?token=$$token" && \
	echo "  demo page:              http://$(LISTEN)/#token=$$token" && \
	echo "                          (dev mode: the page holds the API key and can send; loopback only)" && \
	echo "  metrics:                http://$(ADMIN_LISTEN)/metrics" && \
	echo "  send a message:" && \
	echo "    curl -sS -X POST http://$(LISTEN)/v1/messages -H 'Authorization: Bearer $(DEV_API_KEY)' -H 'Content-Type: application/json' -d '{\"to\":[\"demo\"],\"payload\":{\"hello\":\"world\"}}'" && \
	echo "" && \
	PUSHD_JWT_SECRET='$(DEV_JWT_SECRET)' PUSHD_API_KEY='$(DEV_API_KEY)' \
	exec $(PUSHD) standalone --listen $(LISTEN) --admin-listen $(ADMIN_LISTEN) --data-dir $(DATA_DIR) --dev-api-key-in-page

build:
	$(CARGO) build -p pushd

## test: install/build the real services the tests need (cached), then run every test
## (the Kubernetes end-to-end test of e2e-k8s included)
test: tools
	$(CARGO) test --workspace

## tools: idempotent installer of redis, squid, dnsmasq, FerretDB, etcd, Kubernetes, CoreDNS,
## containerd, helm…
tools:
	bash tests/tools/install.sh

## e2e-k8s: the user's whole story on a real single-node Kubernetes (needs root; puts the
## debug pushd and operator of `cargo test --workspace` into the test image, or the release
## ones with PUSHCLUSTER_E2E_PROFILE=release); see docs/kubernetes-e2e.md
e2e-k8s: tools
	$(CARGO) test -p pushcluster-e2e --test k8s -- --nocapture

## unit: tests that need no external service
unit:
	$(CARGO) test --workspace --lib

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: the standard benchmark set (pushbench: idle connections, standalone, cluster; ~10
## minutes) and bench/REPORT.md. BASE=<commit> also measures pushd at that commit in the same
## run (alternating; ratios); ROUNDS=n; PERF=1 profiles the server. See docs/benchmarks.md.
bench: tools bench-venv
	BASE='$(BASE)' PERF='$(PERF)' bench/run.sh all

## bench-idle: only the idle-connection footprint (RSS and CPU per connection)
bench-idle: tools bench-venv
	BASE='$(BASE)' PERF='$(PERF)' bench/run.sh idle

## bench-standalone: only standalone unicast throughput/latency and fan-out
bench-standalone: tools bench-venv
	BASE='$(BASE)' PERF='$(PERF)' bench/run.sh standalone

## bench-cluster: only the cluster (FerretDB on PostgreSQL and on SQLite; report in its dir)
bench-cluster: tools bench-venv
	BASE='$(BASE)' PERF='$(PERF)' bench/run.sh cluster

BENCH_VENV ?= $(HOME)/.cache/pushcluster/bench-venv
## bench-venv: Python with matplotlib for the report's chart (cached)
bench-venv: $(BENCH_VENV)/.matplotlib
$(BENCH_VENV)/.matplotlib:
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q matplotlib
	touch $@

## bench-vendors: each push vendor's sender against its fake over one connection (release)
.PHONY: bench-vendors
bench-vendors:
	$(CARGO) bench -p pushcluster-mobile --bench vendor_throughput

## proto: regenerate the committed gRPC code from dataplane/proto/proto (needs protoc: make tools)
proto:
	PUSHCLUSTER_REGEN=1 $(CARGO) test -p pushcluster-proto --test codegen

## fuzz: run every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each; installs
## cargo-fuzz if missing (cached). FUZZ_SECONDS=5 make fuzz is a smoke run (see fuzz/README.md)
fuzz:
	bash fuzz/run.sh

## fuzz-check: the fuzz crate builds and is lint-clean, without libFuzzer (cheap; part of CI)
fuzz-check:
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --no-default-features --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check

## crds: regenerate the PushCluster CRD in crds/ and in the Helm chart (a test checks both)
.PHONY: crds
crds:
	$(CARGO) run -q -p pushcluster-operator --example crdgen

## js: rebuild clients/js/dist (committed; embedded in pushd) from clients/js/src with the pinned
## TypeScript compiler that `make tools` installs (a test checks the committed copy matches)
JS_TOOLS ?= $(or $(PUSHCLUSTER_TOOLS),$(HOME)/.cache/pushcluster/tools)/node/node_modules
js:
	cd clients/js && $(JS_TOOLS)/.bin/tsc -p tsconfig.json

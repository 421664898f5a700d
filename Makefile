# One entry per job. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

up: ## Run Tidecache here: embedded control plane, operator, a sample CacheCluster
	e2e/scripts/up.sh

load: ## Put load on `make up`'s Serverless cluster (tidecache-load, bounded) to watch it scale
	e2e/scripts/load.sh

down: ## Stop what `make up` started
	e2e/scripts/cluster.sh down

test: lint unit chart e2e ## Run every test (what CI runs)

build: ## Build every binary
	cargo build --locked --workspace

unit: ## Unit and integration tests (no cluster; redis-server is the RDB tests' peer, Garage their S3 server)
	garage="$$(e2e/scripts/tools.sh garage)" && \
		TIDECACHE_GARAGE_BIN="$$garage" cargo test --locked --workspace --exclude tidecache-e2e

lint: ## Formatting, clippy, CRD drift
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

chart: ## helm lint and helm template checks
	e2e/scripts/chart-test.sh

e2e: ## End-to-end tests on the embedded control plane
	e2e/run.sh

crds: ## Regenerate crds/ from the Rust types
	cargo run --locked -q -p tidecache-operator --bin crdgen > crds/tidecache.yaml.new && mv crds/tidecache.yaml.new crds/tidecache.yaml

bench: ## cache-node vs redis-server: throughput, CPU, memory, latency (bench/compare.sh)
	bench/compare.sh

tools: ## Build the control plane, etcd and helm into the cache
	e2e/scripts/tools.sh build

# The fuzz targets build on stable through RUSTC_BOOTSTRAP (cargo-fuzz needs
# nightly flags), in their own target dir so the main build cache keeps its
# flags; nice and -jobs=1 leave the other core to everyone else. The
# keyspace target runs under the address sanitizer (db/record.rs is unsafe
# code), built in a directory of its own so that the two builds do not
# overwrite each other's dependencies.
FUZZ_SECONDS ?= 60
FUZZ_TARGET_DIR ?= $(HOME)/.cache/tidecache-fuzz
FUZZ_RUN = cd cache-node/fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) nice -n 19 cargo fuzz run -s none
FUZZ_RUN_ASAN = cd cache-node/fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR)/address nice -n 19 cargo fuzz run -s address
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -jobs=1 -workers=1 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1

fuzz: ## Fuzz the request decoder, command dispatch and the keyspace, FUZZ_SECONDS (60) each (cargo install cargo-fuzz)
	mkdir -p cache-node/fuzz/corpus/decode cache-node/fuzz/corpus/dispatch cache-node/fuzz/corpus/keyspace
	$(FUZZ_RUN) decode corpus/decode seeds/decode -- -dict=resp.dict $(FUZZ_FLAGS)
	grep -E '^(stat::|Done)' cache-node/fuzz/fuzz-0.log
	$(FUZZ_RUN) dispatch corpus/dispatch seeds/dispatch -- -max_len=1024 -len_control=0 $(FUZZ_FLAGS)
	grep -E '^(stat::|Done)' cache-node/fuzz/fuzz-0.log
	$(FUZZ_RUN_ASAN) keyspace corpus/keyspace seeds/keyspace -- -max_len=1024 -len_control=0 $(FUZZ_FLAGS)
	grep -E '^(stat::|Done)' cache-node/fuzz/fuzz-0.log

.PHONY: help up load down test build unit lint chart e2e crds tools bench fuzz

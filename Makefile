# Platform — `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_TEST_FLAGS ?=

.PHONY: help build run test test/race chaos bench capacity lint azurite/install azurite/up azurite/down postgres/up postgres/down chromium/install image image/test clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z\/_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/platform
	go build -ldflags "-X main.version=$(VERSION)" -o bin/platform ./cmd/platform

run: azurite/up build ## start Azurite if needed and run the worker (Ctrl-C stops it gracefully)
	bin/platform worker

# One package at a time (-p 1): the packages share one Azurite, and the timing tests (lease
# renewal, stop deadlines, failover) measure what a storage slowed by three packages at once
# cannot promise. Within a package, tests still run in parallel.
test: azurite/up postgres/up chromium/install ## start Azurite and a test PostgreSQL, install Chromium, if needed; run every test with the race detector
	go test -race -count=1 -p 1 $(GO_TEST_FLAGS) ./...

test/race: test ## same as test: the race detector is always on

CHAOS_ARGS ?=
chaos: azurite/up ## kill worker processes ≥20 times under a mixed load, then again with 10 % storage faults; nothing may be lost or duplicated
	go build -tags chaos -o bin/platform-chaos ./cmd/platform
	go test -tags chaos -count=1 -timeout 30m -v -run TestChaos ./chaos -args $(CHAOS_ARGS)
	go test -tags chaos -count=1 -timeout 30m -v -run TestChaos ./chaos -args -faults=0.1 $(CHAOS_ARGS)

BENCH_ARGS ?=
bench: azurite/install ## throughput against the storage floor, requests per effect, CPU and memory (history: 5,000 events; notify: 1,000; automations: 100 rules)
	go build -tags chaos -o bin/platform-chaos ./cmd/platform
	go test -tags bench -count=1 -timeout 90m -v -run TestBench ./bench -args $(BENCH_ARGS)

capacity: ## print the capacity model's table (README "Capacity"): events/s and the limit that binds for N queue shards × M storage accounts
	go test -count=1 -run TestCapacityTable -v ./internal/capacity

STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: ## gofmt, go mod tidy -diff, go vet and staticcheck, with and without the chaos and bench builds
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './azurite/*')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go mod tidy -diff
	go vet ./...
	go vet -tags chaos,bench ./...
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags chaos,bench ./...

azurite/install: ## install the pinned Azurite with npm; no-op if installed
	@test -x azurite/node_modules/.bin/azurite || (cd azurite && npm ci --no-audit --no-fund --loglevel=error)

azurite/up: ## install (npm, pinned) and start Azurite on 127.0.0.1:10000-10002; no-op if up
	@azurite/up.sh

azurite/down: ## stop the Azurite that azurite/up started
	@azurite/down.sh

postgres/up: ## start a throwaway PostgreSQL for the tests on 127.0.0.1:54329; no-op if up
	@postgres/up.sh

postgres/down: ## stop the test PostgreSQL and remove its data
	@postgres/down.sh

chromium/install: ## install headless Chromium for the browser tests (apt-get, as root); no-op if found (PLATFORM_CHROMIUM, chromium, chromium-browser, google-chrome)
	@chromium/install.sh

# INSTALL=1: install podman with apt-get first when no engine works (root, Debian/Ubuntu: CI).
# CONTAINER_ENGINE=podman|docker picks one; IMAGE names the image (default platform).
INSTALL ?=
IMAGE ?= platform
image: ## build the container image platform:$(VERSION) and :latest (FROM scratch, static binary, user 65532) with docker or podman; INSTALL=1 installs podman
	@VERSION=$(VERSION) IMAGE=$(IMAGE) INSTALL=$(INSTALL) deploy/image/build.sh

image/test: image build azurite/up ## export the image's filesystem and run its worker (as 65532, with its Env) against Azurite: drain, /readyz, SIGTERM
	@VERSION=$(VERSION) IMAGE=$(IMAGE) deploy/image/test.sh

clean: ## remove build output
	rm -rf bin

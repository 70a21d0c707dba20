# The two commands a newcomer needs:
#   make run    build what is missing and run the whole local stack
#   make test   unit tests, then end-to-end tests on the local and redis profiles
PROFILE ?= local
E2E_PROFILES ?= local redis
GO ?= go

.PHONY: help run test unit e2e vet daprd build tidy-check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

daprd: ## build the pinned daprd and sentry into the user cache (once per version)
	@tools/daprd/ensure.sh >/dev/null

build: ## build every app and the launcher into .bin/
	$(GO) build -o .bin/ ./apps/... ./tools/launcher/cmd/launcher

run: build ## run the local stack (PROFILE=local|redis); Ctrl-C stops it
	@DAPRD=$$(tools/daprd/ensure.sh) && exec env DAPRD=$$DAPRD .bin/launcher -profile $(PROFILE)

vet: ## gofmt and go vet
	@test -z "$$(gofmt -l apps internal tools tests)" || { gofmt -l apps internal tools tests; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

unit: ## unit tests with the race detector
	$(GO) test -race -count=1 ./apps/... ./internal/... ./tools/...

# One package at a time: each starts a stack of its own, and the failure
# tests measure breakers and timeouts that two stacks on two cores would blur.
e2e: daprd ## end-to-end tests against real sidecars and brokers, per profile
	@DAPRD=$$(tools/daprd/ensure.sh); set -e; for p in $(E2E_PROFILES); do \
		echo "== end-to-end, profile $$p"; \
		DAPRD=$$DAPRD E2E_PROFILE=$$p $(GO) test -p 1 -count=1 -timeout 30m ./tests/...; \
	done

test: vet unit e2e ## everything CI runs

clean: ## remove build output and local data
	rm -rf .bin .data

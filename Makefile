# hookgate: see README.md. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT ?= $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM_VERSION ?= v3.22.0
HELM ?= $(BIN)/helm-$(HELM_VERSION)
GO_TEST_FLAGS ?= -count=1 -timeout 30m
FUZZ_TIME ?= 5s
BENCH_DURATION ?= 8s

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC under config/.
	$(CONTROLLER_GEN) crd paths=./api/v1alpha1/... output:crd:artifacts:config=config/crd/bases
	@# The events API is served by the receiver, not installed as a CRD: its schema, made
	@# from the same markers, becomes the API's OpenAPI document (receiver/eventsapi).
	$(CONTROLLER_GEN) crd paths=./api/events/... output:crd:dir=receiver/eventsapi/schema
	$(CONTROLLER_GEN) rbac:roleName=hookgate-operator paths=./controllers/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=hookgate-receiver paths=./receiver output:rbac:artifacts:config=config/rbac/receiver
	@# The chart carries the same CRDs and RBAC rules (helm cannot read files outside it).
	rm -f charts/hookgate/crds/*.yaml && cp config/crd/bases/*.yaml charts/hookgate/crds/
	cp config/rbac/role.yaml charts/hookgate/files/operator-role.yaml
	cp config/rbac/receiver/role.yaml charts/hookgate/files/receiver-role.yaml

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail when `make generate manifests` would change files.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/verify-generated.sh

.PHONY: fmt
fmt: ## Run gofmt on the tree.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: envtest
envtest: ## Build (once) the kube-apiserver, etcd and kubectl used by the tests.
	@hack/setup-envtest.sh

.PHONY: node-deps
node-deps: hack/destination-examples/node_modules/.package-lock.json hack/portal-test/node_modules/.package-lock.json ## Install the npm packages the tests run (example destinations, the portal's browser driver).

hack/%/node_modules/.package-lock.json: hack/%/package.json hack/%/package-lock.json
	npm ci --prefix hack/$* --no-audit --no-fund --loglevel=error

.PHONY: test
test: verify-generated vet $(HELM) node-deps ## Run every test against a real API server (envtest).
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted" >&2; exit 1; fi
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" HELM=$(HELM) CONTROLLER_GEN=$(CONTROLLER_GEN) go test $(GO_TEST_FLAGS) ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZ_TIME (default 5s) each.
	FUZZ_TIME=$(FUZZ_TIME) hack/fuzz.sh

.PHONY: bench
bench: build ## Load harness: instructions per event (callgrind), ingest vs a net/http baseline, delivery, the whole system, and each store backend's sustained capacity, open-loop (bbolt, Pebble, PostgreSQL when HOOKGATE_TEST_DATABASE_URL is set; about 15 minutes).
	go build -o $(BIN)/local-control-plane ./hack/local-control-plane
	go build -o $(BIN)/hookgate-bench ./hack/bench
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" $(BIN)/hookgate-bench --hookgate $(BIN)/hookgate --duration $(BENCH_DURATION)

.PHONY: bench-compare
bench-compare: ## Bench the binary of BASE=<commit> and this tree's, and print old vs new with deltas.
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=<commit>" >&2; exit 1; }
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" BENCH_DURATION=$(BENCH_DURATION) hack/bench-compare.sh $(BASE)

.PHONY: bench-store
bench-store: ## go test -bench of authenticate+store per request, of the store under 64 writers (real fsync), and of an events API page over a million events.
	go test -run='^$$' -bench=. -benchtime=3s ./receiver/
	go test -run='^$$' -bench=ConcurrentIngest -benchtime=80000x ./receiver/store/
	go test -run='^$$' -bench=ListPageAtAMillionEvents -benchtime=200x -timeout 30m ./receiver/eventsapi/webhookevents/

.PHONY: run
run: ## Start the whole system locally on an embedded control plane (Ctrl-C stops it).
	hack/run-local.sh

.PHONY: deploy
deploy: $(HELM) ## Install the chart into the cluster of KUBECONFIG (HELM_ARGS adds flags).
	$(HELM) upgrade --install hookgate charts/hookgate --namespace hookgate-system --create-namespace $(HELM_ARGS)

.PHONY: build
build: ## Build bin/hookgate.
	CGO_ENABLED=0 go build -trimpath -o $(BIN)/hookgate .

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)/.tmp
	GOBIN=$(BIN)/.tmp go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.tmp/controller-gen $@

$(HELM):
	@mkdir -p $(BIN)/.tmp
	GOBIN=$(BIN)/.tmp go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.tmp/helm $@

.PHONY: helm
helm: $(HELM) ## Install the pinned helm into ./bin.

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)/.tmp
	GOBIN=$(BIN)/.tmp go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.tmp/golangci-lint $@

# make test runs the whole suite: formatting and vet, the unit tier under the
# race detector, then the e2e tier against a real kube-apiserver and etcd
# embedded in the test process (or the cluster of $KUBECONFIG, if set).
# The heavy module lives in testbed/: the control plane, the e2e suite, the
# demo and the benchmarks.
.PHONY: test lint unit e2e demo bench robustness

test: lint unit e2e

# Integrations with other libraries (Prometheus, controller-runtime) are small
# Go modules of their own in subfolders, so that the library's own go.mod keeps
# only the k8s.io set; lint and the unit tier run in each of them too. They
# may nest one level: prommetrics/monitoring tests prommetrics' alerts with
# Prometheus itself, which prommetrics' importers must not inherit, and tools
# with dependencies of their own (the kubectl plugin) sit under cmd/.
SATELLITES := $(patsubst %/go.mod,%,$(filter-out testbed/%,$(wildcard */go.mod */*/go.mod)))

# The demo: three revisions of a controller compete on an embedded control
# plane (or the cluster of $KUBECONFIG). Pass flags with ARGS="-duration 60s";
# ARGS=-groups instead spreads istiod's eleven elections over its replicas.
demo:
	cd testbed && go run ./demo -svg ../demo-timeline.svg $(ARGS)

# Side-by-side figures against upstream client-go; prints a table of ratios.
bench:
	cd testbed && go run ./bench $(ARGS)

# The robustness suite: random fault schedules, reproducible by seed, against
# candidate processes on an embedded control plane, each history checked for
# fencing, one leader, liveness and residue (docs/robustness.md). About ten
# minutes by default; ARGS="-seed N", ARGS="-seeds A-B -duration 45s".
robustness:
	cd testbed && go run ./robustness/run $(ARGS)

lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	cd testbed && go vet ./...
	@for m in $(SATELLITES); do echo "go vet in $$m"; (cd $$m && go vet ./...) || exit 1; done

# The unit tier runs twice: at the oldest k8s.io release the library
# supports (go.mod, what importers get) and at the newest (.ci/newest.mod).
unit:
	go test -race -count=1 ./...
	go test -race -count=1 -modfile=.ci/newest.mod ./...
	@for m in $(SATELLITES); do echo "go test in $$m"; (cd $$m && go test -race -count=1 ./...) || exit 1; done

# The testbed module's first build compiles kube-apiserver: minutes on a cold
# cache. The timing-sensitive suites (testbed/e2e, and the robustness suite's
# short slice, about two minutes) run alone, after the helper packages'
# tests, so that no other API server competes with them for the CPU.
e2e:
	cd testbed && go test -count=1 -timeout 10m $$(go list ./... | grep -v -e '/e2e$$' -e '/robustness$$')
	cd testbed && go test -count=1 -timeout 10m ./robustness
	cd testbed && go test -count=1 -timeout 30m ./e2e

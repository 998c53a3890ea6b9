# make test runs the whole suite: formatting and vet, the unit tier under the
# race detector, then the e2e tier against a real kube-apiserver and etcd
# embedded in the test process (or the cluster of $KUBECONFIG, if set).
.PHONY: test lint unit e2e

test: lint unit e2e

lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	cd e2e && go vet ./...

unit:
	go test -race -count=1 ./...

# The e2e module's first build compiles kube-apiserver: minutes on a cold cache.
e2e:
	cd e2e && go test -count=1 -timeout 30m ./...

# The whole test suite: formatting, vet, and the unit tier under the race
# detector (fuzz seeds and examples included).
.PHONY: test unit lint

test: lint unit

lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

unit:
	go test -race -count=1 ./...

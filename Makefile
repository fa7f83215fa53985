# The one test command (README, .ci/run): every test including the fuzz seed
# corpora, go vet, gofmt and staticcheck.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test vet fmt staticcheck vectors bench

test: fmt vet staticcheck
	go test -count=1 ./...

vet:
	go vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

staticcheck:
	go run $(STATICCHECK) ./...

# Regenerate the test vectors under testdata/vectors from their generator.
vectors:
	go run ./internal/cmd/genvectors

bench:
	go test -run '^$$' -bench . -benchmem ./...

# flowgate — `make run` starts the embedded server with the demo page,
# `make test` runs every test. Both install what they need on first use.

GO        ?= go
TOOLS     := .tools
FLOWJS    := node_modules/@flowjs/flow.js/dist/flow.min.js
# Fuzz targets run briefly in `make test` and longer in `make fuzz`:
# package:FuzzFunction pairs.
FUZZ_TARGETS := \
	./shared/protocol:FuzzParseChunk \
	./shared/protocol:FuzzParseUpload \
	./shared/httpapi:FuzzPostChunk \
	./shared/upload:FuzzSafeFileName
FUZZ_TIME ?= 4s

.PHONY: run dev test vet unit fuzz fuzz-short web deps aws-servers clean

## run: build and start the embedded server at http://127.0.0.1:8080/ (data in ./data)
run: web
	$(GO) build -o $(TOOLS)/flowgate ./cmd/flowgate
	./$(TOOLS)/flowgate

## dev: the same server on the AWS code path (S3 store, DynamoDB ledger, stream-driven
## assembly) against MinIO and dynalite on 127.0.0.1, started and stopped with it
dev: web aws-servers
	$(GO) run ./shared/localaws/cmd/localaws dev

## test: every test, the way CI runs it
test: deps vet unit fuzz-short

vet:
	$(GO) vet ./...

unit: web
	$(GO) test -count=1 -timeout 20m ./...

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_TIME)

## fuzz: run each fuzz target for FUZZ_TIME (make fuzz FUZZ_TIME=5m)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZ_TIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	done

## web: the demo page's copy of flow.js, from the pinned npm package
web: web/vendor/flow.min.js

web/vendor/flow.min.js: node_modules/.installed
	mkdir -p web/vendor
	cp $(FLOWJS) $@

deps: node_modules/.installed aws-servers

# MinIO and dynalite at pinned versions, installed once into ~/.cache/flowgate
# (the first MinIO build takes about 4 minutes on 2 cores).
aws-servers: node_modules/.installed
	bash scripts/ensure-aws-servers.sh

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(TOOLS) dist web/vendor

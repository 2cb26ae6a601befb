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
	./shared/protocol:FuzzQuery \
	./shared/httpapi:FuzzPostChunk \
	./shared/upload:FuzzSafeFileName \
	./test/lambdafuzz:FuzzUploadEvent \
	./test/lambdafuzz:FuzzStreamEvent
# make test fuzzes for a number of executions, not seconds: a duration makes
# Go's fuzz coordinator (go1.26) fail now and then with "context deadline
# exceeded" at the deadline, with no failing input (golang/go#75804).
FUZZ_SHORT ?= 100000x
FUZZ_TIME ?= 4s
SOAK_TIME ?= 2m

.PHONY: run dev test vet unit fuzz fuzz-short browser-test soak bench bench-quick web deps aws-servers clean

## run: build and start the embedded server at http://127.0.0.1:8080/ (data in ./data)
run: web
	$(GO) build -o $(TOOLS)/flowgate ./cmd/flowgate
	./$(TOOLS)/flowgate

## dev: the serverless deployment on this machine: the functions' bootstraps under the
## Lambda emulator (FLOWGATE_DEV_INSTANCES upload instances), the ledger's stream and
## TTL emulated in front of dynalite, S3 on MinIO; all on 127.0.0.1, stopped with it
dev: web aws-servers
	$(GO) run ./internal/devstack/cmd/flowgate-dev

## test: every test, the way CI runs it
test: deps vet unit fuzz-short browser-test

vet:
	$(GO) vet ./...

unit: web
	$(GO) test -count=1 -timeout 20m ./...

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_SHORT)

## fuzz: run each fuzz target for FUZZ_TIME (make fuzz FUZZ_TIME=5m, or a count: FUZZ_TIME=1000000x)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZ_TIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	done

## browser-test: the page and flow.js in Chromium against make run's and make dev's servers
browser-test: deps web
	bash scripts/ensure-chromium.sh
	node --test test/browser/

## soak: a bounded soak of make run's server and make dev's stack (make soak SOAK_TIME=10m)
soak: deps
	$(GO) run ./test/soak -duration $(SOAK_TIME) -target local
	$(GO) run ./test/soak -duration $(SOAK_TIME) -target dev

## bench: throughput, latency, memory, completion time and AWS request cost, each against a ceiling
## measured in the same run; prints the report and writes docs/benchmarks.md (under 10 minutes)
bench: deps
	$(GO) run ./bench -out docs/benchmarks.md

## bench-quick: the same with small sizes (under a minute); what CI may run
bench-quick: deps
	$(GO) run ./bench -quick

## web: the demo page's copy of flow.js, from the pinned npm package
web: web/vendor/flow.min.js

web/vendor/flow.min.js: node_modules/.installed
	mkdir -p web/vendor
	cp $(FLOWJS) $@

deps: node_modules/.installed aws-servers

# MinIO, dynalite and the Lambda Runtime Interface Emulator at pinned versions,
# installed once into ~/.cache/flowgate (the first MinIO build takes about 4
# minutes on 2 cores, the emulator's about one).
aws-servers: node_modules/.installed
	bash scripts/ensure-aws-servers.sh

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(TOOLS) dist web/vendor

# ---------------------------------------------------------------------------
# AWS deployment (SAM): Lambda packages, the targets `sam build` calls, and
# deploy. Self-contained: nothing above depends on it. See docs/deploy.md.

# The functions: functions/<name>, logical ID <Name>Function in template.yaml.
LAMBDA_FUNCTIONS := upload assemble redrive count authorizer consumer
DIST             ?= dist
# Built as SAM builds Go for provided.al2023 on arm64: static (no cgo),
# stripped, paths trimmed, and without the RPC shim that only the retired
# go1.x runtime used (lambda.norpc).
LAMBDA_GOENV     := GOOS=linux GOARCH=arm64 CGO_ENABLED=0
LAMBDA_GOFLAGS   := -tags lambda.norpc -trimpath -ldflags='-s -w'
LAMBDAZIP        := $(TOOLS)/lambdazip
SAM              ?= sam
DEPLOY_ARGS      ?=

.PHONY: build package-size deploy template-lint \
	build-UploadFunction build-AssembleFunction build-RedriveFunction build-CountFunction build-AuthorizerFunction build-ConsumerFunction

## build: dist/<function>.zip for every function (a bootstrap inside), without the sam CLI
build: $(LAMBDAZIP)
	@set -e; for f in $(LAMBDA_FUNCTIONS); do \
		echo "build $(DIST)/$$f.zip"; \
		mkdir -p $(DIST)/$$f; \
		$(LAMBDA_GOENV) $(GO) build $(LAMBDA_GOFLAGS) -o $(DIST)/$$f/bootstrap ./functions/$$f; \
		$(LAMBDAZIP) $(DIST)/$$f.zip $(DIST)/$$f/bootstrap; \
	done

$(LAMBDAZIP): deploy/lambdazip/main.go
	$(GO) build -o $@ ./deploy/lambdazip

## package-size: the size of each function's zip and bootstrap
package-size: build
	@for f in $(LAMBDA_FUNCTIONS); do \
		printf '%-11s zip %9d bytes   bootstrap %9d bytes\n' $$f \
			$$(wc -c < $(DIST)/$$f.zip) $$(wc -c < $(DIST)/$$f/bootstrap); \
	done

# `sam build` (BuildMethod: makefile) runs `make build-<LogicalId>` with
# ARTIFACTS_DIR set; the bootstrap it leaves there is what SAM packages.
# LOCAL_CA_BUNDLE=path adds a CA certificate as local-ca.pem, for `sam local`
# against the local MinIO (see env.json.example).
define lambda-artifact
@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)"; exit 1; }
$(LAMBDA_GOENV) $(GO) build $(LAMBDA_GOFLAGS) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(1)
@if [ -n "$(LOCAL_CA_BUNDLE)" ]; then cp "$(LOCAL_CA_BUNDLE)" "$(ARTIFACTS_DIR)/local-ca.pem"; fi
endef

build-UploadFunction:
	$(call lambda-artifact,upload)
build-AssembleFunction:
	$(call lambda-artifact,assemble)
build-RedriveFunction:
	$(call lambda-artifact,redrive)
build-CountFunction:
	$(call lambda-artifact,count)
build-AuthorizerFunction:
	$(call lambda-artifact,authorizer)
build-ConsumerFunction:
	$(call lambda-artifact,consumer)

## deploy: sam build, then sam deploy with samconfig.toml (the first time: sam deploy --guided)
deploy:
	@command -v $(SAM) >/dev/null || { echo "make deploy needs the AWS SAM CLI (sam): see docs/deploy.md"; exit 1; }
	$(SAM) build
	$(SAM) deploy $(DEPLOY_ARGS)

## template-lint: check template.yaml with cfn-lint (pip install cfn-lint), which also applies SAM's transform
template-lint:
	@command -v cfn-lint >/dev/null || { echo "template-lint needs cfn-lint (pip install cfn-lint)"; exit 1; }
	cfn-lint template.yaml

# doractl build, test and demo targets. `make help` lists them.
GO        ?= go
BIN       := bin/doractl
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
EXAMPLE   := examples/rust-dataflow
STUBBORN  := examples/stubborn
EXAMPLE_BINS := $(EXAMPLE)/build/rust-node $(EXAMPLE)/build/rust-status-node \
                $(EXAMPLE)/build/rust-sink $(EXAMPLE)/build/rust-sink-dynamic
# Test timeout per package; the suite is sized for 2 cores.
TEST_TIMEOUT ?= 15m

.PHONY: help build examples test test-short demo demo-failure lint bench bench-liveness bench-failure docs clean

help:
	@echo "make build         build bin/doractl and the example nodes (rust-dataflow, stubborn)"
	@echo "make test          the whole test suite (what .ci/run runs)"
	@echo "make demo          start a local cluster, run the example dataflow, show it, stop it"
	@echo "make demo-failure  two daemons, kill -9 one, watch 'doractl stop' answer at once"
	@echo "make lint          gofmt and go vet"
	@echo "make bench         benchmarks; writes its sections of docs/benchmarks.md"
	@echo "make bench-liveness SWIM vs central heartbeat (~70 min: each loss condition runs LIVENESS_LOSS=62m,"
	@echo "                   long enough to tell 0 false deaths from the heartbeat's 3/h at 10 % loss);"
	@echo "                   writes its section of docs/benchmarks.md"
	@echo "make bench-failure failure-detection figures (real processes, ~20 min); writes docs/failure-model.md"

build: $(BIN) examples

$(BIN): FORCE
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/doractl

examples:
	cd $(EXAMPLE) && $(GO) build -o build/rust-node ./node
	cd $(EXAMPLE) && $(GO) build -o build/rust-status-node ./status-node
	cd $(EXAMPLE) && $(GO) build -o build/rust-sink ./sink
	cd $(EXAMPLE) && $(GO) build -o build/rust-sink-dynamic ./sink-dynamic
	cd $(STUBBORN) && $(GO) build -o build/ignore-stop ./ignore-stop
	cd $(STUBBORN) && $(GO) build -o build/exit-code ./exit-code
	cd $(STUBBORN) && $(GO) build -o build/busy ./busy

test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-short:
	$(GO) test -short -count=1 ./...

demo: build
	./scripts/demo.sh

demo-failure: build
	./scripts/demo-failure.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: build
	./scripts/bench.sh

# Liveness figures (raw SWIM, doractl's verdict, central heartbeat), written between the
# livenessreport markers of docs/benchmarks.md. About 70 minutes on 2 cores: every loss
# condition runs LIVENESS_LOSS, all at once. 62 minutes: a condition with no false death
# then bounds the rate below 2.9/h (95 %), under the heartbeat's expected 3.04/h at 10 %
# loss.
LIVENESS_LOSS ?= 62m

bench-liveness:
	$(GO) run ./bench/cmd/livenessreport -loss-duration $(LIVENESS_LOSS) -command "make bench-liveness" -out docs/benchmarks.md

# Not part of `make test`: kill -9, SIGSTOP and stalls of real clusters, one per profile.
bench-failure: $(BIN)
	$(GO) run ./bench/cmd/failurereport -bin $(BIN) -out docs/failure-model.md

clean:
	rm -rf bin $(EXAMPLE)/build $(STUBBORN)/build

FORCE:

docs: $(BIN)
	$(BIN) gen-cli-docs > docs/cli.md

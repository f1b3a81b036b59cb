# livefront: `make run` starts the server, `make test` runs every test. Both install what is missing.
CARGO ?= cargo

.PHONY: deps web-deps web-test-deps s3-test-deps pg-test-deps nats-test-deps build run test lint bench clean fuzz

deps:
	@scripts/install-deps.sh

# The pages' npm dependencies (hls.js), embedded into the binary at build time (build.rs).
web-deps:
	@scripts/install-web-deps.sh

# Browser tests: chromium, Node.js, and tests/web's Playwright + hls.js.
web-test-deps:
	@scripts/install-web-test-deps.sh

# The S3-compatible server of tests/storage.rs (moto, in a venv under ~/.cache/livefront).
s3-test-deps: deps
	@scripts/install-s3-test-server.sh

# The PostgreSQL server the store tests start throwaway clusters of (Debian's postgresql, 15 on
# Debian 12; no system cluster is created on a fresh machine).
pg-test-deps: deps
	@scripts/install-postgres.sh

# The NATS server of tests/bus.rs (Debian's nats-server; its system service is left disabled and
# stopped, nothing listens on 4222).
nats-test-deps: deps
	@scripts/install-nats.sh

build: deps web-deps
	$(CARGO) build --release --locked

run: build
	./target/release/livefront serve

# The store's API tests run twice: on SQLite (the default), then on PostgreSQL (STORE_BACKEND,
# read by tests/common: each test binary starts a throwaway server of its own).
POSTGRES_API_TESTS = analytics chat commerce followers lifecycle listings metrics products \
	rehearsal sales shop_hooks stream_events trust web_push webhooks
test: deps web-deps web-test-deps s3-test-deps pg-test-deps nats-test-deps
	$(CARGO) test --locked --all-targets
	STORE_BACKEND=postgres $(CARGO) test --locked $(addprefix --test ,$(POSTGRES_API_TESTS))

lint: deps web-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	rm -rf target

# Fuzzing on the stable toolchain, each harness for FUZZ_SECONDS (60 by default): first the
# mutation harnesses of tests/fuzz.rs through the real RTMP and SRT servers, HTTP API and parsers (crashing
# inputs to target/fuzz-crashes/; FUZZ_SEED=N replays a run), then coverage-guided AFL++ on the
# pure parsers (fuzz/afl/run.sh; installs cargo-afl on first use). Figures: target/fuzz-report.txt.
FUZZ_SECONDS ?= 60
fuzz: deps web-deps
	@mkdir -p target && rm -f target/fuzz-report.txt
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_REPORT=$(CURDIR)/target/fuzz-report.txt \
		$(CARGO) test --locked --test fuzz -- --ignored --test-threads 1 --nocapture
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_REPORT=$(CURDIR)/target/fuzz-report.txt fuzz/afl/run.sh
	@cat target/fuzz-report.txt

# Benchmarks (bench/README.md): livefront next to nginx-rtmp (passthrough.sh; PROTO=srt for SRT), next to
# ffmpeg doing the same transcoding ladder (ladder.sh), RTSP pull/out next to RTMP (rtsp.sh), where
# product markers land (markers.sh), and 1000 WebSocket viewers of one stream's live channel: memory,
# CPU, chat fan-out (ws.sh), an nginx edge collapsing low-latency HLS requests (edge.sh),
# glass-to-screen latency of low-latency HLS in hls.js (llhls.sh), and HLS serving next to nginx
# serving the same files (serve.sh).
bench: deps web-deps web-test-deps
	@bench/install-deps.sh
	$(CARGO) build --release --locked
	$(CARGO) build --release --locked --example pipeline_description --example focus_offset --example ws_fanout --example stamp_publisher --example soak
	bench/passthrough.sh
	bench/ladder.sh
	bench/rtsp.sh
	bench/markers.sh
	bench/ws.sh
	bench/edge.sh
	bench/llhls.sh
	bench/serve.sh

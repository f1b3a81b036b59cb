# livefront: `make run` starts the server, `make test` runs every test. Both install what is missing.
CARGO ?= cargo

.PHONY: deps build run test lint bench clean

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --release --locked

run: build
	./target/release/livefront serve

test: deps
	$(CARGO) test --locked --all-targets

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

clean:
	rm -rf target

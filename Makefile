# The two commands a newcomer needs: `make demo` (the whole stack, end to end) and `make test`.
.PHONY: setup demo test compose-test bench proto lint clean

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/cnn demo

test:
	scripts/test.sh

compose-test: setup
	scripts/compose_test.sh

bench:
	scripts/setup.sh --bench
	.venv/bin/python -m bench.core_ops
	.venv/bin/python -m bench.serving

proto: setup
	.venv/bin/python scripts/gen_proto.py

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean:
	rm -rf .venv .numba-cache .pytest_cache .mypy_cache .ruff_cache

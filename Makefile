# Entry points. Every target first makes sure .venv exists (Python >= 3.12, found by
# scripts/find_python.sh) with bayescale installed in editable mode.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup run test pytest lint docs clean

setup:
	@bash scripts/venv.sh

# The main job on the bundled default data: fit Kaplan's joint law L(N, D) and summarise it.
run: setup
	@mkdir -p results
	$(BIN)/bayescale fit kaplan_ladder --law kaplan_nd -o results/kaplan_nd.nc
	$(BIN)/bayescale summary results/kaplan_nd.nc

# Lint, then the full test suite on 2 workers (one file per worker at a time, so the models a
# file compiles are reused by its tests).
test: setup lint pytest

pytest: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check bayescale tests benchmarks data scripts docs
	$(BIN)/ruff format --check bayescale tests benchmarks data scripts docs

docs: setup
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) results .pytest_cache

# Entry points. Every target first makes sure .venv exists (Python >= 3.12, found by
# scripts/find_python.sh) with bayescale installed in editable mode.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup run test pytest lint bench figures docs clean

setup:
	@bash scripts/venv.sh

# The main job on the bundled default data: fit Kaplan's joint law L(N, D), summarise it and
# write the HTML report.
run: setup
	@mkdir -p results
	$(BIN)/bayescale fit kaplan_ladder --law kaplan_nd -o results/kaplan_nd.nc
	$(BIN)/bayescale summary results/kaplan_nd.nc
	$(BIN)/bayescale report results/kaplan_nd.nc --N 1e10 --C 1e21 -o results/report.html
	@echo "report: results/report.html"

# Lint, then the full test suite on 2 workers (one file per worker at a time, so the models a
# file compiles are reused by its tests).
test: setup lint pytest

# The report test opens the report in headless Chromium; install it when it is missing.
pytest: setup
	@bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check bayescale tests benchmarks data scripts docs
	$(BIN)/ruff format --check bayescale tests benchmarks data scripts docs
	$(BIN)/mypy bayescale

bench: setup
	$(BIN)/python benchmarks/run_all.py

figures: setup
	$(BIN)/python scripts/make_figures.py

docs: setup
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) results .pytest_cache

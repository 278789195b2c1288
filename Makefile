# geofm — set-up, tests, demo, benchmarks and packaging. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis python3-gdal python3-rasterio python3-venv python3-pip xvfb
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup test lint demo bench bench-quality bench-pretrain gpu-check package run-qgis walkthrough screenshots clean

setup: $(VENV)/.installed  ## Install system packages, make .venv and install geofm into it (safe to rerun)

$(VENV)/.installed: pyproject.toml Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@# Keep Debian's numpy: rasterio and GDAL from apt are built against it.
	/usr/bin/python3 -c 'import numpy; print(f"numpy=={numpy.__version__}")' > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

test: setup  ## The whole suite, headless
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

demo: setup  ## Train, evaluate and predict on the bundled real scene (CPU, ~10 min)
	$(PY) scripts/demo.py

bench: setup  ## Speed and memory benchmarks; results go to benchmarks/RESULTS.md
	$(PY) benchmarks/run_all.py

bench-quality: setup  ## geofm's defaults against a random forest on every real scene of ../shared/data, 3 seeds (CPU: hours)
	$(PY) benchmarks/bench_quality.py

bench-pretrain: setup  ## Pretrained on the scene vs from scratch (all and 25 % of the labels), every scene, 3 seeds, and pretraining time for 1000 × 1000 px on 2 cores (CPU: about 8 hours; stop and rerun to go on; WORKERS=2 runs two units at a time)
	$(PY) benchmarks/bench_pretrain.py --workers $(or $(WORKERS),1)

gpu-check: setup  ## Mixed-precision training throughput on a GPU (says so and exits 0 without one)
	$(PY) benchmarks/gpu_check.py

package: setup  ## Build dist/geofm.zip for QGIS's "Install from ZIP"
	$(PY) scripts/package_plugin.py

run-qgis: setup  ## Start QGIS with the plugin from this working tree
	scripts/run_qgis.sh

walkthrough: setup  ## Real QGIS under Xvfb: the plugin zip in a fresh profile, clicked through train, cancel, resume, predict, Processing and bad inputs (docs/screenshots/walkthrough/)
	$(PY) scripts/qgis_walkthrough.py

screenshots: walkthrough  ## The README's screenshots: those of the walkthrough (docs/screenshots/walkthrough/)

clean:
	rm -rf build dist outputs .pytest_cache

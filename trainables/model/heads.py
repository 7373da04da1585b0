"""The heads a model can be built with (`build.load_model`); tasks name theirs from this list.

Its own module, free of torch and transformers, so that tasks/ can read it without loading the
family adapters."""

from __future__ import annotations

HEADS = ("classification", "regression", "mlm", "qa")

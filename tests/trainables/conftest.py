"""Tiny-model configs shared by the trainables tests: a scratch BERT small enough for a whole EarlyBERT trial
(search, early bird, prune, ticket) to run in seconds on a CPU. Fresh dicts per test: a test may change its copy."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_scratch() -> dict:
    """ScratchConfig fields: 2 pre-LN layers of 4 heads (head_dim 8), FFN 64, random weights."""
    return {"layers": 2, "heads": 4, "hidden": 32, "ffn": 64, "pre_ln": True}


@pytest.fixture
def tiny_sst2(tiny_scratch) -> dict:
    """FlowConfig fields of an EarlyBERT trial of `tiny_scratch` on 256 SST-2 rows of the shared data: masks every
    2 steps compared over a window of 3, 1 of 4 heads and half the FFN pruned. Each test adds its own eps, step
    budget and evaluation size."""
    return dict(
        scratch=tiny_scratch,
        task="sst2",
        max_train_samples=256,
        max_length=32,
        batch_size=16,
        lr=1e-3,
        coef_lr=5e-2,
        lambda_head=1e-2,
        lambda_ffn=1e-2,
        head_ratio=0.25,
        ffn_ratio=0.5,
        min_ffn=4,
        mask_interval=2,
        window=3,
    )

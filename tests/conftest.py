"""Shared fixtures: the shared data folder and the MiniLM tokenizer (both real, both offline)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder, found the way the package finds it ($TICKETTUNE_DATA, ../shared/data)."""
    from tickettune.trainables.tasks.data import data_root

    return data_root()


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """all-MiniLM-L6-v2's tokenizer (the bert-base-uncased vocabulary), from the installed package."""
    from transformers import AutoTokenizer

    from tickettune.trainables.model.build import model_path

    return AutoTokenizer.from_pretrained(model_path("minilm-l6"))


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (and stall badly on a busy machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

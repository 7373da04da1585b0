"""What an EarlyBERT trial trains with where its config leaves precision, embeddings or dropout unset.

Measured (README, "Does it save time?"; bf16 CPU, 2 seeds, all arms in one process): bf16 working weights with
fp32 masters, the word embedding frozen and no dropout took EarlyBERT `continue` from 0.892 to 0.725 of HF
Trainer's wall-clock on a full SST-2 epoch (accuracy +0.12 pt against the same run without them) and from 0.736
to 0.552 on CoLA, 3 epochs (+2.08 MCC pt). So they are the defaults where they were measured: fine-tuning a
pre-trained encoder. Pre-training (`scratch`, an MLM task) keeps the plain defaults (`auto`, `train`, the
model's dropout): it must train its word embedding, and no lever was measured there; so does a trial whose
config says `fast_path: false`. bf16 master weights only where bf16 is fast on the CPU: on a GPU autocast stays
(not measured there), and without fast bf16 fp32 (`auto`). A value the config sets always wins. `tickettune
finetune` keeps plain defaults: on SST-2 the levers cost the dense run 0.57 pt, over the issue's 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .training.precision import resolve_precision


@dataclass(frozen=True)
class Levers:
    precision: str
    embeddings: str
    dropout: float | None  # None: the model's own config


def fast_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve(precision: str | None, embeddings: str | None, dropout: float | None, plain: bool, device: str) -> Levers:
    """The levers a trial trains with: each set value as it is, each unset one from the fast path (`plain`:
    pre-training, or FlowConfig's `fast_path: false`: the plain defaults instead)."""
    if precision is None:
        fast_bf16 = device == "cpu" and resolve_precision("auto", device) == "bf16"
        precision = "bf16-master" if fast_bf16 and not plain else "auto"
    if embeddings is None:
        embeddings = "train" if plain else "freeze"
    if dropout is None and not plain:
        dropout = 0.0
    return Levers(precision, embeddings, dropout)

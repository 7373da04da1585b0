"""What the EarlyBERT search phase hands to the ticket phase, and its checkpoint.

The search phase ends with an untrained ticket (pruned, rewound or keep-trained) and a few facts about
how it was found. Saved as a checkpoint, that is everything a restarted worker needs to skip the search
and go straight to ticket training, so a crash after the early bird costs only the ticket steps since.
The checkpoint is a ticket directory (`ticket.save_ticket`, atomic) whose ticket.json also carries the
search facts under ``search_state``; in ticket_mode "continue" the pruned AdamW state (carry.py) sits
beside it in ``optimizer.safetensors``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn
from transformers import PreTrainedTokenizerBase

from ..ticket.format import load_ticket, save_ticket
from . import optimizer_carry as carry

KEY = "search_state"
SUBDIR = "search_ticket"
OPTIMIZER = "optimizer.safetensors"


@dataclass
class SearchState:
    converged: bool
    early_bird_step: int | None
    steps: int  # optimizer steps the search phase took
    flops: float  # training FLOPs spent so far (relative_cost's numerator)
    seconds: float
    head_masks: list[list[bool]]
    ffn_masks: list[list[bool]]
    mask_history: list[dict] = field(default_factory=list)


def save(
    state: SearchState,
    ticket: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    directory: str | os.PathLike,
    optimizer_state: dict | None = None,
) -> Path:
    """Write the untrained ticket and `state` (and the optimizer state, if any) under `directory`."""
    if optimizer_state:  # written (atomically) first: a folder with the ticket is a complete checkpoint
        tmp = Path(directory) / f".{OPTIMIZER}.tmp"
        carry.save(optimizer_state, str(tmp))
        os.replace(tmp, Path(directory) / OPTIMIZER)
    return save_ticket(ticket, tokenizer, Path(directory) / SUBDIR, {KEY: asdict(state)})


def load(directory: str | os.PathLike) -> tuple[SearchState, nn.Module, dict | None] | None:
    """(state, ticket in train mode, optimizer state or None) from a checkpoint folder; None if it holds
    no search state."""
    path = Path(directory) / SUBDIR
    if not path.is_dir():
        return None
    ticket, _, info = load_ticket(path)
    ticket.train()
    opt = Path(directory) / OPTIMIZER
    return SearchState(**info[KEY]), ticket, carry.load(str(opt)) if opt.is_file() else None

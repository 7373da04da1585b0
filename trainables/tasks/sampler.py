"""Length-grouped batches: sentences of similar length share a batch, so little of a batch is padding.

SST-2 sentences average 13 tokens; random batches of 32 pad to ~40. HF `Trainer`'s
``train_sampling_strategy="group_by_length"`` (formerly ``group_by_length=True``) cuts that padding, and
a user comparing us against it is right to: measured here, it took a MiniLM bf16 step from 353 to 192 ms.
The recipe (Trainer's, from fairseq): shuffle, cut the order into "mega-batches" of `mega` batches, sort
each mega-batch by length (longest first), cut it into batches. Batches stay random in which sentences they
hold and in their order, so training still sees a shuffled stream; only the padding goes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def length_order(lengths: Sequence[int]) -> np.ndarray:
    """Row indices longest first (stable): batches of similar lengths, little padding, memory peak first.
    Evaluation's order (data.py), where a batch of 64 SST-2 dev sentences in file order pads to ~2x its mean
    length (MiniLM bf16 dev pass: 3.1 s -> 1.6 s here), and inference's (inference.py)."""
    return np.argsort(-np.asarray(lengths), kind="stable")


class LengthGroupedSampler(Sampler[int]):
    """Indices in length-grouped order, reshuffled every epoch (seeded: the same seed gives the same order).

    `lengths` holds each example's token count. Use with ``DataLoader(batch_size=B, sampler=...)``: the order
    is built from runs of B indices, so each batch is one group. The longest batch comes first, so an
    out-of-memory error shows at step 1, not hours in.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None, mega: int = 50
    ):
        if batch_size < 1 or mega < 1:
            raise ValueError(f"batch_size={batch_size} and mega={mega} must be >= 1")
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        self.batch_size, self.mega = batch_size, mega
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(len(self.lengths), generator=self.generator)
        span = self.batch_size * self.mega
        batches: list[torch.Tensor] = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)]
            batches += list(chunk.split(self.batch_size))
        full = [i for i, b in enumerate(batches) if len(b) == self.batch_size]  # a short last batch stays last
        if full:  # the longest batch first (it is the first of one of the mega-batches)
            longest = max(full, key=lambda i: int(self.lengths[batches[i][0]]))
            batches[full[0]], batches[longest] = batches[longest], batches[full[0]]
        for batch in batches:
            yield from batch.tolist()

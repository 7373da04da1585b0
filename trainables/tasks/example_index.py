"""Training batches that say which rows they hold: what a per-row lookup (cached teacher logits) needs.

`with_example_index(loader)` is the same loader (the same sampler and seeded generator, so the same batches in
the same order, reseeding included) over the dataset plus one column, `example_index`: each row's position in
the tokenized train dataset (a SQuAD window's, not its question's). The loop hands that key to its callbacks and
never to the model (training/callbacks.split_rows).
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from ..training.callbacks import EXAMPLE_INDEX


def with_example_index(loader: DataLoader) -> DataLoader:
    """`loader` (one that data.seeded_loader built, over a datasets.Dataset) whose batches carry `example_index`."""
    ds = loader.dataset
    if not hasattr(ds, "add_column"):
        raise TypeError(f"with_example_index needs a loader over a datasets.Dataset, not a {type(ds).__name__}")
    if EXAMPLE_INDEX in ds.column_names:
        return loader
    if loader.batch_sampler is not None and type(loader.batch_sampler).__name__ != "BatchSampler":
        raise TypeError(f"with_example_index keeps the sampler, not a {type(loader.batch_sampler).__name__}")
    sampler = loader.sampler
    if isinstance(sampler, (RandomSampler, SequentialSampler)) and len(sampler.data_source) != len(ds):
        raise ValueError("the loader's sampler is over another dataset")
    indexed = ds.add_column(EXAMPLE_INDEX, np.arange(len(ds), dtype=np.int64))
    return DataLoader(
        indexed,
        batch_size=loader.batch_size,
        sampler=sampler,  # its generator is the loader's: the order is unchanged, and reseeding still acts on it
        generator=loader.generator,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
    )

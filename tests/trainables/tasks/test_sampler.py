"""Length-grouped batches: every row once per epoch, seeded, and far less padding than random batches."""

import torch

from tickettune.trainables.tasks.glue import glue_loader
from tickettune.trainables.tasks.sampler import LengthGroupedSampler


def test_each_index_once_per_epoch_and_seeded():
    lengths = torch.randint(1, 60, (1000,)).tolist()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = list(LengthGroupedSampler(lengths, 32, g1)), list(LengthGroupedSampler(lengths, 32, g2))
    assert a == b and sorted(a) == list(range(1000))
    assert list(LengthGroupedSampler(lengths, 32, g1)) != a  # the next epoch is reshuffled
    batches = [a[i : i + 32] for i in range(0, 1000, 32)]
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch comes first
    assert len(batches[-1]) == 1000 % 32  # the short batch stays last: every other batch is whole


def test_grouped_sst2_batches_pad_far_less(shared_data, minilm_tokenizer):
    def padded_fraction(group: bool) -> float:
        loader = glue_loader(
            "sst2",
            "train",
            minilm_tokenizer,
            batch_size=32,
            max_length=64,
            max_samples=4000,
            seed=0,
            group_by_length=group,
        )
        real = total = 0
        for batch in loader:
            real += int(batch["attention_mask"].sum())
            total += batch["attention_mask"].numel()
        assert real == sum(len(ids) for ids in loader.dataset["input_ids"])  # every row seen once
        return 1 - real / total

    assert padded_fraction(True) < 0.25 * padded_fraction(False)

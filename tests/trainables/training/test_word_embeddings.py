"""embeddings: freeze leaves every word-embedding row bit-identical; sparse moves only the rows a batch used,
matches dense AdamW on them at the first step, clips on the right norm, and is refused with a tied decoder."""

from __future__ import annotations

import copy

import pytest
import torch

from tickettune.trainables.earlybert import optimizer_carry as carry
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.training import word_embeddings
from tickettune.trainables.training.loop import TrainConfig, make_optimizer, train
from tickettune.trainables.training.optimizer import TrainOptimizer

pytestmark = pytest.mark.usefixtures("one_thread")


def batches(n: int, vocab: list[tuple[int, int]] | None = None, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    vocab = vocab or [(5, 60)] * n
    out = []
    for lo, hi in vocab[:n]:
        ids = torch.randint(lo, hi, (8, 16), generator=g)  # few ids: repeated inside a batch
        out.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones(8, 16, dtype=torch.long),
                "labels": torch.randint(0, 2, (8,), generator=g),
            }
        )
    return out


def tiny(head: str = "classification"):
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=64), head=head)
    return model


def words(model) -> torch.Tensor:
    return word_embeddings.word_embedding(model).weight.detach().clone()


def test_freeze_leaves_every_row_bit_identical_and_trains_the_rest():
    model = tiny()
    emb0 = words(model)
    pos0 = model.bert.embeddings.position_embeddings.weight.detach().clone()
    res = train(model, batches(3), TrainConfig(lr=1e-3, max_steps=3, progress=False, embeddings="freeze"))
    assert torch.equal(words(model), emb0)
    assert not torch.equal(model.bert.embeddings.position_embeddings.weight, pos0)  # still trained
    assert word_embeddings.word_embedding(model).weight not in {
        p for g in res.optimizer.param_groups for p in g["params"]
    }


@pytest.mark.parametrize("precision", ["fp32", "bf16-master"])
def test_sparse_moves_only_the_rows_its_batches_used(precision):
    model = tiny()
    emb0 = words(model)
    data = batches(2, vocab=[(5, 40), (40, 80)])  # disjoint rows: step 2 must not move step 1's rows
    cfg = TrainConfig(lr=1e-3, max_steps=1, progress=False, embeddings="sparse", precision=precision)
    opt = make_optimizer(model, cfg)
    train(model, data[:1], cfg, optimizer=opt)
    emb1 = words(model)
    cfg2 = TrainConfig(lr=1e-3, max_steps=1, progress=False, embeddings="sparse", precision=precision)
    train(model, data[1:], cfg2, optimizer=opt)
    emb2 = words(model)
    used1, used2 = data[0]["input_ids"].unique(), data[1]["input_ids"].unique()
    changed1 = (emb1 != emb0).any(dim=1).nonzero().flatten()
    changed2 = (emb2 != emb1).any(dim=1).nonzero().flatten()
    assert set(changed1.tolist()) == set(used1.tolist())
    assert set(changed2.tolist()) == set(used2.tolist())  # lazy: step-1 rows do not drift on their momentum
    assert word_embeddings.word_embedding(model).sparse


def test_sparse_first_step_matches_dense_adamw_on_the_used_rows():
    dense, sparse = tiny(), tiny()
    data = batches(1)
    # Adam's first step is blind to the gradient's scale: the clipping norm is tested on its own below
    common = dict(lr=1e-2, max_steps=1, progress=False, max_grad_norm=0.05, warmup_ratio=0.0)
    train(dense, data, TrainConfig(**common))
    train(sparse, data, TrainConfig(**common, embeddings="sparse"))
    used = data[0]["input_ids"].unique()
    wd, ws = words(dense), words(sparse)
    assert torch.allclose(wd[used], ws[used], atol=1e-6, rtol=0)
    for (n, pd), ps in zip(dense.named_parameters(), sparse.parameters()):
        if "word_embeddings" not in n:
            assert torch.allclose(pd, ps, atol=1e-6, rtol=0), n
    untouched = torch.ones(len(wd), dtype=torch.bool)
    untouched[used] = False
    assert torch.equal(ws[untouched], tiny().bert.embeddings.word_embeddings.weight.detach()[untouched])


def test_sparse_clip_norm_counts_repeated_ids_once_per_row():
    model = tiny()
    opt = make_optimizer(model, TrainConfig(embeddings="sparse"))
    ref = copy.deepcopy(model)
    word_embeddings.apply(ref, "train")
    batch = batches(1)[0]
    model.train(), ref.train()
    torch.manual_seed(1)
    model(**batch).loss.backward()
    torch.manual_seed(1)
    ref(**batch).loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad.is_sparse
    expect = torch.nn.utils.get_total_norm([p.grad for p in ref.parameters() if p.grad is not None])
    assert float(opt.clip_grad_norm_(1e9)) == pytest.approx(float(expect), rel=1e-5)


def test_lazy_moments_carry_into_a_continue_ticket():
    model = tiny()
    cfg = TrainConfig(lr=1e-3, max_steps=2, progress=False, embeddings="sparse")
    res = train(model, batches(2), cfg)
    assert isinstance(res.optimizer, TrainOptimizer)
    state = carry.state_by_name(model, res.optimizer)
    name = "bert.embeddings.word_embeddings.weight"
    assert state[name]["exp_avg"].shape == model.bert.embeddings.word_embeddings.weight.shape
    assert float(state[name]["step"]) == 2.0
    twin = tiny()
    opt = make_optimizer(twin, cfg)
    carry.load_state(opt, twin, state)
    assert opt.sparse.state[twin.bert.embeddings.word_embeddings.weight]["exp_avg"].abs().sum() > 0


def test_sparse_is_refused_with_a_tied_decoder_and_freeze_freezes_it_too():
    model = tiny("mlm")
    assert word_embeddings.is_tied(model)
    with pytest.raises(ValueError, match="embeddings='sparse' cannot be used with a tied MLM decoder"):
        make_optimizer(model, TrainConfig(embeddings="sparse"))
    word_embeddings.apply(model, "freeze")
    assert not model.get_output_embeddings().weight.requires_grad


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="embeddings='dense'"):
        TrainConfig(embeddings="dense")
    from tickettune.trainables.config import FlowConfig

    with pytest.raises(ValueError, match="embeddings='sprase'"):
        FlowConfig(embeddings="sprase")

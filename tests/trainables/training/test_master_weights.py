"""precision: bf16-master — bf16 working weights in the blocks, fp32 masters and moments in the optimizer;
the model leaves training in fp32 holding its masters, and a `continue` ticket prunes them consistently."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tickettune.trainables.config import FlowConfig
from tickettune.trainables.earlybert import optimizer_carry as carry
from tickettune.trainables.earlybert import slimming
from tickettune.trainables.earlybert.draw import make_ticket
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.model.encoder import encoder_of
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.training.callbacks import Callback
from tickettune.trainables.training.loop import TrainConfig, make_optimizer, train
from tickettune.trainables.training.optimizer import TrainOptimizer, working_params

pytestmark = pytest.mark.usefixtures("one_thread")
MASTER = dict(precision="bf16-master", dropout=0.0)


def batches(n: int, seed: int = 0, vocab: tuple[int, int] = (5, 500)) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(*vocab, (8, 16), generator=g),
            "attention_mask": torch.ones(8, 16, dtype=torch.long),
            "labels": torch.randint(0, 2, (8,), generator=g),
        }
        for _ in range(n)
    ]


def tiny(pre_ln: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model, _ = scratch_model(ScratchConfig(layers=2, heads=4, hidden=32, ffn=64, pre_ln=pre_ln), head="classification")
    return model


class Inspect(Callback):
    """After every optimizer step: working weights are bf16 copies of fp32 masters, moments fp32."""

    def __init__(self, model: nn.Module, optimizer: TrainOptimizer):
        self.model, self.optimizer, self.checked = model, optimizer, 0

    def after_step(self, step: int, logs: dict) -> bool:
        masters = self.optimizer.masters()
        for p in working_params(self.model):
            m = masters[id(p)]
            assert p.dtype == torch.bfloat16 and m.dtype == torch.float32
            assert torch.equal(p.detach(), m.to(torch.bfloat16))
            st = self.optimizer.state[p]
            assert st["exp_avg"].dtype == torch.float32 and st["exp_avg_sq"].dtype == torch.float32
        for name, p in self.model.named_parameters():
            if "LayerNorm" in name or "coef" in name or "embeddings" in name or "classifier" in name:
                assert p.dtype == torch.float32, name
        assert encoder_of(self.model).compute_dtype == torch.bfloat16
        self.checked += 1
        return False


def test_blocks_train_in_bf16_with_fp32_masters_and_the_model_leaves_in_fp32():
    model = tiny()
    slimming.attach(model)
    cfg = TrainConfig(lr=1e-3, max_steps=4, progress=False, **MASTER)
    opt = make_optimizer(model, cfg)
    assert isinstance(opt, TrainOptimizer) and opt.working_dtype == torch.bfloat16
    assert len(working_params(model)) == 2 * 6 * 2  # 2 layers x (q k v o ffn_in ffn_out) x (weight, bias)
    before = {id(p): opt.masters()[id(p)].clone() for p in working_params(model)}
    check = Inspect(model, opt)
    res = train(model, batches(4), cfg, [slimming.SlimmingCallback(1e-2, 1e-2), check], optimizer=opt)
    assert check.checked == 4 and res.steps == 4
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert encoder_of(model).compute_dtype is None
    for p in working_params(model):  # exactly the masters, in their storage; and they moved
        m = opt.masters()[id(p)]
        assert p.data_ptr() == m.data_ptr() and not torch.equal(m, before[id(p)])
    heads, _ = slimming.coefficients(model)
    assert heads[0].dtype == torch.float32 and not torch.equal(heads[0], torch.ones_like(heads[0]))


def test_bf16_master_follows_fp32_training_closely():
    results = {}
    for precision in ("fp32", "bf16-master"):
        model = tiny(pre_ln=True)
        res = train(
            model, batches(8), TrainConfig(lr=1e-3, max_steps=8, progress=False, precision=precision, dropout=0.0)
        )
        results[precision] = (res.losses, {n: p.detach().clone() for n, p in model.named_parameters()})
    (l32, w32), (l16, w16) = results["fp32"], results["bf16-master"]
    assert max(abs(a - b) for a, b in zip(l32, l16)) < 0.02
    for name, w in w32.items():  # 8 AdamW steps of lr 1e-3 move a weight ~8e-3; bf16 noise stays far below
        assert (w - w16[name]).abs().max() < 4e-3, name


def test_clipping_sees_the_fp32_upcast_of_the_bf16_gradients():
    model = tiny()
    opt = make_optimizer(model, TrainConfig(lr=1e-3, **MASTER))
    model.train()
    model(**batches(1)[0]).loss.backward()
    expect = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None]).norm()
    total = opt.clip_grad_norm_(1e-3)
    assert total == pytest.approx(float(expect), rel=1e-5)
    clipped = torch.cat([m.grad.flatten() for m in opt.masters().values()])
    assert clipped.dtype == torch.float32 and all(p.grad is None for p in working_params(model))


def test_skipped_layers_keep_their_masters_under_pld():
    class DropSecond:
        def sample(self, n: int) -> list[tuple[bool, float]]:
            return [(True, 1.0)] + [(False, 0.5)] * (n - 1)

    model = tiny(pre_ln=True)
    encoder_of(model).layer_drop = DropSecond()
    opt = make_optimizer(model, TrainConfig(lr=1e-3, **MASTER))
    second = [p for p in working_params(model) if ".1." in next(n for n, q in model.named_parameters() if q is p)]
    before = [opt.masters()[id(p)].clone() for p in second]
    train(model, batches(3), TrainConfig(lr=1e-3, max_steps=3, progress=False, **MASTER), optimizer=opt)
    assert all(torch.equal(opt.masters()[id(p)], b) for p, b in zip(second, before))


def masks_of(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    heads = [torch.tensor([True, False, True, True]), torch.tensor([False, True, True, False])]
    ffn = [torch.arange(64) % 3 != 0, torch.arange(64) % 2 == 0]
    return heads, ffn


def test_continue_ticket_prunes_masters_and_moments_like_the_weights():
    model = tiny()
    slimming.attach(model)
    cfg = TrainConfig(lr=1e-3, max_steps=3, progress=False, **MASTER)
    search = train(model, batches(3), cfg, [slimming.SlimmingCallback(1e-2, 1e-2)])
    masters = {
        n: search.optimizer.masters()[id(p)] for n, p in model.named_parameters() if id(p) in search.optimizer.masters()
    }
    heads, ffn = masks_of(model)
    moments = carry.prune_state(model, carry.state_by_name(model, search.optimizer), heads, ffn)
    ticket = make_ticket(None, model, heads, ffn, rewind=False)
    # the ticket's fp32 weights are the masters, pruned (FFN output columns scaled by the folded coefficients)
    name = "bert.encoder.layer.0.intermediate.dense.weight"
    assert torch.equal(dict(ticket.named_parameters())[name], masters[name][ffn[0]])
    name = "bert.encoder.layer.1.attention.self.query.weight"
    rows = torch.cat([torch.arange(8) + 8 * h for h in (1, 2)])
    assert torch.equal(dict(ticket.named_parameters())[name], masters[name][rows])
    full = search.optimizer.state[dict(model.named_parameters())[name]]["exp_avg_sq"]
    assert torch.equal(moments[name]["exp_avg_sq"], full[rows]) and moments[name]["exp_avg_sq"].dtype == torch.float32
    # the ticket's own optimizer: masters from its fp32 weights, the pruned moments loaded under its params
    fp32 = {n: p.detach().clone() for n, p in ticket.named_parameters()}
    opt = make_optimizer(ticket, cfg)
    assert carry.load_state(opt, ticket, moments) == len(moments)
    p = dict(ticket.named_parameters())[name]
    assert p.dtype == torch.bfloat16 and torch.equal(opt.masters()[id(p)], fp32[name])
    assert torch.equal(opt.state[p]["exp_avg_sq"], moments[name]["exp_avg_sq"])
    assert opt.dense.state[opt.masters()[id(p)]] is opt.state[p]
    train(ticket, batches(2, seed=1), cfg, optimizer=opt)
    assert all(p.dtype == torch.float32 for p in ticket.parameters())


def test_ticket_equals_the_masked_dense_model_under_bf16_master():
    model = tiny()
    slimming.attach(model)
    heads, ffn = masks_of(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer, hm, fm in zip(encoder_of(model).blocks, heads, ffn):
            layer.head_coef.copy_(hm * (0.5 + torch.rand(4, generator=g)))
            layer.ffn_coef.copy_(fm * (0.5 + torch.rand(64, generator=g)))
    ticket = make_ticket(None, model, heads, ffn, rewind=False)
    batch = batches(1, seed=3)[0]
    out = {}
    for name, m in (("masked", model), ("ticket", ticket)):
        make_optimizer(m, TrainConfig(lr=1e-3, **MASTER))  # engaged: bf16 blocks
        m.train()  # dropout 0: the training forward itself
        out[name] = m(**batch).logits.float()
    assert out["masked"].dtype == torch.float32
    assert (out["masked"] - out["ticket"]).abs().max() < 3e-2  # bf16 rounding of folded vs scaled weights


@pytest.mark.parametrize("family", ["modernbert", "distilbert"])
def test_bf16_master_trains_other_families(tmp_path, family):
    from tickettune.trainables.model.build import load_model
    from tickettune.trainables.testing.random_models import write_random_model

    model, _ = load_model(str(write_random_model(family, tmp_path / family)), head="classification", num_labels=2)
    batch = [{k: v for k, v in b.items() if k != "token_type_ids"} for b in batches(3)]
    ref = copy.deepcopy(model)
    res = train(model, batch, TrainConfig(lr=1e-3, max_steps=3, progress=False, precision="bf16-master", dropout=0.0))
    ref_res = train(ref, batch, TrainConfig(lr=1e-3, max_steps=3, progress=False, precision="fp32", dropout=0.0))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert max(abs(a - b) for a, b in zip(res.losses, ref_res.losses)) < 0.05


def test_earlybert_continue_runs_end_to_end_with_every_lever():
    cfg = FlowConfig(
        scratch={"layers": 2, "heads": 4, "hidden": 32, "ffn": 64},
        task="sst2",
        max_train_samples=128,
        max_eval_samples=32,
        max_length=32,
        batch_size=16,
        lr=1e-3,
        search_max_steps=4,
        detect=False,
        unconverged="ticket",
        ticket_steps=3,
        mask_interval=2,
        head_ratio=0.25,
        ffn_ratio=0.5,
        min_ffn=4,
        ticket_mode="continue",
        precision="bf16-master",
        embeddings="sparse",
        dropout=0.0,
    )
    result = run_flow(cfg, LocalReporter(verbose=False))
    assert result.ticket_steps == 3 and 0.0 <= result.val_metric <= 1.0


def test_refused_without_its_optimizer():
    model = tiny()
    with pytest.raises(ValueError, match="bf16-master' needs the optimizer"):
        train(
            model,
            batches(1),
            TrainConfig(max_steps=1, progress=False, precision="bf16-master"),
            optimizer=torch.optim.AdamW(model.parameters()),
        )
    with pytest.raises(ValueError, match="precision='bf16-mixed'"):
        FlowConfig(precision="bf16-mixed")
    assert FlowConfig(precision="bf16-master").levers()["precision"] == "bf16-master"

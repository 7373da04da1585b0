"""The training side on a CUDA device (skipped without one; scripts/gpu_check.sh runs these on a GPU).

Models are built from BertConfig directly (no tokenizer, no packaged MiniLM): the GPU machine has
neither Ray nor the MiniLM package, and these tests must run there.
"""

import contextlib
import copy
import os
import socket

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

CUDA = torch.device("cuda", 0)


def bert(head="classification", layers=2, heads=4, hidden=64, ffn=128, pre_ln=True, dropout=0.0, seed=0):
    from transformers import BertConfig

    from tickettune.trainables.model.build import _head_kwargs, head_class
    from tickettune.trainables.model.families import install

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=1000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **_head_kwargs(head, 2),
    )
    config._attn_implementation = "sdpa"
    model = head_class(head)(config)
    install(model, pre_ln=pre_ln)
    return model


def batches(n=4, size=8, seq=16, seed=0, mlm=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(5, 1000, (size, seq), generator=g)
        mask = torch.ones_like(ids)
        mask[0, seq // 2 :] = 0
        if mlm:
            labels = torch.where(torch.rand(size, seq, generator=g) < 0.3, ids, torch.full_like(ids, -100))
            labels[:, 1] = ids[:, 1]
        else:
            labels = (ids[:, 1] % 2).long()
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


@contextlib.contextmanager
def no_tf32():
    """Exact comparisons need true fp32 matmuls (TF32 keeps 10 mantissa bits)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_placement_puts_the_model_and_batches_on_the_gpu_with_tf32():
    from tickettune.trainables.training.device import OneDevice, place

    torch.backends.cuda.matmul.allow_tf32 = False
    p = place(True, gpu_ids=[os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]])
    assert p.device.type == CUDA.type and not p.fallback and torch.backends.cuda.matmul.allow_tf32
    one = OneDevice(p)
    model = one.prepare_model(bert())
    assert all(t.device.type == "cuda" for t in model.parameters())
    loader = torch.utils.data.DataLoader(batches(2)[0]["input_ids"], batch_size=4, pin_memory=True)
    assert all(b.device.type == "cuda" for b in one.prepare_loader(loader))


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_train_steps_on_cuda_keep_fp32_weights_and_coefficients(precision, monkeypatch):
    from tickettune.trainables.earlybert import slimming
    from tickettune.trainables.training.loop import TrainConfig, train
    from tickettune.trainables.training.precision import Precision

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    scalers = []
    original = Precision.scaler
    monkeypatch.setattr(Precision, "scaler", lambda self: scalers.append(original(self)) or scalers[-1])
    model = slimming.attach(bert()).to(CUDA)
    before = copy.deepcopy(model.state_dict())
    res = train(
        model,
        batches(),
        TrainConfig(lr=1e-3, max_steps=6, warmup_ratio=0.0, progress=False, precision=precision),
        [slimming.SlimmingCallback(1e-3, 1e-3)],
    )
    assert res.steps == 6 and all(torch.isfinite(torch.tensor(res.losses)))
    assert all(p.dtype == torch.float32 and p.device.type == CUDA.type for p in model.parameters())
    head_coefs, _ = slimming.coefficients(model)
    assert head_coefs[0].dtype == torch.float32 and not torch.equal(head_coefs[0].detach().cpu(), torch.ones(4))
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(moved) > len(before) // 2
    if precision == "fp16":  # the scaled-loss path: a GradScaler scaled, unscaled, stepped and updated
        [scaler] = scalers
        state = scaler.state_dict()  # update() ran: the scale grew or shrank, or the growth tracker counted
        assert scaler.is_enabled() and (state["scale"], state["_growth_tracker"]) != (2.0**16, 0)
    else:
        assert scalers == [None]  # bf16 has fp32's range: no scaling


def test_fp16_step_whose_gradients_overflow_is_skipped(monkeypatch):
    """train()'s fp16 path: inf gradients (here from a huge penalty) leave every weight as it was and
    halve the loss scale, as GradScaler promises; the next step trains."""
    from tickettune.trainables.training.loop import Callback, TrainConfig, train
    from tickettune.trainables.training.precision import Precision

    class HugePenaltyFirstStep(Callback):
        step = 0

        def before_step(self, step):
            self.step = step

        def extra_loss(self, model):
            return next(model.parameters()).sum() * 1e38 if self.step == 0 else None  # x scale: inf grads

    scalers = []
    original = Precision.scaler
    monkeypatch.setattr(Precision, "scaler", lambda self: scalers.append(original(self)) or scalers[-1])
    model = bert().to(CUDA)
    w0 = copy.deepcopy(model.state_dict())
    train(
        model,
        batches(),
        TrainConfig(lr=1e-3, max_steps=1, warmup_ratio=0.0, progress=False, precision="fp16"),
        [HugePenaltyFirstStep()],
    )
    assert all(torch.equal(v, w0[k]) for k, v in model.state_dict().items())  # the step was skipped
    assert scalers[0].get_scale() == 2.0**15
    train(model, batches(), TrainConfig(lr=1e-3, max_steps=2, warmup_ratio=0.0, progress=False, precision="fp16"))
    assert not all(torch.equal(v, w0[k]) for k, v in model.state_dict().items())


def test_pruned_equals_masked_dense_on_cuda():
    from tickettune.trainables.earlybert.draw import make_ticket
    from tickettune.trainables.earlybert.masks import MaskConfig, masks_from_model
    from tickettune.trainables.earlybert.slimming import attach
    from tickettune.trainables.model.encoder import encoder_of

    dense = attach(bert(layers=3, heads=6, hidden=48, ffn=96, pre_ln=False)).to(CUDA).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for l in encoder_of(dense).layer:
            l.head_coef.copy_(torch.empty(l.num_heads).uniform_(-1.5, 1.5, generator=g))
            l.ffn_coef.copy_(torch.empty(l.ffn_width).uniform_(-1.5, 1.5, generator=g))
    heads, ffn = masks_from_model(dense, MaskConfig())
    pruned = make_ticket(None, dense, heads, ffn, rewind=False).eval()
    assert next(pruned.parameters()).device.type == CUDA.type
    with torch.no_grad():
        for l, h, f in zip(encoder_of(dense).layer, heads, ffn):
            l.head_coef.mul_(h.to(CUDA))
            l.ffn_coef.mul_(f.to(CUDA))
    batch = {k: v.to(CUDA) for k, v in batches(1, size=3)[0].items() if k != "labels"}
    with no_tf32(), torch.no_grad():
        torch.testing.assert_close(pruned(**batch).logits, dense(**batch).logits, rtol=0, atol=1e-5)


def test_pld_step_on_cuda_skips_dropped_layers():
    from tickettune.trainables import pld as pld_mod
    from tickettune.trainables.model.encoder import encoder_of
    from tickettune.trainables.training.precision import Precision

    model = bert(head="mlm", layers=6).to(CUDA).train()
    pld = pld_mod.attach(model, pld_mod.PLDConfig(theta_bar=0.5, gamma=0.001, seed=0))
    amp = Precision.of("auto", CUDA)
    dropped_any = False
    for step in range(20_000, 20_006):
        pld.set_step(step)
        model.zero_grad(set_to_none=True)
        with amp.autocast():
            loss = model(**{k: v.to(CUDA) for k, v in batches(1, mlm=True)[0].items()}).loss
        loss.float().backward()
        kept = pld.last_kept()
        for layer, keep in zip(encoder_of(model).layer, kept):
            assert all((p.grad is not None) == keep for p in layer.parameters())
        dropped_any |= not all(kept)
    assert dropped_any and torch.isfinite(loss)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_process_nccl_group_and_ddp_train_step():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from tickettune.trainables.training.loop import TrainConfig, train

    if not dist.is_nccl_available():
        pytest.fail("this torch build has CUDA but no NCCL")
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1, device_id=CUDA)
    try:
        t = torch.ones(3, device=CUDA)
        dist.all_reduce(t)
        assert t.tolist() == [1.0, 1.0, 1.0] and dist.get_backend() == "nccl"
        model = DDP(bert().to(CUDA), device_ids=[CUDA])
        res = train(
            model, batches(), TrainConfig(lr=1e-3, max_steps=3, warmup_ratio=0.0, progress=False, precision="auto")
        )
        assert res.steps == 3 and all(torch.isfinite(torch.tensor(res.losses)))
    finally:
        dist.destroy_process_group()

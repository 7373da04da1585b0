"""The L1 penalty under DDP with PLD in the search phase (the multi-GPU trial's code path, here over gloo):
a dropped layer's coefficients are outside the forward graph but inside the penalty. Training must run
and match the same training without DDP."""

import socket

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from tickettune.trainables import pld as pld_mod
from tickettune.trainables.earlybert import slimming
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.training.loop import TrainConfig, train

START = 20_000  # θ has settled at θ̄: layers drop


def model_with_pld():
    torch.manual_seed(0)
    model, _ = scratch_model(
        ScratchConfig(layers=4, heads=2, hidden=32, ffn=64, dropout=0.0, max_positions=64), head="classification"
    )
    slimming.attach(model)
    return model, pld_mod.attach(model, pld_mod.PLDConfig(theta_bar=0.5, seed=0))


def batches():
    g = torch.Generator().manual_seed(1)
    return [
        {"input_ids": torch.randint(1000, 5000, (4, 12), generator=g), "labels": torch.randint(0, 2, (4,), generator=g)}
        for _ in range(3)
    ]


def run(wrap) -> tuple[torch.Tensor, float]:
    model, pld = model_with_pld()
    callbacks = [slimming.SlimmingCallback(1e-2, 1e-2), pld_mod.PLDCallback(pld, offset=START)]
    cfg = TrainConfig(
        lr=1e-3, max_steps=6, grad_accum=2, warmup_ratio=0.0, progress=False, precision="fp32", fused=False
    )
    train(wrap(model), batches(), cfg, callbacks)
    return torch.cat([p.detach().flatten() for p in model.parameters()]), pld.realized_fraction()


@pytest.fixture
def one_process_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_penalty_reaches_dropped_layers_under_ddp_as_without_it(one_process_group, one_thread):
    plain, fraction = run(lambda m: m)
    assert fraction < 1.0  # some layers were dropped: their coefficients were outside the graph
    wrapped, _ = run(lambda m: DDP(m, find_unused_parameters=True))
    torch.testing.assert_close(wrapped, plain, rtol=0, atol=1e-6)

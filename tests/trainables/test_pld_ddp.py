"""PLD under DistributedDataParallel: 2 gloo processes on CPU must drop the same layers every step.

The ranks get different data and deliberately different global RNG states; the gates come from
(seed, step, micro-batch) only. DDP runs with find_unused_parameters=True and gradient accumulation
(no_sync on the first micro-batch), and the result is compared with the same training done in one
process on both ranks' batches.
"""

import contextlib
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

WORLD, STEPS, ACCUM, LAYERS, START = 2, 4, 2, 4, 20_000


def _model():
    from tickettune.trainables.model.build import ScratchConfig, scratch_model

    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=LAYERS, heads=2, hidden=32, ffn=64, dropout=0.0, max_positions=64))
    return model


def _batch(rank, step, micro):
    g = torch.Generator().manual_seed(1000 * rank + 10 * step + micro)
    ids = torch.randint(1000, 5000, (2, 16), generator=g)
    labels = torch.where(torch.rand(2, 16, generator=g) < 0.3, ids, torch.full_like(ids, -100))
    labels[:, 1] = ids[:, 1]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _worker(rank, port, out_dir):
    from tickettune.trainables.model.encoder import encoder_of
    from tickettune.trainables.pld import PLDConfig, attach

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        torch.manual_seed(100 + rank)  # different global RNG per rank: the gates must not care
        pld = attach(model, PLDConfig(seed=0))
        ddp = DDP(model, find_unused_parameters=True)
        opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
        layers = encoder_of(model).layer
        gates, grad_none = [], []
        for step in range(STEPS):
            pld.set_step(START + step)
            for micro in range(ACCUM):
                sync = micro == ACCUM - 1
                with contextlib.nullcontext() if sync else ddp.no_sync():
                    (ddp(**_batch(rank, step, micro)).loss / ACCUM).backward()
                gates.append([k for k, _ in pld.last_gates])
            grad_none.append([all(p.grad is None for p in l.parameters()) for l in layers])
            opt.step()
            opt.zero_grad(set_to_none=True)
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        torch.save({"gates": gates, "grad_none": grad_none, "params": params}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _reference():
    """The same updates in one process: both ranks' micro-batches, gradients averaged over ranks."""
    from tickettune.trainables.pld import PLDConfig, attach

    model = _model()
    pld = attach(model, PLDConfig(seed=0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(STEPS):
        for rank in range(WORLD):
            pld.set_step(START + step)  # every rank starts the step at micro-batch 0
            for micro in range(ACCUM):
                (model(**_batch(rank, step, micro)).loss / (ACCUM * WORLD)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ranks_drop_the_same_layers_and_stay_in_sync(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in range(WORLD))
    assert r0["gates"] == r1["gates"]
    assert len(r0["gates"]) == STEPS * ACCUM
    assert any(not all(g) for g in r0["gates"]), "no layer was dropped: the test would prove nothing"
    # a layer skipped in every micro-batch of a step has no gradient on either rank after the allreduce
    for s in range(STEPS):
        unused = [not any(g[l] for g in r0["gates"][s * ACCUM : (s + 1) * ACCUM]) for l in range(LAYERS)]
        assert r0["grad_none"][s] == r1["grad_none"][s] == unused
    assert torch.equal(r0["params"], r1["params"])
    torch.manual_seed(0)
    torch.testing.assert_close(r0["params"], _reference(), atol=2e-5, rtol=1e-4)

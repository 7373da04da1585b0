"""Where a worker computes (trainables/device.py), without a GPU: the CUDA index a worker takes from Ray's
ids and CUDA_VISIBLE_DEVICES, the loud CPU fallback of a worker given a GPU torch cannot see, batches
moved whole, and the loaders pinning memory only where CUDA is."""

import logging

import pytest
import torch

from tickettune.trainables.training import device as dev
from tickettune.trainables.training.device import DeviceLoader, OneDevice, cuda_index, place, to_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the behaviour without CUDA")


@pytest.mark.parametrize(
    "ids,visible,index",
    [
        ([0], "0", 0),  # a Tune trial: Ray shows it its one GPU
        ([5], "3,5", 1),  # Ray Train workers share the node's GPUs: the second visible one is ours
        (["5"], " 3 , 5 ", 1),
        ([2], None, 2),  # nothing hidden: the raw id
        ([], "0,1", 0),
        (None, None, 0),
        ([7], "0,1", 0),  # an id that is not listed (set by hand): the first visible one
    ],
)
def test_cuda_index_from_ray_ids_and_visible_devices(ids, visible, index):
    assert cuda_index(ids, visible) == index


@no_cuda
def test_a_worker_given_a_gpu_without_cuda_runs_on_the_cpu_and_says_so(monkeypatch, caplog):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with caplog.at_level(logging.WARNING, logger="tickettune"):
        p = place(True, gpu_ids=[1])
    assert p.device == torch.device("cpu") and p.gpu_requested and p.fallback
    assert "given GPU(s) [1]" in p.reason and "CUDA_VISIBLE_DEVICES='1'" in p.reason and "sees no CUDA" in p.reason
    assert any("running on the CPU" in r.getMessage() for r in caplog.records)
    assert p.describe()["cpu_fallback"] is True


@no_cuda
def test_no_gpu_asked_or_auto_without_cuda_is_the_cpu_quietly(caplog):
    with caplog.at_level(logging.WARNING, logger="tickettune"):
        for choice in (False, "auto"):
            p = place(choice)
            assert p.device.type == "cpu" and not p.fallback
    assert not caplog.records


def test_a_visible_gpu_becomes_the_current_device_with_tf32(monkeypatch):
    """The CUDA branch with torch.cuda faked: the worker's device is the position of its id."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake GPU")
    monkeypatch.setattr(dev, "enable_tf32", lambda: calls.append(("tf32",)))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    p = place(True, gpu_ids=[6])
    assert p.device == torch.device("cuda", 1) and not p.fallback and "Fake GPU" in p.reason
    assert calls == [("set_device", torch.device("cuda", 1)), ("tf32",)]
    with pytest.raises(RuntimeError, match="torch sees 2 device"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
        place(True, gpu_ids=[2])


def test_batches_move_whole_and_loaders_keep_what_the_flow_needs():
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "meta": "x", "pair": (torch.zeros(1), 3)}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["meta"] == "x" and moved["pair"][1] == 3 and torch.equal(moved["input_ids"], batch["input_ids"])
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(list(range(6)), batch_size=2, shuffle=True, generator=g)
    wrapped = DeviceLoader(loader, torch.device("cpu"))
    assert len(wrapped) == 3 and wrapped.generator is g and wrapped.dataset is loader.dataset
    assert sorted(int(x) for b in wrapped for x in b) == list(range(6))


@no_cuda
def test_one_device_on_the_cpu_leaves_model_and_loader_alone():
    one = OneDevice(place(False))
    model, loader = torch.nn.Linear(2, 2), [1, 2]
    assert one.prepare_model(model) is model and one.prepare_loader(loader) is loader


@no_cuda
def test_local_reporter_device_choice(caplog):
    from tickettune.trainables.reporter import LocalReporter

    assert LocalReporter(verbose=False).device.type == "cpu"
    with caplog.at_level(logging.WARNING, logger="tickettune"):
        forced = LocalReporter(verbose=False, device="cuda")
    assert forced.placement.fallback and any("sees no CUDA" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="device='gpu0'"):
        LocalReporter(device="gpu0")


@no_cuda
def test_loaders_pin_memory_only_with_cuda(minilm_tokenizer, shared_data):
    from tickettune.trainables.tasks.glue import glue_loader

    loader = glue_loader("sst2", "dev", minilm_tokenizer, batch_size=4, max_samples=8, root=shared_data)
    assert loader.pin_memory is False  # nothing to copy to: pinning would only cost

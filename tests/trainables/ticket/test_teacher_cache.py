"""The teacher-logits cache (ticket/teacher_cache.py): it round-trips, row i is the teacher's output for train row i
(QA: window i, its own tokens), it is refused for other data, tokenizer, max_length or task with the differences
named, and it is never half-written nor replaced."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from tickettune.trainables.model.build import model_path, scratch_from_dict, scratch_model
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.ticket import teacher_cache as tc
from tickettune.trainables.ticket.distill import wanted

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _model(tiny_scratch, head="classification", num_labels=2):
    torch.manual_seed(0)
    model, tok = scratch_model(scratch_from_dict(tiny_scratch), head=head, num_labels=num_labels)
    return model.eval(), tok


def _alone(model, loader, i: int):
    """Row i's output, the row in a batch of its own (no padding)."""
    with torch.no_grad():
        return model(**loader.collate_fn([loader.dataset[i]]))


@pytest.fixture
def sst2(tiny_scratch, one_thread):
    model, tok = _model(tiny_scratch)
    args = DataArgs(max_length=32, batch_size=16, max_train_samples=64, seed=0, group_by_length=True)
    task = get_task("sst2")
    return task, model, tok, args, task.train_loader(tok, args)


def test_round_trip_row_by_row(sst2, tmp_path):
    task, model, tok, args, loader = sst2
    made_for = wanted(task, tok, loader, args)
    tc.write(tmp_path / "cache", model, loader, made_for)
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]  # no temporary folder left behind
    back = tc.load(tmp_path / "cache", made_for)
    assert back.kind == "classification" and back.tables["logits"].shape == (64, 2)
    for i in (0, 17, 63):
        assert torch.allclose(back.tables["logits"][i], _alone(model, loader, i).logits[0], atol=1e-5)
    info = tc.read_info(tmp_path / "cache")
    assert info["made_for"]["rows"] == 64 and info["made_for"]["task"]["name"] == "sst2"


def test_refused_for_other_data_tokenizer_or_task(sst2, tmp_path):
    task, model, tok, args, loader = sst2
    tc.write(tmp_path / "cache", model, loader, wanted(task, tok, loader, args))

    def refusal(task, tok, args) -> str:
        with pytest.raises(tc.TeacherCacheMismatch) as e:
            tc.load(tmp_path / "cache", wanted(task, tok, task.train_loader(tok, args), args))
        return str(e.value)

    other_length = refusal(task, tok, replace(args, max_length=16))
    assert "max_length: cache 32, this run 16" in other_length and "data_sha" in other_length
    other_rows = refusal(task, tok, replace(args, seed=1))
    assert "subset" in other_rows and "data_sha" in other_rows and "tokenizer" not in other_rows
    assert "rows: cache 64, this run 32" in refusal(task, tok, replace(args, max_train_samples=32))
    other_tok = AutoTokenizer.from_pretrained(model_path("minilm-l6"))
    other_tok.add_tokens(["zzqqx"])
    assert "tokenizer: cache" in refusal(task, other_tok, args)
    other_task = refusal(get_task("cola"), tok, args)
    assert "task: cache" in other_task and '"name": "cola"' in other_task
    # the seed alone does not matter where it picks no subset: the whole split is the same rows
    whole = replace(args, max_train_samples=None, root=str(FIXTURES))
    loader = task.train_loader(tok, whole)
    tc.write(tmp_path / "whole", model, loader, wanted(task, tok, loader, whole))
    reseeded = replace(whole, seed=7)
    tc.load(tmp_path / "whole", wanted(task, tok, task.train_loader(tok, reseeded), reseeded))


def test_never_half_written_never_replaced(sst2, tmp_path, monkeypatch):
    task, model, tok, args, loader = sst2
    made_for = wanted(task, tok, loader, args)

    def cut(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tc, "save_file", cut)
    with pytest.raises(OSError, match="disk full"):
        tc.write(tmp_path / "cache", model, loader, made_for)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    tc.write(tmp_path / "cache", model, loader, made_for)
    with pytest.raises(FileExistsError):
        tc.write(tmp_path / "cache", model, loader, made_for)
    info = tmp_path / "cache" / tc.INFO
    info.write_text(info.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(ValueError, match="version 99"):
        tc.load(tmp_path / "cache", made_for)
    with pytest.raises(FileNotFoundError, match="not a teacher cache"):
        tc.load(tmp_path, made_for)


def test_qa_windows_keep_their_own_tokens(tiny_scratch, tmp_path, one_thread):
    model, tok = _model(tiny_scratch, head="qa")
    task = get_task("squad")
    args = DataArgs(root=str(FIXTURES), max_length=48, batch_size=8, seed=0)
    loader = task.train_loader(tok, args)
    made_for = wanted(task, tok, loader, args)
    tc.write(tmp_path / "qa", model, loader, made_for)
    back = tc.load(tmp_path / "qa", made_for)
    lengths = (back.offsets[1:] - back.offsets[:-1]).tolist()
    assert back.kind == "qa" and lengths == [len(ids) for ids in loader.dataset["input_ids"]]
    assert back.rows == len(loader.dataset) > made_for["rows"] - 1
    for i in (0, back.rows - 1):
        alone = _alone(model, loader, i)
        a, b = back.offsets[i], back.offsets[i + 1]
        assert torch.allclose(back.tables["start_logits"][a:b], alone.start_logits[0], atol=1e-5)
        assert torch.allclose(back.tables["end_logits"][a:b], alone.end_logits[0], atol=1e-5)

"""The distillation term (training/distill_loss.py): zero when student and cached teacher agree, Hinton's KL·T²
otherwise, QA windows compared over their own tokens only, and the loop adding it per micro-batch."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from tickettune.trainables.training.callbacks import EXAMPLE_INDEX, split_rows
from tickettune.trainables.training.distill_loss import DistillCallback, TeacherLogits, distill_loss, kl_term


def _classification(rows=6, labels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TeacherLogits("classification", {"logits": torch.randn(rows, labels, generator=g)})


def test_zero_when_the_student_is_the_teacher():
    teacher = _classification()
    index = torch.tensor([4, 0, 2])
    out = SimpleNamespace(logits=teacher.tables["logits"][index].clone().requires_grad_())
    term = DistillCallback(teacher, weight=0.5, temperature=3.0).batch_loss(out, {EXAMPLE_INDEX: index})
    assert term.item() == pytest.approx(0.0, abs=1e-6)
    term.backward()
    assert torch.allclose(out.logits.grad, torch.zeros_like(out.logits.grad), atol=1e-6)


def test_kl_times_t_squared_otherwise():
    teacher = _classification()
    index = torch.tensor([1, 5])
    student = torch.randn(2, 3)
    t = 2.0
    soft = F.log_softmax(teacher.tables["logits"][index] / t, -1)
    expected = F.kl_div(F.log_softmax(student / t, -1), soft, log_target=True, reduction="batchmean") * t * t
    got = distill_loss(SimpleNamespace(logits=student), teacher.gather(index), "classification", t)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5) and got.item() > 0


def test_regression_is_mse():
    teacher = TeacherLogits("regression", {"logits": torch.tensor([[1.0], [2.0], [3.5]])})
    index = torch.tensor([2, 0])
    same = distill_loss(SimpleNamespace(logits=torch.tensor([[3.5], [1.0]])), teacher.gather(index), "regression", 2.0)
    off = distill_loss(SimpleNamespace(logits=torch.tensor([[3.0], [1.0]])), teacher.gather(index), "regression", 2.0)
    assert same.item() == 0.0 and off.item() == pytest.approx(0.125)


def _qa(lengths=(5, 3, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(lengths)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    total = int(sizes.sum())
    tables = {"start_logits": torch.randn(total, generator=g), "end_logits": torch.randn(total, generator=g)}
    return TeacherLogits("qa", tables, offsets)


def test_qa_windows_are_compared_over_their_own_tokens():
    teacher = _qa()
    index, width = torch.tensor([2, 1]), 9  # a batch padded to 9 tokens
    rows = teacher.gather(index, width)
    assert rows["mask"].sum(-1).tolist() == [7, 3]
    assert torch.equal(rows["start_logits"][1, :3], teacher.tables["start_logits"][5:8])
    # the student agrees on every real token and says anything at all on the padding
    start = rows["start_logits"].masked_fill(~rows["mask"], 40.0).requires_grad_()
    end = rows["end_logits"].masked_fill(~rows["mask"], -7.0).requires_grad_()
    term = distill_loss(SimpleNamespace(start_logits=start, end_logits=end), rows, "qa", 2.0)
    assert term.item() == pytest.approx(0.0, abs=1e-6)
    (term + 1.0 * distill_loss(SimpleNamespace(start_logits=start * 2, end_logits=end), rows, "qa", 2.0)).backward()
    assert torch.isfinite(start.grad).all() and start.grad[~rows["mask"]].abs().max() == 0
    assert distill_loss(SimpleNamespace(start_logits=start * 2, end_logits=end), rows, "qa", 2.0).item() > 0


def test_kl_masks_both_sides():
    s = torch.tensor([[1.0, 2.0, 50.0]])
    t = torch.tensor([[1.0, 2.0, -50.0]])
    assert kl_term(s, t, 1.0, torch.tensor([[True, True, False]])).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_term(s, t, 1.0).item() > 1.0


def test_a_batch_without_its_rows_is_refused():
    with pytest.raises(ValueError, match=EXAMPLE_INDEX):
        DistillCallback(_classification(), 1.0, 2.0).batch_loss(SimpleNamespace(logits=torch.zeros(2, 3)), {})
    with pytest.raises(ValueError, match="must be > 0"):
        DistillCallback(_classification(), 0.0, 2.0)


def test_the_model_never_sees_the_row_index():
    inputs, rows = split_rows({"input_ids": 1, "labels": 2, EXAMPLE_INDEX: 3})
    assert inputs == {"input_ids": 1, "labels": 2} and rows == {EXAMPLE_INDEX: 3}

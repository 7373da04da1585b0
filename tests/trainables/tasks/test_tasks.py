"""The task registry and every GLUE task on fixtures in GLUE's exact TSV layouts (tests/fixtures/glue)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from tickettune.trainables import tasks
from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.tasks import DataArgs, get_task
from tickettune.trainables.tasks import glue as G

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"  # tests/fixtures
TINY = {"layers": 2, "heads": 2, "hidden": 32, "ffn": 64, "pre_ln": True}
FLOW = dict(
    scratch=TINY,
    data_root=str(FIXTURES),
    max_length=32,
    batch_size=4,
    lr=1e-3,
    coef_lr=5e-2,
    search_max_steps=4,
    ticket_steps=2,
    mask_interval=2,
    window=2,
    eps=1.0,
    min_ffn=4,
    precision="fp32",
)


@pytest.fixture(scope="module", autouse=True)
def cold_datasets_cache(tmp_path_factory):
    import datasets.config

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-datasets-cache"))
        yield


def test_registry_knows_every_glue_task_and_wikitext():
    assert set(tasks.names()) == {
        "sst2",
        "cola",
        "stsb",
        "mrpc",
        "qqp",
        "mnli",
        "qnli",
        "rte",
        "wnli",
        "wikitext",
        "squad",
        "squad_v2",
    }
    assert get_task("MNLI").name == get_task("mnli").name == "mnli"
    assert get_task("SST-2").main_metric == "accuracy"
    assert (get_task("mrpc").main_metric, get_task("qqp").main_metric) == ("f1", "f1")
    assert get_task("mnli").main_metric == "accuracy_matched" and get_task("mnli").num_labels == 3
    assert get_task("stsb").head == "regression" and get_task("wikitext").head == "mlm"
    assert get_task("wikitext").mode == "min" and get_task("rte").mode == "max"
    with pytest.raises(ValueError, match="unknown task 'boolq'"):
        get_task("boolq")
    assert tasks.task_problems("boolq") and tasks.task_problems("qnli") == []


def test_a_new_task_enters_through_register_alone():
    class Echo(G.GlueTask):
        pass

    tasks.register("echo-task", lambda: Echo(G.TASKS["rte"]))
    try:
        assert isinstance(get_task("echo_task"), Echo)
        assert FlowConfig(task="echo-task").metric_mode == "max"
    finally:
        tasks._FACTORIES.pop("echotask")
        tasks._NAMES.pop("echotask")


@pytest.mark.parametrize("spec", G.SPECS, ids=lambda s: s.name)
def test_every_glue_task_reads_its_fixture_layout(spec):
    for split in ("train", *spec.dev_splits):
        ds = G.load_glue(spec.name, split, root=FIXTURES)
        assert len(ds) == 12
        assert ds.column_names == [*spec.text_columns, "label", "idx"]
        assert ds.features == spec.features
        assert all(isinstance(t, str) and t for c in spec.text_columns for t in ds[c])


def test_file_quirks_bom_renamed_columns_string_labels_quotes():
    mrpc = G.load_glue("mrpc", "train", root=FIXTURES)  # BOM before "Quality"; "#1 String" -> sentence1
    assert mrpc[0] == {
        "sentence1": "The cat sat on the mat.",
        "sentence2": "A cat was sitting on a mat.",
        "label": 1,
        "idx": 0,
    }
    assert mrpc[1]["sentence1"] == 'He said "no" to the offer.'  # quotes are text
    rte = G.load_glue("rte", "train", root=FIXTURES)  # "entailment" / "not_entailment" -> the hub's ids
    assert rte["label"][:3] == [0, 0, 1]
    wnli = G.load_glue("wnli", "train", root=FIXTURES)  # 0/1 in the file, names ordered as on the hub
    assert wnli["label"][:3] == [1, 1, 0] and wnli.features["label"].names == ["not_entailment", "entailment"]
    mm = G.load_glue("mnli", "dev_mismatched", root=FIXTURES)  # 16 columns, label1..label5 before gold_label
    assert mm.column_names == ["premise", "hypothesis", "label", "idx"] and mm["label"][0] == 1
    assert len(G.load_glue("mnli", "validation_mismatched", root=FIXTURES)) == 12  # the hub's split name
    assert (
        G.load_glue("mnli", "dev", root=FIXTURES)["premise"]
        == G.load_glue("mnli", "dev_matched", root=FIXTURES)["premise"]
    )
    with pytest.raises(ValueError, match="unknown split 'dev_x' of mnli"):
        G.load_glue("mnli", "dev_x", root=FIXTURES)


def _copy(tmp_path: Path, folder: str) -> Path:
    shutil.copytree(FIXTURES / "glue" / folder, tmp_path / "glue" / folder)
    return tmp_path / "glue" / folder


def _edit(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_bytes().split(b"\n")
    assert old.encode() in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old.encode(), new.encode())
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    "folder, task, split, line, old, new, message",
    [
        ("RTE", "rte", "train", 4, "not_entailment", "contradiction", "label 'contradiction' is not one of"),
        ("MRPC", "mrpc", "dev", 7, "\t", "\t\t", "9 tab-separated columns, expected 5"),
        (
            "MNLI",
            "mnli",
            "dev_mismatched",
            9,
            "contradiction\tcontradiction\tcontradiction\tcontradiction",
            "contradiction\tcontradiction",
            "14 tab-separated columns, expected 16",
        ),
        ("MNLI", "mnli", "dev_matched", 13, "contradiction", "unknown", "label 'unknown'"),
        ("MNLI", "mnli", "train", 1, "gold_label", "gold", "lacks column(s) ['gold_label']"),
        ("QQP", "qqp", "train", 4, "\t0", "\t2", "label '2' is not a class index in 0..1"),
        ("WNLI", "wnli", "dev", 2, "\t1", "\tyes", "label 'yes'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, folder, task, split, line, old, new, message):
    path = _copy(tmp_path, folder) / f"{split}.tsv"
    _edit(path, line, old, new)
    with pytest.raises(ValueError) as err:
        get_task(task).check(DataArgs(root=str(tmp_path)))
    assert f"{path}, line {line}:" in str(err.value) and message in str(err.value)


class Fixed(nn.Module):
    """Emits given logits per row index (batches carry input_ids only; a stand-in for a model)."""

    def __init__(self, logits: np.ndarray):
        super().__init__()
        self.logits, self.w = torch.tensor(logits, dtype=torch.float32), nn.Parameter(torch.zeros(1))
        self.seen = 0

    def forward(self, input_ids, **_):
        n = len(input_ids)
        out = self.logits[self.seen : self.seen + n]
        self.seen = (self.seen + n) % len(self.logits)
        return SimpleNamespace(logits=out)


def test_mnli_reports_matched_and_mismatched(minilm_tokenizer):
    task = get_task("mnli")
    data = task.eval_data(minilm_tokenizer, DataArgs(root=str(FIXTURES), eval_batch_size=5))
    assert list(data) == ["dev_matched", "dev_mismatched"]
    gold = {s: np.concatenate([b["labels"].numpy() for b in loader]) for s, loader in data.items()}  # rows as fed
    assert sorted(gold["dev_matched"]) == sorted(G.load_glue("mnli", "dev_matched", root=FIXTURES)["label"])
    # right on every matched row; on mismatched, right on the first 6 fed only
    logits = np.concatenate(
        [
            np.eye(3)[gold["dev_matched"]],
            np.eye(3)[np.r_[gold["dev_mismatched"][:6], (gold["dev_mismatched"][6:] + 1) % 3]],
        ]
    )
    metrics = task.evaluate(Fixed(logits), data, precision="fp32")
    losses = {k: metrics.pop(k) for k in ("loss_matched", "loss_mismatched")}
    assert metrics == {"accuracy_matched": 1.0, "accuracy_mismatched": 0.5}
    assert task.loss_key == "loss_matched" and losses["loss_matched"] < losses["loss_mismatched"]


@pytest.mark.parametrize("task", ["mnli", "mrpc", "stsb"])
def test_flow_runs_on_fixture_tasks_and_the_ticket_records_the_task(tmp_path, task, one_thread):
    cfg = FlowConfig(**FLOW, task=task, unconverged="ticket")
    result = run_flow(cfg, LocalReporter(verbose=False), ticket_dir=str(tmp_path / "t"))
    assert result.metric_name == get_task(task).main_metric and np.isfinite(result.val_metric)
    info = json.loads((tmp_path / "t" / "ticket.json").read_text())
    assert info["task"]["name"] == task and info["num_labels"] == get_task(task).num_labels
    assert info["head"] == get_task(task).head


def test_hub_names_map_our_splits(monkeypatch):
    from datasets import Dataset

    from tickettune.trainables.tasks import squad

    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        return Dataset.from_dict({"premise": ["a"], "hypothesis": ["b"], "label": [0], "idx": [0], "x": [1]})

    monkeypatch.setattr(G, "load_dataset", fake)
    assert G.load_glue("mnli", "dev_mismatched", source="hub").column_names == ["premise", "hypothesis", "label", "idx"]
    G.load_glue("mnli", "train", source="hub")
    assert calls == [
        (("nyu-mll/glue", "mnli"), {"split": "validation_mismatched"}),
        (("nyu-mll/glue", "mnli"), {"split": "train"}),
    ]
    monkeypatch.setattr(squad, "load_dataset", fake)
    squad.load_squad(squad.SPECS[1], "dev", source="hub")
    assert calls[-1] == (("rajpurkar/squad_v2",), {"split": "validation"})

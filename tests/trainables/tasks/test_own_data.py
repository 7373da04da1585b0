"""The user's own data: labelled tables (CSV, TSV, JSON lines, parquet) and MLM text, through the task
registry, the flow, the CLI and a search config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickettune.searcher.cli import main
from tickettune.spaces import load_spec
from tickettune.trainables.config import FlowConfig
from tickettune.trainables.flow import run_flow
from tickettune.trainables.model.build import ScratchConfig, scratch_model
from tickettune.trainables.reporter import LocalReporter
from tickettune.trainables.tasks import DataArgs, get_task

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"  # tests/fixtures
TINY = {"layers": 2, "heads": 2, "hidden": 32, "ffn": 64, "pre_ln": True}
FLOW = dict(
    scratch=TINY,
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
    unconverged="ticket",
)
SPACE = {"ticket_lr": {"low": 1e-4, "high": 1e-3}}
WORDS = ["good film", "bad film", "great plot", "awful plot", "fine acting", "poor acting"]


def table(n: int, labels: list) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "review": [f"{WORDS[i % 6]} number {i}" for i in range(n)],
            "title": [f'title "{i}"' for i in range(n)],
            "stars": [labels[i % len(labels)] for i in range(n)],
        }
    )


def write(df: pd.DataFrame, path: Path) -> str:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    return str(path)


def own(tmp_path: Path, labels: list, ext: str = ".csv", dev_labels: list | None = None, **kw) -> dict:
    return {
        "train_file": write(table(12, labels), tmp_path / f"train{ext}"),
        "validation_file": write(table(6, dev_labels or labels), tmp_path / f"dev{ext}"),
        "text_columns": ["review", "title"],
        "label_column": "stars",
        **kw,
    }


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_string_labels_in_every_format(tmp_path, ext, minilm_tokenizer):
    task = get_task(own(tmp_path, ["pos", "neg", "mixed"], ext))
    task.check(DataArgs())
    assert (task.head, task.num_labels, task.labels) == ("classification", 3, ["mixed", "neg", "pos"])
    assert task.main_metric == "accuracy" and task.info()["labels"] == ["mixed", "neg", "pos"]
    batch = next(iter(task.train_loader(minilm_tokenizer, DataArgs(batch_size=12))))
    assert sorted(batch["labels"].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert (batch["token_type_ids"] == 1).any()  # a (review, title) pair


def test_int_float_and_forced_regression(tmp_path):
    for name in "abc":
        (tmp_path / name).mkdir()
    ints = get_task(own(tmp_path / "a", [5, 1, 3]))
    assert ints.head == "classification" and ints.labels == ["1", "3", "5"]  # numeric order
    floats = get_task(own(tmp_path / "b", [0.5, 2.25, 4.0], ".jsonl"))
    assert (floats.head, floats.num_labels, floats.main_metric) == ("regression", 1, "spearmanr")
    forced = get_task(own(tmp_path / "c", [1, 2, 3], regression=True))
    assert forced.head == "regression"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d, p: {**d, "train_file": str(p / "nope.csv")}, "train file '{p}/nope.csv' not found"),
        (
            lambda d, p: {**d, "label_column": "score"},
            "{p}/train.csv: no label column 'score'; it has ['review', 'title', 'stars']",
        ),
        (lambda d, p: {**d, "text_columns": ["review", "body"]}, "{p}/train.csv: no text column 'body'"),
        (
            lambda d, p: {**d, "validation_file": write(table(6, ["pos", "neg", "meh"]), p / "bad.csv")},
            "{p}/bad.csv, line 4: label 'meh' in column 'stars' is not one of train's labels ['neg', 'pos']",
        ),
        (lambda d, p: {**d, "train_file": str(p / "empty.csv")}, "{p}/empty.csv: file is empty"),
        (
            lambda d, p: {**d, "train_file": write(table(3, ["pos", "", "neg"]), p / "blank.csv")},
            "{p}/blank.csv, line 3: column 'stars' has no label",
        ),
        (
            lambda d, p: {**d, "train_file": write(table(3, ["pos", None, "neg"]), p / "blank.jsonl")},
            "{p}/blank.jsonl, line 2: column 'stars' has no label",
        ),
        (lambda d, p: {**d, "train_file": write(table(3, ["pos"]), p / "one.csv")}, "a single label ['pos']"),
    ],
)
def test_errors_name_file_column_and_line(tmp_path, change, message):
    (tmp_path / "empty.csv").write_text("")
    d = change(own(tmp_path, ["pos", "neg"]), tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        get_task(d).check(DataArgs())
    assert message.format(p=tmp_path) in str(err.value)


def test_flow_config_reports_missing_files_and_bad_keys_without_reading(tmp_path):
    with pytest.raises(ValueError, match="validation_file='.*missing.csv' not found"):
        FlowConfig(
            task={
                "train_file": write(table(4, [0, 1]), tmp_path / "t.csv"),
                "validation_file": str(tmp_path / "missing.csv"),
                "text_columns": ["review"],
            }
        )
    with pytest.raises(ValueError, match=r"unknown own-data task keys \['labels'\]"):
        FlowConfig(task={"train_file": "a.csv", "validation_file": "b.csv", "labels": "x"})


def test_flow_on_own_labels_stores_the_label_set_in_the_ticket(tmp_path):
    task = own(tmp_path, ["pos", "neg", "mixed"], ".jsonl")
    result = run_flow(FlowConfig(**FLOW, task=task), LocalReporter(verbose=False), ticket_dir=str(tmp_path / "t"))
    assert result.metric_name == "accuracy" and 0 <= result.val_metric <= 1
    info = json.loads((tmp_path / "t" / "ticket.json").read_text())
    assert info["task"]["labels"] == ["mixed", "neg", "pos"] and info["num_labels"] == 3


def text_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        lines = [f"the {WORDS[(i + j) % 6]} was shown on day {j} of the festival." for j in range(40)]
        (folder / ("sub" if i else "") / f"part{i}.txt").write_text("\n\n".join(lines) + "\n")
    (folder / "notes.md").write_text("not text for training\n")
    return folder


@pytest.mark.parametrize("line_by_line", [False, True])
def test_mlm_on_a_folder_of_text(tmp_path, line_by_line, minilm_tokenizer):
    task = get_task({"text_files": [str(text_folder(tmp_path))], "line_by_line": line_by_line})
    assert (task.head, task.mode, task.main_metric) == ("mlm", "min", "perplexity")
    args = DataArgs(max_length=16, batch_size=8)
    train, dev = task.train_loader(minilm_tokenizer, args), task.eval_data(minilm_tokenizer, args)
    assert len(dev.dataset) >= 1 and len(train.dataset) > len(dev.dataset)
    batch = next(iter(train))
    assert batch["input_ids"].shape[1] <= 16 and (batch["labels"] != -100).any()
    if line_by_line:
        assert len(train.dataset) + len(dev.dataset) == 120  # one sequence per non-blank line, 3 files
    else:
        assert all(len(x) == 16 for x in train.dataset["input_ids"])


def test_mlm_on_a_hub_dataset_text_column(monkeypatch, minilm_tokenizer):
    from datasets import Dataset

    from tickettune.trainables.tasks import mlm

    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return Dataset.from_dict(
            {"body": [f"line {i} of the corpus, long enough to cut." for i in range(40)] + [""], "id": list(range(41))}
        )

    monkeypatch.setattr(mlm, "load_dataset", fake_load_dataset)
    task = get_task({"hub": "someone/corpus", "text_column": "body", "line_by_line": True})
    train = task.train_loader(minilm_tokenizer, DataArgs(max_length=16, batch_size=4))
    assert calls[0] == (("someone/corpus", None), {"split": "train"})
    assert len(train.dataset) + len(task.eval_data(minilm_tokenizer, DataArgs(max_length=16)).dataset) == 40
    with pytest.raises(ValueError, match="has no column 'text'"):
        get_task({"hub": "someone/corpus"}).train_loader(minilm_tokenizer, DataArgs(max_length=16))


def test_mlm_text_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .txt file"):
        get_task({"text_files": [str(tmp_path / "empty")]}).check(DataArgs())
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="blank.txt: file is empty"):
        get_task({"text_files": [str(tmp_path / "blank.txt")]}).check(DataArgs())
    assert FlowConfig(task={"text_files": [str(text_folder(tmp_path))]}).metric_mode == "min"
    with pytest.raises(ValueError, match="text file '.*gone.txt' not found"):
        FlowConfig(task={"text_files": [str(tmp_path / "gone.txt")]})


def test_streamed_text_is_cut_as_read_and_needs_held_out_text(tmp_path, minilm_tokenizer):
    folder = text_folder(tmp_path)
    with pytest.raises(ValueError, match="streaming needs held-out text"):
        FlowConfig(task={"text_files": [str(folder)], "streaming": True})
    task = get_task(
        {
            "text_files": [str(folder / "part0.txt")],
            "validation_files": [str(folder / "sub")],
            "streaming": True,
            "line_by_line": True,
        }
    )
    loader = task.train_loader(minilm_tokenizer, DataArgs(max_length=16, batch_size=8, max_train_samples=30))
    batches = list(loader)
    assert sum(len(b["input_ids"]) for b in batches) == 30 and task.size(loader) == -1
    assert len(task.eval_data(minilm_tokenizer, DataArgs(max_length=16)).dataset) == 80  # the 2 files in sub/
    first = [b["input_ids"][0].tolist() for b in batches[:1]]
    again = next(iter(task.train_loader(minilm_tokenizer, DataArgs(max_length=16, batch_size=8))))
    assert again["input_ids"][0].tolist() == first[0]  # seeded shuffle buffer
    from tickettune.trainables.training.loop import TrainConfig, train

    with pytest.raises(ValueError, match="set max_steps instead of epochs"):
        train(None, loader, TrainConfig(epochs=1, progress=False))


def test_flow_mlm_on_own_streamed_text(tmp_path):
    folder = text_folder(tmp_path)
    task = {"text_files": [str(folder / "sub")], "validation_files": [str(folder / "part0.txt")], "streaming": True}
    result = run_flow(FlowConfig(**FLOW, task=task), LocalReporter(verbose=False))
    assert result.metric_name == "perplexity" and np.isfinite(result.val_metric) and result.val_metric > 1


def test_search_config_with_own_data(tmp_path):
    task = own(tmp_path, [0.5, 2.0, 3.5])
    spec = load_spec({"name": "own", "fixed": {**FLOW, "task": task}, "space": SPACE, "search": {"num_samples": 1}})
    assert spec.search.mode == "max" and FlowConfig(**{**spec.fixed, "ticket_lr": 5e-4}).task_obj.head == "regression"
    text = {"text_files": [str(text_folder(tmp_path))]}
    spec = load_spec({"name": "own", "fixed": {**FLOW, "task": text}, "space": SPACE, "search": {"num_samples": 1}})
    assert spec.search.mode == "min"


def test_search_config_makes_own_data_paths_absolute(tmp_path, monkeypatch):
    own(tmp_path, ["pos", "neg"])
    monkeypatch.chdir(tmp_path)
    task = {
        "train_file": "train.csv",
        "validation_file": "dev.csv",
        "text_columns": ["review"],
        "label_column": "stars",
    }
    spec = load_spec({"name": "own", "fixed": {**FLOW, "task": task}, "space": SPACE, "search": {"num_samples": 1}})
    assert spec.fixed["task"]["train_file"] == str(tmp_path / "train.csv")
    bad = {**task, "validation_file": "missing.csv"}
    with pytest.raises(ValueError, match="validation_file='.*missing.csv' not found"):
        load_spec({"name": "own", "fixed": {**FLOW, "task": bad}, "space": SPACE, "search": {"num_samples": 1}})


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny") / "model"
    model, tok = scratch_model(ScratchConfig(**TINY), head="classification")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_cli_finetune_on_own_csv(tmp_path, tiny_model, capsys):
    d = own(tmp_path, ["pos", "neg"])
    out = tmp_path / "m.json"
    rc = main(
        [
            "finetune",
            "--model",
            tiny_model,
            "--train-file",
            d["train_file"],
            "--validation-file",
            d["validation_file"],
            "--text-columns",
            "review,title",
            "--label-column",
            "stars",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "16",
            "--precision",
            "fp32",
            "--json",
            str(out),
        ]
    )
    assert rc == 0 and "dev accuracy=" in capsys.readouterr().out
    assert json.loads(out.read_text())["task"]["labels"] == ["neg", "pos"]


def test_cli_finetune_glue_fixture_task(tmp_path, capsys):
    fixtures = str(FIXTURES)
    model, tok = scratch_model(ScratchConfig(**TINY), head="classification", num_labels=3)
    model.save_pretrained(tmp_path / "m3")
    tok.save_pretrained(tmp_path / "m3")
    rc = main(
        [
            "finetune",
            "--model",
            str(tmp_path / "m3"),
            "--task",
            "mnli",
            "--data-root",
            fixtures,
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "16",
            "--precision",
            "fp32",
        ]
    )
    assert rc == 0 and "dev accuracy_matched=" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["finetune", "--train-file", "{p}/nope.csv", "--validation-file", "{p}/nope.csv"],
            "task 'own': train_file='{p}/nope.csv' not found",
        ),
        (["finetune", "--train-file", "{p}/train.csv"], "own data needs --validation-file too"),
        (
            [
                "finetune",
                "--train-file",
                "{p}/train.csv",
                "--validation-file",
                "{p}/dev.csv",
                "--text-columns",
                "review",
                "--label-column",
                "x",
            ],
            "{p}/train.csv: no label column 'x'",
        ),
        (
            ["earlybert", "--set", "task=mrpc", "--set", "data_root={p}"],
            "mrpc train: no file at {p}/glue/MRPC/train.tsv",
        ),
        (["earlybert", "--set", 'task={{"train_file": "{p}/train.csv"}}'], "own-data task needs ['validation_file']"),
        (["earlybert", "--set", "task=rte", "--text-files", "{p}"], "--set task=... and your own data"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, argv, message, capsys):
    own(tmp_path, ["pos", "neg"])
    rc = main([a.format(p=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and message.format(p=tmp_path) in err, err
    assert "Traceback" not in err and err.startswith(f"tickettune {argv[0]}: error: ") and err.count("error:") == 1


def test_cli_reports_a_truncated_weights_file_with_its_path(tmp_path, tiny_model, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    rc = main(
        [
            "finetune",
            "--model",
            str(broken),
            "--task",
            "rte",
            "--data-root",
            str(FIXTURES),
            "--max-steps",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"{weights} is corrupt: a truncated or unreadable weights file" in err and "Traceback" not in err

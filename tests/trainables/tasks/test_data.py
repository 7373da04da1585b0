"""trainables/data.py and tasks/glue.py on the real shared GLUE / WikiText-2 files, plus small malformed files in
tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Value

from tickettune.trainables.tasks import data as D
from tickettune.trainables.tasks import glue as G


@pytest.fixture(scope="module", autouse=True)
def cold_datasets_cache(tmp_path_factory):
    """Run against an empty `datasets` cache: proves nothing needs a warm one, and keeps the parsed copies of
    the throw-away files below out of ~/.cache/huggingface."""
    import datasets.config

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-datasets-cache"))
        yield


def write_tsv(root: Path, folder: str, split: str, text: str | bytes) -> Path:
    path = root / "glue" / folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


STSB_HEADER = "\t".join(G.TASKS["stsb"].tsv_columns) + "\n"


def stsb_row(i: int, s1: str, s2: str, score: str) -> str:
    return f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{s1}\t{s2}\t{score}\n"


# ------------------------------------------------------------------------------------------ registry, root


def test_task_registry():
    assert set(G.TASKS) == {"sst2", "cola", "stsb", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli"}
    for name, spec in G.TASKS.items():
        assert spec.name == spec.hub_config == name
        assert spec.main_metric in spec.metrics
        assert spec.head in ("classification", "regression")
        assert spec.label_column in spec.tsv_columns and set(spec.file_columns) <= set(spec.tsv_columns)
    assert G.TASKS["sst2"].main_metric == "accuracy" and G.TASKS["sst2"].folder == "SST-2"
    assert G.TASKS["cola"].main_metric == "matthews_correlation" and G.TASKS["cola"].folder == "CoLA"
    stsb = G.TASKS["stsb"]
    assert (stsb.head, stsb.num_labels, stsb.main_metric, stsb.folder) == ("regression", 1, "spearmanr", "STS-B")
    assert stsb.text_columns == ("sentence1", "sentence2")
    assert G.task_spec("SST-2") is G.task_spec("sst2") is G.task_spec(G.TASKS["sst2"])
    assert G.task_spec("STS-B") is G.TASKS["stsb"]
    assert G.task_spec("MNLI") is G.TASKS["mnli"] and G.task_spec("sts_b") is stsb
    with pytest.raises(ValueError, match="unknown GLUE task 'boolq'"):
        G.task_spec("boolq")


def test_data_root_explicit_and_missing(tmp_path):
    assert D.data_root(tmp_path) == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        D.data_root(tmp_path / "nowhere")


def test_data_root_env_var(tmp_path, monkeypatch):
    env_root = tmp_path / "env"
    env_root.mkdir()
    monkeypatch.setenv("TICKETTUNE_DATA", str(env_root))
    assert D.data_root() == env_root.resolve()
    assert D.data_root(tmp_path) == tmp_path.resolve()  # an explicit root wins
    monkeypatch.setenv("TICKETTUNE_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"TICKETTUNE_DATA.*gone"):
        D.data_root()


def test_data_root_fallbacks(tmp_path, monkeypatch):
    monkeypatch.delenv("TICKETTUNE_DATA", raising=False)
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.setattr(D, "CHECKOUT_DATA", tmp_path / "checkout" / "shared" / "data")
    with pytest.raises(FileNotFoundError, match="set TICKETTUNE_DATA"):
        D.data_root()
    (tmp_path / "checkout" / "shared" / "data").mkdir(parents=True)
    assert D.data_root() == (tmp_path / "checkout" / "shared" / "data").resolve()
    (tmp_path / "shared" / "data").mkdir(parents=True)  # ../shared/data from the current directory comes first
    assert D.data_root() == (tmp_path / "shared" / "data").resolve()


def test_checkout_fallback_is_beside_the_repository():
    repo = Path(__file__).resolve().parents[3]  # this file is <checkout>/tests/trainables/tasks/test_data.py
    assert (repo / "pyproject.toml").is_file()
    assert D.CHECKOUT_DATA == repo.parent / "shared" / "data"


def test_env_var_is_used_by_loaders(tmp_path, monkeypatch):
    write_tsv(tmp_path, "SST-2", "train", "sentence\tlabel\ngood \t1\nbad \t0\n")
    monkeypatch.setenv("TICKETTUNE_DATA", str(tmp_path))
    ds = G.load_glue("sst2", "train")
    assert ds["sentence"] == ["good ", "bad "] and ds["label"] == [1, 0]


# ----------------------------------------------------------------------------------------- real GLUE files


@pytest.mark.parametrize("task,rows", [("sst2", 872), ("cola", 1043), ("stsb", 1500)])
def test_dev_row_counts_and_schema(task, rows, shared_data):
    ds = G.load_glue(task, "dev", root=shared_data)
    spec = G.TASKS[task]
    assert len(ds) == rows
    assert ds.features == spec.features
    assert ds.column_names == [*spec.text_columns, "label", "idx"]
    assert ds["idx"] == list(range(rows))
    labels = np.asarray(ds["label"])
    if spec.is_regression:
        assert isinstance(ds.features["label"], Value) and ds.features["label"].dtype == "float32"
        assert labels.dtype == np.float64 and labels.min() >= 0 and labels.max() <= 5  # python floats
    else:
        assert isinstance(ds.features["label"], ClassLabel)
        assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}


@pytest.mark.parametrize("task,rows", [("sst2", 67349), ("cola", 8551), ("stsb", 5749)])
def test_train_row_counts(task, rows, shared_data):
    assert len(G.load_glue(task, "train", root=shared_data)) == rows


def test_dev_contents(shared_data):
    sst2 = G.load_glue("sst2", "dev", root=shared_data)
    assert sst2[0] == {"sentence": "it 's a charming and often affecting journey . ", "label": 1, "idx": 0}
    assert sum(sst2["label"]) == 444  # positives in SST-2 dev
    cola = G.load_glue("cola", "validation", root=shared_data)  # the hub's name works too
    assert cola[0]["sentence"] == "The sailors rode the breeze clear of the rocks." and cola[0]["label"] == 1
    assert cola[-1]["sentence"] == "John talked to Bill about himself."  # last line has no newline
    assert sum(cola["label"]) == 721
    stsb = G.load_glue("stsb", "dev", root=shared_data)
    assert stsb[0]["label"] == 5.0
    assert stsb[267]["sentence2"] == 'a woman is standing by a pillar where "u2" is written.'  # quotes kept as-is
    assert stsb[267]["label"] == pytest.approx(4.2)
    assert np.mean(stsb["label"]) == pytest.approx(2.36391, abs=1e-4)


def test_train_subsets_are_seeded_nested_and_in_file_order(shared_data):
    full = G.load_glue("sst2", "train", root=shared_data)
    a = G.load_glue("sst2", "train", root=shared_data, max_samples=500, seed=3)
    assert len(a) == 500
    assert a["idx"] == sorted(a["idx"])
    assert a["idx"] == G.load_glue("sst2", "train", root=shared_data, max_samples=500, seed=3)["idx"]
    assert a["idx"] != G.load_glue("sst2", "train", root=shared_data, max_samples=500, seed=4)["idx"]
    small = G.load_glue("sst2", "train", root=shared_data, max_samples=200, seed=3)
    assert set(small["idx"]) <= set(a["idx"])
    for row in (a[0], a[499]):
        assert full[row["idx"]] == row
    assert len(G.load_glue("cola", "dev", root=shared_data, max_samples=10**6)) == 1043
    with pytest.raises(ValueError, match="max_samples"):
        G.load_glue("cola", "dev", root=shared_data, max_samples=0)


def test_bad_arguments(shared_data, tmp_path):
    with pytest.raises(ValueError, match="not public"):
        G.load_glue("sst2", "test", root=shared_data)
    with pytest.raises(ValueError, match="unknown split 'eval'"):
        G.load_glue("sst2", "eval", root=shared_data)
    with pytest.raises(ValueError, match="unknown source"):
        G.load_glue("sst2", "dev", root=shared_data, source="s3")
    with pytest.raises(FileNotFoundError, match="missing"):
        G.load_glue("sst2", "dev", root=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"glue/CoLA/dev\.tsv"):
        G.load_glue("cola", "dev", root=tmp_path)


def test_flat_glue_layout(tmp_path):
    (tmp_path / "CoLA").mkdir()
    (tmp_path / "CoLA" / "dev.tsv").write_text("src\t0\t*\tA bad sentence.\nsrc\t1\t\tA good one.\n")
    assert G.load_glue("cola", "dev", root=tmp_path)["label"] == [0, 1]


def test_hub_source_is_wired(monkeypatch):
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return Dataset.from_dict(
            {"sentence": ["a", "b", "c"], "label": [0, 1, 1], "idx": [0, 1, 2], "extra": [1, 2, 3]}
        )

    monkeypatch.setattr(G, "load_dataset", fake_load_dataset)
    ds = G.load_glue("sst2", "dev", source="hub", max_samples=2)
    assert calls == [(("nyu-mll/glue", "sst2"), {"split": "validation"})]
    assert len(ds) == 2 and ds.column_names == ["sentence", "label", "idx"]


# ------------------------------------------------------------------------------------------ malformed files


@pytest.mark.parametrize(
    "folder,task,text,line,message",
    [
        (
            "SST-2",
            "sst2",
            "sentence\tlabel\na \t0\nb \t1\nc \t1\textra\nd \t0\n",
            4,
            "3 tab-separated columns, expected 2",
        ),
        ("SST-2", "sst2", "sentence\tlabel\na \t0\nno label at all\n", 3, "1 tab-separated columns"),
        ("CoLA", "cola", "s\t1\t\tFine.\ns\t0\tToo few.\n", 2, "3 tab-separated columns, expected 4"),
        ("SST-2", "sst2", "sentence\tlabel\na \t0\n\nb \t1\n", 3, "blank line"),
        ("SST-2", "sst2", "sentence\tlabel\na \t0\nb\r \t1\n", 3, "carriage return"),
        ("SST-2", "sst2", "index\tsentence\n0\ta \n", 1, "header"),
        ("SST-2", "sst2", "sentence\tlabel\na \t0\nb \t2\n", 3, "label '2' is not a class index"),
        ("SST-2", "sst2", "sentence\tlabel\na \t0\nb \t1\nc \tpositive\n", 4, "label 'positive'"),
        ("CoLA", "cola", "s\t1\t\tFine.\ns\t1.0\t\tFloat label.\n", 2, "label '1.0'"),
        ("CoLA", "cola", "s\t1\t\tFine.\ns\t-1\t\tNegative.\n", 2, "label '-1'"),
        ("STS-B", "stsb", STSB_HEADER + stsb_row(0, "a", "b", "3.2") + stsb_row(1, "c", "d", "abc"), 3, "not a number"),
        ("STS-B", "stsb", STSB_HEADER + stsb_row(0, "a", "b", "nan"), 2, "not a number"),
        (
            "STS-B",
            "stsb",
            STSB_HEADER + stsb_row(0, "a", "b", "5") + stsb_row(1, "c", "d", "5.5"),
            3,
            "outside [0.0, 5.0]",
        ),
        ("STS-B", "stsb", STSB_HEADER + stsb_row(0, "a", "b", "-0.1"), 2, "outside"),
        ("STS-B", "stsb", STSB_HEADER + stsb_row(0, "a", "b", "").replace("\t\n", "\n"), 2, "9 tab-separated columns"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, folder, task, text, line, message):
    path = write_tsv(tmp_path, folder, "train", text)
    with pytest.raises(ValueError) as err:
        G.load_glue(task, "train", root=tmp_path)
    assert f"{path}, line {line}:" in str(err.value)
    assert message in str(err.value)


def test_bad_label_found_deep_in_a_large_file(tmp_path):
    rows = [f"sentence {i} \t{i % 2}" for i in range(30_000)]
    rows[25_000] = "sentence 25000 \t7"  # past the csv reader's first 10k-row chunk
    path = write_tsv(tmp_path, "SST-2", "train", "sentence\tlabel\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"{path}, line 25002: label '7'"):
        G.load_glue("sst2", "train", root=tmp_path)


def test_empty_files(tmp_path):
    write_tsv(tmp_path, "SST-2", "train", "")
    with pytest.raises(ValueError, match="empty"):
        G.load_glue("sst2", "train", root=tmp_path)
    write_tsv(tmp_path, "SST-2", "train", "sentence\tlabel\n")
    with pytest.raises(ValueError, match="no data rows"):
        G.load_glue("sst2", "train", root=tmp_path)


def test_quotes_crlf_and_trailing_blank_lines_are_tolerated(tmp_path):
    text = (
        'sentence\tlabel\r\n"an opening quote \t1\r\nsays " hi " twice \t0\r\n'
        'NA \t1\r\nnull \t0\r\n"fully quoted" \t1\r\n\r\n\n'
    )
    write_tsv(tmp_path, "SST-2", "train", text)
    ds = G.load_glue("sst2", "train", root=tmp_path)
    assert ds["sentence"] == ['"an opening quote ', 'says " hi " twice ', "NA ", "null ", '"fully quoted" ']
    assert ds["label"] == [1, 0, 1, 0, 1]
    write_tsv(tmp_path, "CoLA", "train", "s\t1\t\tA sentence.\r\ns\t0\t*\tAnother.\r\n")
    assert G.load_glue("cola", "train", root=tmp_path)["sentence"] == ["A sentence.", "Another."]


# ------------------------------------------------------------------------------------ tokenization, loaders


def test_tokenize_glue_single_and_pair(shared_data, minilm_tokenizer):
    tok = minilm_tokenizer
    sst2 = G.tokenize_glue(G.load_glue("sst2", "dev", root=shared_data, max_samples=50), tok, "sst2")
    assert set(sst2.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    lengths = {len(ids) for ids in sst2["input_ids"]}
    assert len(lengths) > 5  # not padded
    assert all(ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id for ids in sst2["input_ids"])
    assert isinstance(sst2.features["labels"], ClassLabel)
    raw = G.load_glue("stsb", "dev", root=shared_data, max_samples=20)
    stsb = G.tokenize_glue(raw, tok, "stsb", max_length=16)
    assert max(len(ids) for ids in stsb["input_ids"]) <= 16
    assert all(1 in tt for tt in stsb["token_type_ids"])  # sentence2 is segment B
    assert stsb.features["labels"].dtype == "float32"
    assert (
        stsb[0]["input_ids"]
        == tok(raw[0]["sentence1"], raw[0]["sentence2"], truncation=True, max_length=16)["input_ids"]
    )
    assert stsb["labels"] == raw["label"]
    with pytest.raises(ValueError, match="lacks column"):
        G.tokenize_glue(Dataset.from_dict({"text": ["a"], "label": [0]}), tok, "sst2")
    with pytest.raises(ValueError, match="model_max_length"):
        G.tokenize_glue(Dataset.from_dict({"sentence": ["a"], "label": [0]}), tok, "sst2", max_length=4096)


def test_glue_loader_pads_each_batch_to_its_longest(shared_data, minilm_tokenizer):
    loader = G.glue_loader("sst2", "dev", minilm_tokenizer, batch_size=16, root=shared_data)
    widths = []
    for batch in loader:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape == mask.shape == batch["token_type_ids"].shape
        assert ids.shape[1] == int(mask.sum(1).max())  # the longest row sets the width
        assert torch.all(ids[mask == 0] == minilm_tokenizer.pad_token_id)
        assert batch["labels"].dtype == torch.int64 and batch["labels"].shape == (ids.shape[0],)
        widths.append(ids.shape[1])
    assert sum(b["labels"].shape[0] for b in loader) == 872
    assert max(widths) <= 128 and len(set(widths)) > 3 and min(widths) < 40
    stsb = next(iter(G.glue_loader("stsb", "dev", minilm_tokenizer, batch_size=4, root=shared_data)))
    assert stsb["labels"].dtype == torch.float32
    assert stsb["labels"].tolist() == pytest.approx([5.0, 4.75, 5.0, 2.4], abs=1e-6)


def test_glue_loader_shuffling_is_seeded(shared_data, minilm_tokenizer):
    def first_labels(split, **kw):
        loader = G.glue_loader("sst2", split, minilm_tokenizer, batch_size=64, root=shared_data, **kw)
        return next(iter(loader))["labels"].tolist()

    dev = G.load_glue("sst2", "dev", root=shared_data)
    assert first_labels("dev") == dev["label"][:64]  # dev: file order by default
    assert first_labels("dev", shuffle=True, seed=1) == first_labels("dev", shuffle=True, seed=1)
    assert first_labels("dev", shuffle=True, seed=1) != first_labels("dev", shuffle=True, seed=2)
    loader = G.glue_loader("sst2", "train", "minilm-l6", batch_size=8, max_samples=64, root=shared_data)
    assert len(loader.dataset) == 64 and len(loader) == 8


def test_task_dev_data_comes_longest_first_with_the_same_metrics_as_file_order(shared_data, minilm_tokenizer):
    from tickettune.trainables.model.build import ScratchConfig, scratch_model
    from tickettune.trainables.tasks import DataArgs, get_task

    task = get_task("sst2")
    dev = task.eval_data(minilm_tokenizer, DataArgs(root=shared_data, max_length=64, max_eval_samples=200))["dev"]
    rows = [int(n) for b in dev for n in b["attention_mask"].sum(1)]
    assert rows == sorted(rows, reverse=True) and len(rows) == 200  # each batch pads to (nearly) nothing
    file_order = G.glue_loader("sst2", "dev", minilm_tokenizer, 64, 64, 200, root=shared_data)
    assert sum(b["input_ids"].numel() for b in dev) < 0.8 * sum(b["input_ids"].numel() for b in file_order)
    torch.manual_seed(0)
    model, _ = scratch_model(ScratchConfig(layers=1, heads=2, hidden=16, ffn=32, dropout=0.0), head="classification")
    model.resize_token_embeddings(len(minilm_tokenizer))
    sorted_metrics = task.evaluate(model, {"dev": dev}, "fp32")
    assert sorted_metrics == pytest.approx(task.evaluate(model, {"dev": file_order}, "fp32"))
    assert 0.0 < sorted_metrics["accuracy"] < 1.0


# ------------------------------------------------------------------------------------------------ MLM text


def test_load_text_cleans_wikitext(shared_data):
    valid = D.load_text("valid", root=shared_data)
    assert len(valid) > 1000 and valid.column_names == ["text"]
    for line in valid["text"]:
        assert line and line == line.strip()
        assert not (line.startswith("= ") and line.endswith(" ="))
        assert " @-@ " not in line and " @,@ " not in line
    assert any("<unk>" in line for line in valid["text"])  # tokenized release
    raw = D.load_text("test_raw", root=shared_data)
    assert len(raw) > 1000 and not any("\r" in line for line in raw["text"])
    assert not any("<unk>" in line for line in raw["text"])
    by_path = D.load_text(["wikitext-2/valid.txt"], root=shared_data)
    assert by_path["text"] == valid["text"]
    with_headings = D.load_text("valid", root=shared_data, drop_headings=False)
    assert len(with_headings) > len(valid)


def test_load_text_errors_and_hub(shared_data, monkeypatch):
    with pytest.raises(FileNotFoundError, match="source='hub'"):
        D.load_text("train", root=shared_data)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        D.load_text("nope.txt", root=shared_data)
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return Dataset.from_dict({"text": ["", " = Title = ", " Some text @-@ here . ", "\n"]})

    monkeypatch.setattr(D, "load_dataset", fake_load_dataset)
    ds = D.load_text("valid", source="hub")
    assert calls == [(("Salesforce/wikitext", "wikitext-2-raw-v1"), {"split": "validation"})]
    assert ds["text"] == ["Some text-here ."]


def test_tokenize_text_blocks(minilm_tokenizer):
    tok = minilm_tokenizer
    lines = ["the cat sat on the mat .", "a <unk> dog barked at the moon and ran away", "one two three four five"]
    encoded = tok([line.replace("<unk>", tok.unk_token) for line in lines], add_special_tokens=False)["input_ids"]
    ids = [i for line in encoded for i in line]
    assert tok.unk_token_id in ids
    blocks = D.tokenize_text(Dataset.from_dict({"text": lines}), tok, max_length=8)
    body = 6
    assert len(blocks) == len(ids) // body
    assert set(blocks.column_names) == {"input_ids", "attention_mask", "special_tokens_mask"}
    for k, row in enumerate(blocks):
        assert row["input_ids"] == [tok.cls_token_id, *ids[k * body : (k + 1) * body], tok.sep_token_id]
        assert row["special_tokens_mask"] == [1, 0, 0, 0, 0, 0, 0, 1] and row["attention_mask"] == [1] * 8


def test_mlm_loader_masks_fifteen_percent(shared_data, minilm_tokenizer):
    tok = minilm_tokenizer
    loader = D.mlm_loader(
        tok, "valid", batch_size=32, max_length=128, max_samples=256, root=shared_data, shuffle=False, seed=0
    )
    blocks = loader.dataset
    assert len(blocks) == 256
    original = torch.tensor(blocks["input_ids"])
    batches = list(loader)
    ids = torch.cat([b["input_ids"] for b in batches])
    labels = torch.cat([b["labels"] for b in batches])
    assert ids.shape == labels.shape == original.shape == (256, 128)
    picked = labels != -100
    assert torch.equal(labels[picked], original[picked])  # labels hold the original token where picked...
    assert torch.equal(ids[~picked], original[~picked])  # ...and nothing else changes
    assert not picked[:, 0].any() and not picked[:, -1].any()  # [CLS]/[SEP] never picked
    rate = picked.sum().item() / (256 * 126)
    assert 0.14 < rate < 0.16
    as_mask = (ids[picked] == tok.mask_token_id).float().mean().item()
    kept = (ids[picked] == original[picked]).float().mean().item()
    assert 0.77 < as_mask < 0.83 and 0.08 < kept < 0.13


def test_mlm_loader_is_seeded(shared_data, minilm_tokenizer):
    def first(seed):
        return next(
            iter(D.mlm_loader(minilm_tokenizer, "test", batch_size=8, max_length=64, seed=seed, root=shared_data))
        )

    a, b, c = first(0), first(0), first(1)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["labels"], c["labels"])
    with pytest.raises(ValueError, match="mlm_probability"):
        D.mlm_loader(minilm_tokenizer, "test", mlm_probability=1.5, root=shared_data)

"""Tickets as ordinary Hugging Face models: loaded by plain transformers (trust_remote_code) in a
process that cannot import tickettune, with the same outputs; re-saved; refused when incomplete.
BERT (MiniLM and scratch models) in depth; DistilBERT and ModernBERT (tiny random models) for every head."""

import ast
import importlib.util
import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from plain_env import run_plain
from search_fakes import make_experiment

from tickettune.searcher.export import export_best
from tickettune.trainables.model.build import ScratchConfig, layout, load_model, scratch_model
from tickettune.trainables.model.families import HEADS
from tickettune.trainables.model.layout import split_config
from tickettune.trainables.model.prune import prune_model
from tickettune.trainables.testing.random_models import write_random_model
from tickettune.trainables.ticket import format as T
from tickettune.trainables.ticket import hf_code

IDS = [[101, 2023, 3185, 2001, 2307, 999, 102, 0, 0], [101, 1037, 6659, 2143, 1010, 2145, 2919, 1012, 102]]
AUTO = {
    "classification": "AutoModelForSequenceClassification",
    "regression": "AutoModelForSequenceClassification",
    "mlm": "AutoModelForMaskedLM",
}


def batch() -> dict:
    ids = torch.tensor(IDS)
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def random_masks(heads: list[int], ffn: list[int], n_heads: int, n_ffn: int, seed: int):
    """Masks keeping heads[i] heads and ffn[i] neurons of layer i, chosen at random (not a prefix)."""
    g = torch.Generator().manual_seed(seed)

    def mask(keep: int, size: int) -> torch.Tensor:
        m = torch.zeros(size, dtype=torch.bool)
        m[torch.randperm(size, generator=g)[:keep]] = True
        return m

    return [mask(h, n_heads) for h in heads], [mask(f, n_ffn) for f in ffn]


def scratch_ticket(head: str, num_labels: int, pre_ln: bool, seed: int):
    torch.manual_seed(seed)
    model, tok = scratch_model(
        ScratchConfig(layers=3, heads=4, hidden=32, ffn=64, pre_ln=pre_ln), head=head, num_labels=num_labels
    )
    with torch.no_grad():  # LayerNorms away from (1, 0) so that a mix-up of their names would show
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "final_layer_norm" in name:
                p.add_(torch.randn(p.shape) * 0.1)
    heads, ffn = random_masks([1, 3, 2], [40, 17, 64], 4, 64, seed)
    return prune_model(model, heads, ffn).eval(), tok, (heads, ffn)


def minilm_ticket():
    model, tok = load_model("minilm-l6", head="classification", num_labels=2)
    heads, ffn = random_masks([12, 9, 6, 8, 3, 1], [1536, 700, 512, 1024, 99, 300], 12, 1536, seed=7)
    return prune_model(model, heads, ffn).eval(), tok, (heads, ffn)


CHILD = textwrap.dedent("""
    import json, shutil, sys, torch, transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    jobs, ids = json.loads(sys.argv[1]), torch.tensor(json.loads(sys.argv[2]))
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    res = {}

    def run(model):
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
        res = {k: out[k].tolist() for k in ("logits", "start_logits", "last_hidden_state") if k in out}
        return {**res, "hidden_states": [h.tolist() for h in out.hidden_states]}

    for name, (path, auto, resave) in jobs.items():
        cls = getattr(transformers, auto)
        model = cls.from_pretrained(path, trust_remote_code=True)
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
        r = {"training": model.training, "class": type(model).__name__, "out": run(model),
             "config": {k: getattr(config, k) for k in ("model_type", "heads_per_layer", "ffn_per_layer", "pre_ln")},
             "tokens": AutoTokenizer.from_pretrained(path, trust_remote_code=True)("a great movie")["input_ids"]}
        if resave:  # what a user does after fine-tuning: save_pretrained, then load it again the same way
            model.save_pretrained(resave)
            AutoTokenizer.from_pretrained(path, trust_remote_code=True).save_pretrained(resave)
            r["resaved"] = run(cls.from_pretrained(resave, trust_remote_code=True))
        res[name] = r

    def error(path, auto, trust=True):
        try:
            getattr(transformers, auto).from_pretrained(path, trust_remote_code=trust)
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return None

    res["errors"] = {path: error(path, auto) for path, auto in json.loads(sys.argv[3])}
    res["untrusted"] = error(jobs["reg"][0], jobs["reg"][1], trust=None)  # not a dense BERT of the wrong shapes
    json.dump(res, open(sys.argv[-1], "w"))
""")

BROKEN = ("model.safetensors", "modeling_tickettune.py", "configuration_tickettune.py", "config.json")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Tickets saved (and one exported) here; one plain-transformers process loads them all."""
    tmp = tmp_path_factory.mktemp("plain")
    made = {
        "clf_minilm": minilm_ticket() + ("classification",),
        "clf_preln": scratch_ticket("classification", 3, True, 1) + ("classification",),
        "reg": scratch_ticket("regression", 1, False, 2) + ("regression",),
        "mlm_preln": scratch_ticket("mlm", 2, True, 3) + ("mlm",),
        "mlm": scratch_ticket("mlm", 2, False, 4) + ("mlm",),
    }
    paths = {}
    for name, (model, tok, (heads, ffn), head) in made.items():
        info = T.ticket_info(
            heads,
            ffn,
            metrics={"accuracy": 0.75},
            flow={"task": "sst2", "model": "minilm-l6", "max_length": 64, "lambda_head": 1e-4},
        )
        paths[name] = T.save_ticket(model, tok, tmp / name, info)
    # the classification ticket goes through `tickettune export`, as a user gets it
    exp = make_experiment(tmp / "exp", [{"id": "a", "config": {"eps": 0.1}, "val": 0.9, "cost": 0.5, "bird": 10}])
    shutil.rmtree(exp / "trial_a" / "ticket")
    shutil.copytree(paths["clf_minilm"], exp / "trial_a" / "ticket")
    export_best(exp, tmp / "exported")
    paths["clf_minilm"] = tmp / "exported"

    jobs = {n: [str(p), AUTO[made[n][3]], str(tmp / f"{n}-resaved")] for n, p in paths.items()}
    jobs["mlm_as_clf"] = [str(paths["mlm"]), "AutoModelForSequenceClassification", None]
    jobs["mlm_as_qa"] = [str(paths["mlm"]), "AutoModelForQuestionAnswering", None]
    jobs["mlm_base"] = [str(paths["mlm"]), "AutoModel", None]
    broken = []
    for i, f in enumerate(BROKEN):  # a ticket folder with one file missing (its name does not say which)
        d = tmp / f"broken-{i}"
        shutil.copytree(paths["reg"], d)
        (d / f).unlink()
        broken.append([str(d), AUTO["regression"]])
    res = run_plain(CHILD, [json.dumps(jobs), json.dumps(IDS), json.dumps(broken)], tmp)
    return res, made, paths, tmp


@pytest.mark.parametrize("name", ["clf_minilm", "clf_preln", "reg", "mlm_preln", "mlm"])
def test_plain_transformers_gives_tickettunes_outputs(plain, name):
    res, made, paths, tmp = plain
    model, tok, _, head = made[name]
    r = res[name]
    with torch.no_grad():
        expected = model(**batch()).logits
    torch.testing.assert_close(torch.tensor(r["out"]["logits"]), expected, rtol=0, atol=1e-5)
    assert not r["training"] and r["class"] == "Tickettune" + (
        "BertForMaskedLM" if head == "mlm" else "BertForSequenceClassification"
    )
    assert r["config"] == {"model_type": "tickettune_bert", **layout(model)}
    assert r["tokens"] == tok("a great movie")["input_ids"]
    # save_pretrained of the loaded model: loads again the same way, and natively in tickettune
    torch.testing.assert_close(torch.tensor(r["resaved"]["logits"]), expected, rtol=0, atol=1e-5)
    again, _ = load_model(str(tmp / f"{name}-resaved"), head=head, num_labels=model.config.num_labels)
    assert layout(again) == layout(model)
    with torch.no_grad():
        torch.testing.assert_close(again(**batch()).logits, expected, rtol=0, atol=1e-5)


def test_exported_ticket_is_still_a_tickettune_ticket(plain):
    _, made, paths, _ = plain
    model, _, (heads, _), _ = made["clf_minilm"]
    again, _, info = T.load_ticket(paths["clf_minilm"])
    assert info["version"] == T.VERSION == hf_code.CODE_VERSION and T.masks_of(info)[0][2].tolist() == heads[2].tolist()
    assert layout(again)["heads_per_layer"] == [12, 9, 6, 8, 3, 1]
    with torch.no_grad():
        torch.testing.assert_close(again(**batch()).logits, model(**batch()).logits, rtol=0, atol=1e-5)


def test_an_mlm_ticket_loads_with_other_heads(plain):
    res, made, _, _ = plain
    model = made["mlm"][0]
    with torch.no_grad():
        hidden = model.bert(**batch()).last_hidden_state
    torch.testing.assert_close(torch.tensor(res["mlm_base"]["out"]["last_hidden_state"]), hidden, rtol=0, atol=1e-5)
    states = res["mlm_base"]["out"]["hidden_states"]  # output_hidden_states=True: embeddings + one per layer
    assert len(states) == 4 and len(res["mlm_as_qa"]["out"]["hidden_states"]) == 4
    torch.testing.assert_close(torch.tensor(states[-1]), hidden, rtol=0, atol=1e-5)
    assert torch.tensor(res["mlm_as_clf"]["out"]["logits"]).shape == (2, 2)
    assert torch.tensor(res["mlm_as_qa"]["out"]["start_logits"]).shape == (2, len(IDS[0]))


def test_plain_transformers_names_the_missing_file(plain):
    res, _, _, tmp = plain
    assert res["untrusted"] is not None and "trust_remote_code=True" in res["untrusted"]
    for i, f in enumerate(BROKEN):
        err = res["errors"][str(tmp / f"broken-{i}")]
        assert err is not None and f in err, (f, err)


@pytest.mark.parametrize(
    "missing",
    [
        "config.json",
        "model.safetensors",
        "ticket.json",
        "tokenizer_config.json",
        "modeling_tickettune.py",
        "configuration_tickettune.py",
    ],
)
def test_tickettune_refuses_an_incomplete_ticket(plain, tmp_path, missing):
    _, _, paths, _ = plain
    d = tmp_path / "t"
    shutil.copytree(paths["reg"], d)
    (d / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        T.load_ticket(d)


@pytest.mark.parametrize("cut", ["model.safetensors", "ticket.json"])
def test_tickettune_refuses_a_half_written_file(plain, tmp_path, cut):
    _, _, paths, _ = plain
    d = tmp_path / "t"
    shutil.copytree(paths["reg"], d)
    data = (d / cut).read_bytes()
    (d / cut).write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=rf"{cut.replace('.', chr(92) + '.')} is corrupt"):
        T.load_ticket(d)


def assert_small_versioned_torch_and_transformers_only(d: Path) -> None:
    for f in hf_code.CODE_FILES:
        src = (d / f).read_text()
        assert f"ticket format {T.VERSION}" in src and len(src.splitlines()) < 200
        imported = {
            (n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) and not n.level else None
            for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.ImportFrom)
        }
        imported |= {
            a.name.split(".")[0] for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names
        }
        assert imported <= {"torch", "transformers", None}, imported


def test_generated_code_is_small_versioned_and_needs_only_torch_and_transformers(plain):
    _, _, paths, _ = plain
    d = paths["clf_preln"]
    assert_small_versioned_torch_and_transformers_only(d)
    config = json.loads((d / "config.json").read_text())
    assert config["ticket_format"] == T.VERSION and config["architectures"] == [
        "TickettuneBertForSequenceClassification"
    ]
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_tickettune.TickettuneBertForMaskedLM"


def test_model_card(plain):
    _, made, paths, _ = plain
    card = (paths["clf_minilm"] / "README.md").read_text()
    assert 'AutoModelForSequenceClassification.from_pretrained("path/to/ticket", trust_remote_code=True)' in card
    assert "| 1 | 9 / 12 | 700 / 1536 |" in card and "| 5 | 1 / 12 | 300 / 1536 |" in card
    params = sum(p.numel() for p in made["clf_minilm"][0].parameters())
    assert f"| parameters | {params:,} | 22,713,986 |" in card  # MiniLM-L6 with a 2-label head
    assert "| accuracy | 0.75 |" in card and "| lambda_head | 0.0001 |" in card and "- task: `sst2`" in card
    ratio = float(card.split("sequence of 64 tokens (matmuls) | | | ")[1].split(" ")[0])
    assert 0.3 < ratio < 0.7
    assert "pipeline_tag: fill-mask" in (paths["mlm"] / "README.md").read_text()


def test_the_hf_code_families_are_read_from_the_family_adapters():
    """One registry: every adapter's model_type gets generated code, with the facts the explicit table
    had before the adapters carried them (pinned here for a BERT-block family, DistilBERT, ModernBERT)."""
    from importlib import resources

    from tickettune.trainables.model.families import FAMILIES
    from tickettune.trainables.model.families.bert_block import Bert

    assert list(hf_code.FAMILIES) == list(FAMILIES)
    templates = resources.files(hf_code.__package__).joinpath("hf_templates")
    for model_type, fam in hf_code.FAMILIES.items():
        adapter = FAMILIES[model_type]
        assert templates.joinpath(fam.layers_template).is_file(), fam.layers_template
        assert (fam.backbone, fam.pre_ln, fam.ffn_key) == (
            adapter.backbone_attr,
            adapter.native_pre_ln,
            adapter.width_keys[2],
        )

    def heads(p: str) -> dict[str, str]:
        return {
            "AutoModelForSequenceClassification": f"{p}ForSequenceClassification",
            "AutoModelForMaskedLM": f"{p}ForMaskedLM",
            "AutoModelForQuestionAnswering": f"{p}ForQuestionAnswering",
        }

    no_pooler = {"base_params": "", "base_args": "", "head_base_args": ""}
    assert hf_code.FAMILIES["xlm-roberta"] == hf_code.HFFamily(
        "xlm-roberta",
        "XLMRobertaConfig",
        "XLMRobertaModel",
        heads("XLMRoberta"),
        backbone="roberta",
        encoder="encoder",
        layers_template="bert_layers.py",
        no_split=("XLMRobertaEmbeddings",),
        ffn_key="intermediate_size",
        pre_ln=False,
    )
    assert hf_code.FAMILIES["distilbert"] == hf_code.HFFamily(
        "distilbert",
        "DistilBertConfig",
        "DistilBertModel",
        heads("DistilBert"),
        backbone="distilbert",
        encoder="transformer",
        layers_template="distilbert_layers.py",
        no_split=(),
        ffn_key="hidden_dim",
        pre_ln=False,
        **no_pooler,
    )
    assert hf_code.FAMILIES["modernbert"] == hf_code.HFFamily(
        "modernbert",
        "ModernBertConfig",
        "ModernBertModel",
        heads("ModernBert"),
        backbone="model",
        encoder="layers",
        layers_template="modernbert_layers.py",
        no_split=("ModernBertEmbeddings",),
        ffn_key="intermediate_size",
        pre_ln=True,
        **no_pooler,
    )

    class NoTemplate(Bert):
        name, hf_template = "NoTemplate", ""

    with pytest.raises(ValueError, match="NoTemplate adapter names no layer template"):
        hf_code.from_adapter("bert", NoTemplate())


def as_version_1(ticket: Path, d: Path) -> dict:
    """A copy of `ticket` in `d` as format 1 wrote it (stock model_type, layout under config.tickettune, no
    model code); returns its ticket.json."""
    shutil.copytree(ticket, d)
    config = json.loads((d / "config.json").read_text())
    stock, lay = split_config(config)
    (d / "config.json").write_text(json.dumps({**stock, "tickettune": lay}))
    info = json.loads((d / "ticket.json").read_text())
    (d / "ticket.json").write_text(json.dumps({**info, "version": 1}))
    for f in hf_code.CODE_FILES:
        (d / f).unlink()
    return info


def test_a_version_1_ticket_still_loads(plain, tmp_path):
    """Tickets written before the model code: layout under config.tickettune, model_type bert."""
    _, made, paths, _ = plain
    d = tmp_path / "v1"
    info = as_version_1(paths["clf_preln"], d)
    model, _, _ = T.load_ticket(d)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch()).logits, made["clf_preln"][0](**batch()).logits, rtol=0, atol=1e-5)
    (d / "ticket.json").write_text(json.dumps({**info, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        T.load_ticket(d)


# --------------------------------------------------------------------------------------------------
# DistilBERT and ModernBERT: their own layer templates, every head tickettune has for them

OTHER_FAMILIES = ("distilbert", "modernbert")
# ticket name -> (model_type, head, pre_ln); DistilBERT is post-LN as published and may be run pre-LN
OTHER = {f"{t}-{head}": (t, head, None) for t in OTHER_FAMILIES for head in HEADS}
OTHER["distilbert-classification-preln"] = ("distilbert", "classification", True)
OTHER["modernbert-classification-biased"] = ("modernbert", "classification", None)  # see biased_modernbert

OTHER_CHILD = textwrap.dedent("""
    import json, sys, torch, transformers
    from transformers import AutoTokenizer
    torch.set_num_threads(1)
    jobs, ids = json.loads(sys.argv[1]), torch.tensor(json.loads(sys.argv[2]))
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}

    def run(model):
        with torch.no_grad():
            out = model(**batch)
        return {k: out[k].tolist() for k in ("logits", "start_logits", "end_logits") if k in out}

    res = {}
    for name, (path, auto, resave) in jobs.items():
        cls = getattr(transformers, auto)
        model, info = cls.from_pretrained(path, trust_remote_code=True, output_loading_info=True)
        r = {"class": type(model).__name__, "training": model.training, "model_type": model.config.model_type,
             "loading": {k: sorted(map(str, v)) for k, v in info.items()}, "out": run(model)}
        model.save_pretrained(resave)  # and back: the code files travel with it
        AutoTokenizer.from_pretrained(path, trust_remote_code=True).save_pretrained(resave)
        r["resaved"] = run(cls.from_pretrained(resave, trust_remote_code=True))
        res[name] = r
    json.dump(res, open(sys.argv[-1], "w"))
""")


def outputs(model) -> dict[str, torch.Tensor]:
    """The head's outputs on `batch()`: logits, or start and end logits (QA)."""
    with torch.no_grad():
        out = model(**batch())
    return {k: out[k] for k in ("logits", "start_logits", "end_logits") if k in out}


def biased_modernbert(source: Path, out: Path) -> Path:
    """The random ModernBERT `source` with a bias in every projection and norm (ModernBERT has none by
    default) and mean pooling in its classifier, saved to `out`."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    config.update({"attention_bias": True, "mlp_bias": True, "norm_bias": True, "classifier_pooling": "mean"})
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def family_ticket(source: Path, head: str, pre_ln: bool | None, seed: int):
    """A tiny random model of `source`'s family, pruned to uneven widths (1 and 3 of 4 heads, 40 and 17 of 64
    FFN neurons, chosen at random), with norms away from (1, 0) and biases away from 0 so that a mix-up of
    their names would show."""
    torch.manual_seed(seed)
    model, tok = load_model(str(source), head=head, num_labels=3, pre_ln=pre_ln)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith(".bias"):
                p.add_(torch.randn(p.shape) * 0.1)
    heads, ffn = random_masks([1, 3], [40, 17], 4, 64, seed)
    return prune_model(model, heads, ffn).eval(), tok, (heads, ffn)


@pytest.fixture(scope="module")
def others(tmp_path_factory):
    """DistilBERT and ModernBERT tickets for every head, saved here; one plain-transformers process loads
    each with its Auto class, saves it again and loads that."""
    tmp = tmp_path_factory.mktemp("others")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sources = {t: write_random_model(t, tmp / f"random-{t}") for t in OTHER_FAMILIES}
        biased = biased_modernbert(sources["modernbert"], tmp / "random-modernbert-biased")
        made, jobs = {}, {}
        for seed, (name, (model_type, head, pre_ln)) in enumerate(OTHER.items()):
            source = biased if name.endswith("-biased") else sources[model_type]
            model, tok, (heads, ffn) = family_ticket(source, head, pre_ln, seed)
            path = T.save_ticket(model, tok, tmp / name, T.ticket_info(heads, ffn))
            made[name] = (model, outputs(model), path)
            jobs[name] = [str(path), hf_code.AUTO_CLASSES[head], str(tmp / f"{name}-resaved")]
        res = run_plain(OTHER_CHILD, [json.dumps(jobs), json.dumps(IDS)], tmp)
    finally:
        torch.set_num_threads(n)
    return res, made, tmp


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", list(OTHER))
def test_other_families_give_tickettunes_outputs_in_plain_transformers(others, name):
    res, made, tmp = others
    model_type, head, _ = OTHER[name]
    model, expected, path = made[name]
    r = res[name]
    assert T.read_info(path)["version"] == T.VERSION
    assert r["class"] == hf_code.FAMILIES[model_type].class_name(hf_code.AUTO_CLASSES[head]) and not r["training"]
    assert r["model_type"] == "tickettune_" + model_type
    loading = r["loading"]  # the ticket's weights fit the generated classes exactly
    assert [loading[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")] == [[], [], []], loading
    assert set(r["out"]) == set(expected) and set(r["resaved"]) == set(expected)
    widths = layout(model)
    assert widths["heads_per_layer"] == [1, 3] and widths["ffn_per_layer"] == [40, 17]
    assert widths["pre_ln"] == (model_type == "modernbert" or name.endswith("preln"))
    biases = [n for n, _ in model.named_parameters() if n.endswith(".bias") and ".layers." in n]
    assert bool(biases) == name.endswith("-biased") or model_type == "distilbert", biases
    for k, v in expected.items():
        diff = (torch.tensor(r["out"][k]) - v).abs().max().item()
        print(f"{name} {k}: max |plain - tickettune| = {diff:.3g}")
        torch.testing.assert_close(torch.tensor(r["out"][k]), v, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.tensor(r["resaved"][k]), v, rtol=0, atol=1e-5)
    # the re-saved folder (transformers' save_pretrained) loads natively in tickettune too
    again, _ = load_model(str(tmp / f"{name}-resaved"), head=head, num_labels=model.config.num_labels)
    assert layout(again) == widths
    for k, v in outputs(again).items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=1e-5)


@pytest.mark.usefixtures("one_thread")
def test_other_families_generated_code(others):
    _, _, tmp = others
    for model_type in OTHER_FAMILIES:
        d = tmp / f"{model_type}-mlm"
        assert_small_versioned_torch_and_transformers_only(d)
        config = json.loads((d / "config.json").read_text())
        stock = hf_code.FAMILIES[model_type].heads["AutoModelForMaskedLM"]
        assert config["architectures"] == [f"Tickettune{stock}"] and (d / "README.md").is_file()
        assert config["auto_map"]["AutoModelForQuestionAnswering"].startswith("modeling_tickettune.Tickettune")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["distilbert-classification", "modernbert-mlm"])
def test_a_version_1_ticket_of_another_family_still_loads(others, tmp_path, name):
    """DistilBERT and ModernBERT tickets written before their model code existed (format 1)."""
    _, made, _ = others
    model, expected, path = made[name]
    as_version_1(path, tmp_path / "v1")
    again, _, info = T.load_ticket(tmp_path / "v1")
    assert info["version"] == 1 and layout(again) == layout(model)
    for k, v in outputs(again).items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=1e-5)


TRAINER_CHILD = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
    path, out = sys.argv[1], sys.argv[2]
    model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(1000, 2000, (8,), generator=g), "labels": i % 2} for i in range(32)]
    args = TrainingArguments(output_dir=out, max_steps=6, per_device_train_batch_size=8, learning_rate=1e-3,
                             report_to=[], use_cpu=True, logging_steps=1, save_strategy="no")
    result = Trainer(model=model, args=args, train_dataset=rows).train()
    Trainer(model=model, args=args).save_model(out + "/final")
    reloaded = AutoModelForSequenceClassification.from_pretrained(out + "/final", trust_remote_code=True)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    same = all(torch.equal(v, reloaded.state_dict()[k]) for k, v in model.state_dict().items())
    json.dump({"loss": result.training_loss, "steps": result.global_step, "changed": changed, "same": same},
              open(sys.argv[-1], "w"))
""")


@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="transformers.Trainer needs accelerate, which this environment lacks",
)
def test_trains_with_transformers_trainer(plain):
    res, _, paths, tmp = plain
    out = run_plain(
        TRAINER_CHILD,
        [str(paths["clf_preln"]), str(tmp / "trainer-out")],
        tmp / "trainer-site-run",
        roots=("torch", "transformers", "accelerate"),
    )
    assert out["steps"] == 6 and out["loss"] == out["loss"] and out["same"]
    assert any(".encoder.layer.2.intermediate.dense.weight" in k for k in out["changed"])
    assert any(k.startswith("classifier.") for k in out["changed"])


SCRIPT_CHILD = textwrap.dedent("""
    import json, runpy, sys
    script, out = sys.argv[1], sys.argv[-1]
    sys.argv = [script, *sys.argv[2:-1]]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code
    json.dump({"exit": code}, open(out, "w"))
""")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="transformers.Trainer needs accelerate, which this environment lacks",
)
def test_finetune_script_runs_without_tickettune(plain, shared_data):
    """scripts/examples/finetune_ticket_with_trainer.py on an MLM ticket (new classifier head), SST-2, a few steps."""
    _, made, paths, tmp = plain
    script = Path(__file__).resolve().parents[3] / "scripts" / "examples" / "finetune_ticket_with_trainer.py"
    out = tmp / "ft"
    res = run_plain(
        SCRIPT_CHILD,
        [
            str(script),
            str(paths["mlm"]),
            "--task",
            "sst2",
            "--data-dir",
            str(shared_data / "glue"),
            "--out",
            str(out),
            "--max-steps",
            "3",
            "--max-train-samples",
            "48",
            "--max-eval-samples",
            "32",
            "--batch-size",
            "16",
        ],
        tmp / "ft-run",
        roots=("torch", "transformers", "accelerate", "datasets"),
    )
    assert res["exit"] == 0
    summary = json.loads((out / "finetune_summary.json").read_text())
    assert summary["steps"] == 3 and 0.0 <= summary["accuracy"] <= 1.0
    tuned, _ = load_model(str(out / "final"), head="classification", num_labels=2)  # and tickettune reads it
    assert layout(tuned) == layout(made["mlm"][0])

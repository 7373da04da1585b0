"""Model code that makes a ticket an ordinary Hugging Face model (`trust_remote_code=True`).

A ticket keeps different numbers of heads and FFN neurons in each layer, which no stock transformers
class can build. So every ticket folder carries two small files, written from the templates in
``hf_templates/``:

* ``configuration_tickettune.py``: the family's stock config (``BertConfig``) plus ``heads_per_layer``,
  ``ffn_per_layer`` and ``pre_ln``; ``model_type`` becomes ``tickettune_<family>``, so that
  transformers asks for ``trust_remote_code`` instead of building a dense model of the wrong shapes.
* ``modeling_tickettune.py``: one subclass per stock class of the family (``BertModel``,
  ``BertForSequenceClassification``, ``BertForMaskedLM``, ``BertForQuestionAnswering``) whose encoder
  is replaced by one built at the ticket's widths, with the same parameter names as tickettune's model.

``config.json`` gets an ``auto_map`` naming all of them, so an MLM ticket also loads as a classifier
(new head) for fine-tuning. The code depends on torch and transformers only. Which code a ticket
carries is fixed by the ticket format version (`CODE_VERSION`, ``ticket_format`` in config.json).

A new family is one `HFFamily` entry (and, if its blocks are not laid out like BERT's, one layer
template); a new head is one entry in `AUTO_CLASSES` and in the family's `heads`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

CODE_VERSION = 2  # == ticket.VERSION: the ticket format that introduced this code
CONFIG_FILE = "configuration_tickettune.py"
MODELING_FILE = "modeling_tickettune.py"
CODE_FILES = (CONFIG_FILE, MODELING_FILE)
PREFIX = "tickettune_"  # model_type of a ticket = PREFIX + the family's stock model_type
LAYOUT_KEYS = ("heads_per_layer", "ffn_per_layer", "pre_ln")

# tickettune head -> the transformers Auto class that loads it
AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification",
                "regression": "AutoModelForSequenceClassification",
                "mlm": "AutoModelForMaskedLM",
                "qa": "AutoModelForQuestionAnswering"}


@dataclass(frozen=True)
class HFFamily:
    """What the generated code needs to know of one stock transformers family.

    The generated base model subclasses `base_class` and replaces its layer stack (attribute `encoder`)
    by TickettuneEncoder, from `layers_template`; each generated head subclasses the stock head and
    replaces its base model (attribute `backbone`) by the generated one, built with `head_base_args`.
    """

    model_type: str                 # the stock config's model_type: "bert"
    config_class: str               # "BertConfig"
    base_class: str                 # "BertModel" (what AutoModel loads)
    heads: dict[str, str]           # Auto class -> stock head class
    backbone: str                   # attribute of a head model that holds the base model: "bert"
    encoder: str = "encoder"        # attribute of the base model that holds the layer stack
    layers_template: str = "bert_layers.py"
    base_params: str = ", add_pooling_layer: bool = True"  # the base class's extra __init__ parameters
    base_args: str = ", add_pooling_layer=add_pooling_layer"  # ... passed on to the stock base class
    head_base_args: str = ", add_pooling_layer=self.{backbone}.pooler is not None"  # ... as the stock head chose
    no_split: tuple[str, ...] = ("BertEmbeddings",)  # the stock _no_split_modules besides its layer class

    @property
    def auto_classes(self) -> tuple[str, ...]:
        return ("AutoModel", *self.heads)

    @property
    def ticket_model_type(self) -> str:
        return PREFIX + self.model_type

    def class_name(self, auto_class: str) -> str:
        """The generated class for an Auto class: 'Tickettune' + the stock class."""
        return "Tickettune" + (self.base_class if auto_class == "AutoModel" else self.heads[auto_class])


FAMILIES: dict[str, HFFamily] = {
    "bert": HFFamily("bert", "BertConfig", "BertModel",
                     {"AutoModelForSequenceClassification": "BertForSequenceClassification",
                      "AutoModelForMaskedLM": "BertForMaskedLM",
                      "AutoModelForQuestionAnswering": "BertForQuestionAnswering"},
                     backbone="bert"),
}


def _bert_block_family(model_type: str, prefix: str, backbone: str, pooler: bool = True) -> HFFamily:
    """A family whose blocks are BERT's under another name (bert_layers.py fits them as they are)."""
    extra = {} if pooler else {"base_params": "", "base_args": "", "head_base_args": ""}
    return HFFamily(model_type, f"{prefix}Config", f"{prefix}Model",
                    {"AutoModelForSequenceClassification": f"{prefix}ForSequenceClassification",
                     "AutoModelForMaskedLM": f"{prefix}ForMaskedLM",
                     "AutoModelForQuestionAnswering": f"{prefix}ForQuestionAnswering"},
                    backbone=backbone, no_split=(f"{prefix}Embeddings",), **extra)


FAMILIES.update({
    "roberta": _bert_block_family("roberta", "Roberta", "roberta"),
    "xlm-roberta": _bert_block_family("xlm-roberta", "XLMRoberta", "roberta"),
    "camembert": _bert_block_family("camembert", "Camembert", "roberta"),
    "electra": _bert_block_family("electra", "Electra", "electra", pooler=False),  # ElectraModel has no pooler
})


def family(model_type: str) -> HFFamily:
    """The family of a stock ('bert') or ticket ('tickettune_bert') model_type."""
    stock = model_type[len(PREFIX):] if model_type.startswith(PREFIX) else model_type
    if stock not in FAMILIES:
        raise ValueError(f"model_type {model_type!r}: tickettune writes Hugging Face code for "
                         f"{sorted(FAMILIES)} only")
    return FAMILIES[stock]


# --------------------------------------------------------------------------------------------------
# the two source files

def _template(name: str) -> str:
    """A template's body: its leading '# tickettune template' comment block left out."""
    text = resources.files(__package__).joinpath("hf_templates", name).read_text()
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "".join(lines)


def _header(what: str, fam: HFFamily) -> str:
    return (f'"""{what} of a tickettune ticket ({fam.model_type} family, ticket format {CODE_VERSION}).\n\n'
            f"Written by tickettune; needs only torch and transformers. The ticket is a {fam.model_type} model\n"
            f"whose layers keep different numbers of attention heads and FFN neurons (EarlyBERT's\n"
            f"structured pruning): config.heads_per_layer and config.ffn_per_layer say how many.\n"
            f'"""\n')


def configuration_source(fam: HFFamily) -> str:
    return (_header("Configuration", fam)
            + f"from transformers import {fam.config_class} as FamilyConfig\n\n"
            + f'MODEL_TYPE = "{fam.ticket_model_type}"\nTICKET_FORMAT = {CODE_VERSION}\n\n\n'
            + _template("configuration.py"))


_BASE = '''

class {name}({stock}):
    """{stock} whose {encoder} keeps the ticket's heads and FFN neurons in each layer."""

    config_class = TickettuneConfig
    _no_split_modules = {no_split}
    _can_record_outputs = {{"hidden_states": TickettuneLayer}}  # output_hidden_states=True

    def __init__(self, config: TickettuneConfig{params}):
        super().__init__(config{args})
        self.{encoder} = TickettuneEncoder(config)
        self.post_init()
'''

_HEAD = '''

class {name}({stock}):
    """{stock} on {base}."""

    config_class = TickettuneConfig

    def __init__(self, config: TickettuneConfig):
        super().__init__(config)
        self.{backbone} = {base}(config{args})
        self.post_init()
'''


def modeling_source(fam: HFFamily) -> str:
    base = fam.class_name("AutoModel")
    classes = [_BASE.format(name=base, stock=fam.base_class, encoder=fam.encoder, params=fam.base_params,
                            args=fam.base_args, no_split=repr([*fam.no_split, "TickettuneLayer"]))]
    classes += [_HEAD.format(name=fam.class_name(auto), stock=stock, base=base, backbone=fam.backbone,
                             args=fam.head_base_args.format(backbone=fam.backbone))
                for auto, stock in fam.heads.items()]
    names = ",\n".join(f"    {n}" for n in sorted({"GradientCheckpointingLayer", fam.base_class, *fam.heads.values()}))
    return (_header("Model code", fam)
            + "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
            + f"from transformers import (\n{names},\n)\n"
            + "from transformers.activations import ACT2FN\n"
            + "from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions\n\n"
            + "from .configuration_tickettune import TickettuneConfig\n\n\n"
            + _template(fam.layers_template) + "".join(classes))


def write_code(folder: str | Path, model_type: str) -> None:
    """Write configuration_tickettune.py and modeling_tickettune.py into `folder`."""
    fam = family(model_type)
    folder = Path(folder)
    (folder / CONFIG_FILE).write_text(configuration_source(fam))
    (folder / MODELING_FILE).write_text(modeling_source(fam))


# --------------------------------------------------------------------------------------------------
# config.json

def ticket_config(stock_config: dict[str, Any], layout: dict, head: str) -> dict[str, Any]:
    """config.json of a ticket: the stock config (its to_dict()) with the layout, model_type, auto_map
    and architectures of the generated code."""
    fam = family(stock_config["model_type"])
    if head not in AUTO_CLASSES:
        raise ValueError(f"no Hugging Face Auto class for head {head!r}; known: {sorted(AUTO_CLASSES)}")
    out = {k: v for k, v in stock_config.items() if k not in ("tickettune", "auto_map", "architectures")}
    out.update(model_type=fam.ticket_model_type, ticket_format=CODE_VERSION,
               heads_per_layer=[int(h) for h in layout["heads_per_layer"]],
               ffn_per_layer=[int(f) for f in layout["ffn_per_layer"]], pre_ln=bool(layout["pre_ln"]),
               architectures=[fam.class_name(AUTO_CLASSES[head])],
               auto_map={"AutoConfig": f"{CONFIG_FILE[:-3]}.TickettuneConfig",
                         **{a: f"{MODELING_FILE[:-3]}.{fam.class_name(a)}" for a in fam.auto_classes}})
    return out


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict | None]:
    """(the stock family's config dict, the ticket layout or None) of a config.json: a ticket's
    (format 2: model_type tickettune_*, layout keys at the top), an older ticket's (``tickettune`` key)
    or a plain checkpoint's."""
    config = dict(config)
    layout = config.pop("tickettune", None)
    if str(config.get("model_type", "")).startswith(PREFIX):
        config["model_type"] = family(config["model_type"]).model_type
        missing = [k for k in LAYOUT_KEYS if k not in config]
        if missing:
            raise ValueError(f"a {config.get('model_type')} ticket's config.json lacks {missing}")
        layout = {k: config.pop(k) for k in LAYOUT_KEYS}
    for k in ("auto_map", "ticket_format", *LAYOUT_KEYS):
        config.pop(k, None)
    return config, layout


def config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"

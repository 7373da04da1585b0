"""Model code that makes a ticket an ordinary Hugging Face model (`trust_remote_code=True`).

A ticket keeps different numbers of heads and FFN neurons in each layer, which no stock transformers
class can build. So every ticket folder carries two small files, written from the templates in
``hf_templates/``:

* ``configuration_tickettune.py``: the family's stock config (``BertConfig``) plus ``heads_per_layer``,
  ``ffn_per_layer`` and ``pre_ln``; ``model_type`` becomes ``tickettune_<family>``, so that
  transformers asks for ``trust_remote_code`` instead of building a dense model of the wrong shapes.
* ``modeling_tickettune.py``: one subclass per stock class of the family (``BertModel``,
  ``BertForSequenceClassification``, ``BertForMaskedLM``, ``BertForQuestionAnswering``) whose layer
  stack is replaced by one built at the ticket's widths, with the same parameter names as tickettune's
  model. The stock classes keep everything else: embeddings, masks, heads (and for ModernBERT the
  rotary tables, the sliding-window masks and the final norm).

``config.json`` gets an ``auto_map`` naming all of them, so an MLM ticket also loads as a classifier
(new head) for fine-tuning. The code depends on torch and transformers only. Which code a ticket
carries is fixed by the ticket format version (`CODE_VERSION`, ``ticket_format`` in config.json).

What the code needs to know of a family (`HFFamily`) is read from its adapter (model/families/: the
``hf_*`` attributes, the backbone attribute, the FFN width's config key, pre-LN, and the stock class
names from transformers' Auto tables), so a new family is its adapter module and, if its blocks are not
laid out like BERT's, one layer template; a new head is one entry in `AUTO_CLASSES` and in `HEADS`. A
layer template (``hf_templates/*_layers.py``: BERT's block, DistilBERT's, ModernBERT's) may start with
its own imports and defines ``TickettuneLayer`` (one block) and ``TickettuneEncoder(config)``, which
takes the place of the stock base model's attribute `HFFamily.encoder`; the header gives it torch,
``F``, ``nn``, ``ACT2FN``, ``GradientCheckpointingLayer`` and ``TickettuneConfig``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..model import families as model_families
from ..model.heads import HEADS
from ..model.layout import PREFIX, stock_model_type

CODE_VERSION = 2  # == ticket.VERSION: the ticket format that introduced this code
CONFIG_FILE = "configuration_tickettune.py"
MODELING_FILE = "modeling_tickettune.py"
CODE_FILES = (CONFIG_FILE, MODELING_FILE)

# tickettune head -> the transformers Auto class that loads it
AUTO_CLASSES = {
    "classification": "AutoModelForSequenceClassification",
    "regression": "AutoModelForSequenceClassification",
    "mlm": "AutoModelForMaskedLM",
    "qa": "AutoModelForQuestionAnswering",
}


@dataclass(frozen=True)
class HFFamily:
    """What the generated code needs to know of one stock transformers family.

    The generated base model subclasses `base_class` and replaces its layer stack (attribute `encoder`)
    by TickettuneEncoder, from `layers_template`; each generated head subclasses the stock head and
    replaces its base model (attribute `backbone`) by the generated one, built with `head_base_args`.
    `ffn_key` is the stock config's name for the dense FFN width; `pre_ln` the family's own arrangement
    (the default of a TickettuneConfig built without a layout).
    """

    model_type: str  # the stock config's model_type: "bert"
    config_class: str  # "BertConfig"
    base_class: str  # "BertModel" (what AutoModel loads)
    heads: dict[str, str]  # Auto class -> stock head class
    backbone: str  # attribute of a head model that holds the base model: "bert"
    encoder: str  # attribute of the base model that holds the layer stack: "encoder"
    layers_template: str  # "bert_layers.py"
    no_split: tuple[str, ...]  # the stock _no_split_modules besides its layer class: ("BertEmbeddings",)
    ffn_key: str  # "intermediate_size"
    pre_ln: bool
    base_params: str = ", add_pooling_layer: bool = True"  # the base class's extra __init__ parameters
    base_args: str = ", add_pooling_layer=add_pooling_layer"  # ... passed on to the stock base class
    head_base_args: str = ", add_pooling_layer=self.{backbone}.pooler is not None"  # ... as the stock head chose

    @property
    def auto_classes(self) -> tuple[str, ...]:
        return ("AutoModel", *self.heads)

    @property
    def ticket_model_type(self) -> str:
        return PREFIX + self.model_type

    def class_name(self, auto_class: str) -> str:
        """The generated class for an Auto class: 'Tickettune' + the stock class."""
        return "Tickettune" + (self.base_class if auto_class == "AutoModel" else self.heads[auto_class])


_NO_POOLER = {"base_params": "", "base_args": "", "head_base_args": ""}  # a base model without a pooler


def from_adapter(model_type: str, adapter: model_families.Family) -> HFFamily:
    """The HFFamily of `model_type`, from what its family adapter says (see model/families/base.py)."""
    if not adapter.hf_template:
        raise ValueError(f"the {adapter.name} adapter names no layer template (hf_template) in hf_templates/")
    config_class = adapter.stock_name("config", model_type)
    heads: dict[str, str] = {}
    for head in HEADS:  # classification and regression share one Auto class
        heads.setdefault(AUTO_CLASSES[head], adapter.stock_name(head, model_type))
    prefix = config_class.removesuffix("Config")
    return HFFamily(
        model_type,
        config_class,
        adapter.stock_name("base", model_type),
        heads,
        backbone=adapter.backbone_attr,
        encoder=adapter.hf_layer_stack or adapter.encoder_attr,
        layers_template=adapter.hf_template,
        no_split=tuple(n.format(prefix=prefix) for n in adapter.hf_no_split),
        ffn_key=adapter.width_keys[2],
        pre_ln=adapter.native_pre_ln,
        **({} if adapter.hf_pooler else _NO_POOLER),
    )


FAMILIES: dict[str, HFFamily] = {t: from_adapter(t, a) for t, a in model_families.FAMILIES.items()}


def family(model_type: str) -> HFFamily:
    """The family of a stock ('bert') or ticket ('tickettune_bert') model_type."""
    stock = stock_model_type(model_type)
    if stock not in FAMILIES:
        raise ValueError(f"model_type {model_type!r}: tickettune writes Hugging Face code for {sorted(FAMILIES)} only")
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


def _split_imports(body: str) -> tuple[str, str]:
    """(the import lines a template starts with, the rest)."""
    lines = body.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith(("from ", "import ")):
        n += 1
    return "".join(lines[:n]), "".join(lines[n:]).lstrip("\n")


def _header(what: str, fam: HFFamily) -> str:
    return (
        f'"""{what} of a tickettune ticket ({fam.model_type} family, ticket format {CODE_VERSION}).\n\n'
        f"Written by tickettune; needs only torch and transformers. The ticket is a {fam.model_type} model\n"
        f"whose layers keep different numbers of attention heads and FFN neurons (EarlyBERT's\n"
        f"structured pruning): config.heads_per_layer and config.ffn_per_layer say how many.\n"
        f'"""\n'
    )


def configuration_source(fam: HFFamily) -> str:
    return (
        _header("Configuration", fam)
        + f"from transformers import {fam.config_class} as FamilyConfig\n\n"
        + f'MODEL_TYPE = "{fam.ticket_model_type}"\nTICKET_FORMAT = {CODE_VERSION}\n'
        + f'FFN_KEY = "{fam.ffn_key}"\nPRE_LN = {fam.pre_ln}\n\n\n'
        + _template("configuration.py")
    )


_BASE = '''

class {name}({stock}):
    """{stock} with the ticket's heads and FFN neurons in each layer (its .{encoder} replaced)."""

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
    classes = [
        _BASE.format(
            name=base,
            stock=fam.base_class,
            encoder=fam.encoder,
            params=fam.base_params,
            args=fam.base_args,
            no_split=repr([*fam.no_split, "TickettuneLayer"]),
        )
    ]
    classes += [
        _HEAD.format(
            name=fam.class_name(auto),
            stock=stock,
            base=base,
            backbone=fam.backbone,
            args=fam.head_base_args.format(backbone=fam.backbone),
        )
        for auto, stock in fam.heads.items()
    ]
    names = ",\n".join(f"    {n}" for n in sorted({"GradientCheckpointingLayer", fam.base_class, *fam.heads.values()}))
    own_imports, layers = _split_imports(_template(fam.layers_template))
    return (
        _header("Model code", fam)
        + "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
        + f"from transformers import (\n{names},\n)\n"
        + "from transformers.activations import ACT2FN\n"
        + own_imports
        + "\n"
        + "from .configuration_tickettune import TickettuneConfig\n\n\n"
        + layers
        + "".join(classes)
    )


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
    out.update(
        model_type=fam.ticket_model_type,
        ticket_format=CODE_VERSION,
        heads_per_layer=[int(h) for h in layout["heads_per_layer"]],
        ffn_per_layer=[int(f) for f in layout["ffn_per_layer"]],
        pre_ln=bool(layout["pre_ln"]),
        architectures=[fam.class_name(AUTO_CLASSES[head])],
        auto_map={
            "AutoConfig": f"{CONFIG_FILE[:-3]}.TickettuneConfig",
            **{a: f"{MODELING_FILE[:-3]}.{fam.class_name(a)}" for a in fam.auto_classes},
        },
    )
    return out


def config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"

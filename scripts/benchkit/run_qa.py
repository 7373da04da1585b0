"""HF's `run_qa` recipe for extractive QA, written here with torch + transformers + datasets only: the HF arm of
scripts/bench/qa_parity.py (its docstring has the recipe's settings)."""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict

import numpy as np
import torch

from tickettune.trainables.tasks.squad_eval import squad_scores

from .bench import hf_training_args

N_BEST, MAX_ANSWER = 20, 30


def _windows(examples: dict, tokenizer, max_length: int, stride: int):
    """run_qa's windowing: question + context, the context cut in overlapping windows padded to max_length."""
    return tokenizer(
        [q.lstrip() for q in examples["question"]],
        examples["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def hf_train_windows(examples: dict, tokenizer, max_length: int, stride: int) -> dict:
    """Windows padded to max_length with start/end token labels; [CLS] (its index) when the window's context
    does not cover the first answer from its first to its last character, or there is no answer."""
    enc = _windows(examples, tokenizer, max_length, stride)
    owner = enc.pop("overflow_to_sample_mapping")
    enc["start_positions"], enc["end_positions"] = [], []
    for w, offsets in enumerate(enc.pop("offset_mapping")):
        cls = enc["input_ids"][w].index(tokenizer.cls_token_id)
        answers = examples["answers"][owner[w]]
        context = [t for t, sid in enumerate(enc.sequence_ids(w)) if sid == 1]
        start = end = cls
        if answers["answer_start"]:
            first_char = answers["answer_start"][0]
            last_char = first_char + len(answers["text"][0])  # one past the answer
            if offsets[context[0]][0] <= first_char and offsets[context[-1]][1] >= last_char:
                start = max(t for t in context if offsets[t][0] <= first_char)  # the token the answer starts in
                end = min(t for t in context if offsets[t][1] >= last_char)  # the token it ends in
        enc["start_positions"].append(start)
        enc["end_positions"].append(end)
    return enc


def hf_eval_windows(examples: dict, tokenizer, max_length: int, stride: int) -> dict:
    """Windows padded to max_length, each with its question id and its context tokens' character offsets
    (None for every other token)."""
    enc = _windows(examples, tokenizer, max_length, stride)
    owner = enc.pop("overflow_to_sample_mapping")
    enc["example_id"] = [examples["id"][i] for i in owner]
    enc["offset_mapping"] = [
        [o if sid == 1 else None for o, sid in zip(offs, enc.sequence_ids(w))]
        for w, offs in enumerate(enc["offset_mapping"])
    ]
    return enc


def hf_answers(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    example_ids: list[str],
    offsets: list,
    contexts: dict[str, str],
    n_best: int = N_BEST,
    max_answer: int = MAX_ANSWER,
) -> dict[str, str]:
    """run_qa's v1 post-processing: over a question's windows, the `n_best` highest start and end logits are
    paired; a pair counts when both tokens are context tokens, end >= start and it spans <= `max_answer` tokens;
    the highest start + end logit wins and its characters are the answer ("" when no pair counts)."""
    windows = defaultdict(list)
    for w, qid in enumerate(example_ids):
        windows[qid].append(w)
    answers = {}
    for qid, ws in windows.items():
        candidates = []
        for w in ws:
            offs = offsets[w]
            top_starts = np.argsort(start_logits[w])[-1 : -n_best - 1 : -1]
            top_ends = np.argsort(end_logits[w])[-1 : -n_best - 1 : -1]
            for s in top_starts:
                for e in top_ends:
                    if s >= len(offs) or e >= len(offs) or offs[s] is None or offs[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer:
                        continue
                    candidates.append((start_logits[w][s] + end_logits[w][e], offs[s][0], offs[e][1]))
        if candidates:
            _, lo, hi = max(candidates, key=lambda c: c[0])
            answers[qid] = contexts[qid][lo:hi]
        else:
            answers[qid] = ""
    return answers


def arm_hf(args, seed: int, train_ds, dev_ds) -> dict:
    """HF Trainer with run_qa's recipe on the same questions."""
    from datasets import Dataset
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        Trainer,
        default_data_collator,
    )

    from tickettune.trainables.model.build import model_path
    from tickettune.trainables.training.precision import Precision

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path(args.model))
    cols = train_ds.column_names
    train_feats = train_ds.map(
        hf_train_windows,
        batched=True,
        remove_columns=cols,
        desc="run_qa train windows",
        fn_kwargs={"tokenizer": tokenizer, "max_length": args.max_length, "stride": args.doc_stride},
    )
    dev_feats = dev_ds.map(
        hf_eval_windows,
        batched=True,
        remove_columns=cols,
        desc="run_qa eval windows",
        fn_kwargs={"tokenizer": tokenizer, "max_length": args.max_length, "stride": args.doc_stride},
    )
    model_inputs = Dataset.from_dict(
        {k: dev_feats[k] for k in dev_feats.column_names if k not in ("example_id", "offset_mapping")}
    )
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_pretrained(model_path(args.model), attn_implementation="sdpa")
    amp = Precision.of(args.precision)
    with tempfile.TemporaryDirectory() as out:
        targs = hf_training_args(
            out,
            batch_size=args.batch_size,
            lr=args.lr,
            epochs=args.epochs,
            amp=amp,
            seed=seed,
            max_steps=args.max_steps or -1,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=train_feats, data_collator=default_data_collator)
        trained = trainer.train()
        start_logits, end_logits = trainer.predict(model_inputs).predictions
    predictions = hf_answers(
        start_logits,
        end_logits,
        dev_feats["example_id"],
        dev_feats["offset_mapping"],
        dict(zip(dev_ds["id"], dev_ds["context"])),
    )
    metrics = squad_scores(predictions, golds_of(dev_ds), v2=False)
    return {
        "train_seconds": float(trained.metrics["train_runtime"]),
        "total_seconds": time.perf_counter() - t0,
        "steps": int(trained.global_step),
        "train_windows": len(train_feats),
        **metrics,
    }


def golds_of(ds) -> dict[str, list[str]]:
    return {qid: a["text"] for qid, a in zip(ds["id"], ds["answers"])}

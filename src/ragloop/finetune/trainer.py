"""Training: sentence-transformers' trainer for full weights or LoRA, and a linear query
adapter for ``query_only``. Runs inside the training worker process."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragloop.core.embedding.query_adapter import ADAPTER_FILE
from ragloop.core.errors import InvalidInputError
from ragloop.finetune.jobspec import TrainRow
from ragloop.finetune.options import RetrainOptions

#: (progress 0..1, message, loss or None) -> True to stop (cancelled).
Report = Callable[[float, str, float | None], bool]


def build_dataset(rows: Sequence[TrainRow], loss: str, seed: int) -> Any:
    """The ``datasets.Dataset`` a loss expects, from (anchor, positive[, negative]) rows."""
    from datasets import Dataset

    if loss == "tsdae":
        texts = list(dict.fromkeys(r["positive"] for r in rows))
        rng = random.Random(seed)
        return Dataset.from_dict(
            {"damaged": [delete_words(t, rng) for t in texts], "original": texts}
        )
    if loss == "online-contrastive":
        a, b, label = [], [], []
        for r in rows:
            a.append(r["anchor"])
            b.append(r["positive"])
            label.append(1)
            if r.get("negative"):
                a.append(r["anchor"])
                b.append(r["negative"])
                label.append(0)
        return Dataset.from_dict({"sentence1": a, "sentence2": b, "label": label}).shuffle(seed)
    with_neg = [r for r in rows if r.get("negative")]
    if loss == "triplet":
        if not with_neg:
            raise InvalidInputError("triplet loss needs hard negatives; none could be mined")
        rows = with_neg
    cols: dict[str, list[str]] = {
        "anchor": [r["anchor"] for r in rows],
        "positive": [r["positive"] for r in rows],
    }
    if loss == "triplet":
        cols["negative"] = [r["negative"] for r in rows]
    elif with_neg:
        # MNRL needs the negative column on every row or none: a row the miner found nothing
        # for gets another row's positive (a random, easy negative) rather than every row
        # losing its hard one.
        cols["negative"] = _negatives_for_all(rows, random.Random(seed))
    return Dataset.from_dict(cols)


def _negatives_for_all(rows: Sequence[TrainRow], rng: random.Random) -> list[str]:
    """Each row's mined negative, or the positive of a random row with another positive text."""
    out = []
    for r in rows:
        neg = r.get("negative")
        if not neg:
            for _ in range(8):
                other = rows[rng.randrange(len(rows))]
                if other["positive"] != r["positive"]:
                    neg = other["positive"]
                    break
            else:
                neg = next((o["positive"] for o in rows if o["positive"] != r["positive"]), "")
        out.append(neg)
    return out


def delete_words(text: str, rng: random.Random, ratio: float = 0.6) -> str:
    """TSDAE's noise: drop each word with probability ``ratio``, keeping at least one.

    (sentence-transformers' own noise function needs NLTK's tokenizer data, a download.)
    """
    words = text.split()
    kept = [w for w in words if rng.random() >= ratio]
    return " ".join(kept or [rng.choice(words)] if words else [])


def make_loss(model: Any, options: RetrainOptions, base_path: str) -> Any:
    """The sentence-transformers loss object for ``options.loss``."""
    from sentence_transformers.sentence_transformer import losses

    if options.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model)
    if options.loss == "matryoshka":
        dims = [d for d in options.matryoshka_dims if d <= model.get_embedding_dimension()]
        return losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), dims)
    if options.loss == "triplet":
        return losses.TripletLoss(model)
    if options.loss == "online-contrastive":
        return losses.OnlineContrastiveLoss(model)
    return losses.DenoisingAutoEncoderLoss(
        model, decoder_name_or_path=base_path, tie_encoder_decoder=True
    )


def train_full(
    model: Any,
    rows: Sequence[TrainRow],
    options: RetrainOptions,
    out_dir: Path,
    base_path: str,
    use_bf16: bool,
    report: Report,
    device: str = "cpu",
) -> dict[str, Any]:
    """Fine-tune ``model`` (all weights, or LoRA adapters merged afterwards) and save it."""
    import tempfile

    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import TrainerCallback

    dataset = build_dataset(rows, options.loss, options.seed)
    if options.lora:
        from peft import LoraConfig, TaskType

        model.add_adapter(
            LoraConfig(
                task_type=TaskType.FEATURE_EXTRACTION,
                r=16,
                lora_alpha=32,
                lora_dropout=0.05,
                target_modules=["query", "key", "value", "dense"],
            )
        )
    loss = make_loss(model, options, base_path)
    restore = set_attention_dropout(model, options.attention_dropout)
    history: list[dict[str, float]] = []

    class Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            value = (logs or {}).get("loss")
            if value is not None:
                history.append({"step": state.global_step, "loss": float(value)})
            frac = state.global_step / max(state.max_steps, 1)
            if report(frac, f"training step {state.global_step}/{state.max_steps}", value):
                control.should_training_stop = True

    sampler = (
        BatchSamplers.NO_DUPLICATES
        if options.loss in ("mnrl", "matryoshka")
        else BatchSamplers.BATCH_SAMPLER
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=options.epochs,
            per_device_train_batch_size=options.batch_size,
            learning_rate=options.learning_rate * (10 if options.lora else 1),
            warmup_ratio=0.1,
            bf16=use_bf16,
            use_cpu=device == "cpu",
            batch_sampler=sampler,
            logging_steps=5,
            save_strategy="no",
            report_to=[],
            seed=options.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[Progress()]
        )
        result = trainer.train()
    restore()
    if options.lora:
        model = merge_lora(model, base_path)
    model.save(str(out_dir))
    return {
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "loss_history": history[-200:],
        "examples": len(dataset),
    }


#: Config fields that hold the attention-probability dropout, by architecture family.
_ATTN_DROPOUT_FIELDS = ("attention_probs_dropout_prob", "attention_dropout")


def set_attention_dropout(model: Any, p: float | None) -> Callable[[], None]:
    """Set the dropout on attention probabilities for training; returns an undo for the config.

    On CPU that dropout draws a random mask over every (batch, head, token, token) score, which
    measured 39% of a MiniLM training step at 256 tokens (and it keeps SDPA off its fused path);
    with it off a step took 2.2 s instead of 4.5 s. Hidden-state dropout, cheap by comparison,
    stays. ``p=None`` leaves the model as it is. The undo puts the config's value back so the
    saved model's config is the one it was loaded with.
    """
    import torch

    if p is None:
        return lambda: None
    auto = model[0].auto_model
    saved = {f: getattr(auto.config, f) for f in _ATTN_DROPOUT_FIELDS if hasattr(auto.config, f)}
    for field_name in saved:
        setattr(auto.config, field_name, p)
    for name, module in auto.named_modules():
        # BERT-likes: encoder.layer.N.attention.self.dropout (the hidden-state one is .output.)
        if isinstance(module, torch.nn.Dropout) and name.endswith(("self.dropout", "attn_dropout")):
            module.p = p

    def undo() -> None:
        for field_name, value in saved.items():
            setattr(auto.config, field_name, value)

    return undo


def merge_lora(model: Any, base_path: str) -> Any:
    """Fold trained LoRA weights into a plain copy of the base model, so serving needs no peft."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from sentence_transformers import SentenceTransformer

    auto = model[0].auto_model
    for module in auto.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    merged = {
        k.replace(".base_layer", ""): v for k, v in auto.state_dict().items() if "lora_" not in k
    }
    plain = SentenceTransformer(base_path, device="cpu", local_files_only=True)
    target: Any = plain[0].auto_model
    target.load_state_dict(merged)
    return plain


def train_query_adapter(
    queries: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray | None,
    options: RetrainOptions,
    out_dir: Path,
    report: Report,
) -> dict[str, Any]:
    """Learn ``W`` (from the identity) so that ``normalise(W q)`` ranks each positive first
    against in-batch and hard negatives; the document side is untouched."""
    import torch

    torch.manual_seed(options.seed)
    d = queries.shape[1]
    w = torch.nn.Parameter(torch.eye(d))
    opt = torch.optim.Adam([w], lr=5e-3)
    q_all = torch.from_numpy(queries)
    p_all = torch.from_numpy(positives)
    n_all = torch.from_numpy(negatives) if negatives is not None else None
    order = list(range(len(q_all)))
    steps = max(1, int(options.epochs * max(len(order) // options.batch_size, 1)))
    rng = random.Random(options.seed)
    history = []
    for step in range(steps):
        if step % max(len(order) // options.batch_size, 1) == 0:
            rng.shuffle(order)
        start = (step * options.batch_size) % max(len(order) - options.batch_size + 1, 1)
        idx = torch.tensor(order[start : start + options.batch_size])
        q = torch.nn.functional.normalize(q_all[idx] @ w.T, dim=1)
        docs = p_all[idx] if n_all is None else torch.cat([p_all[idx], n_all[idx]])
        logits = 20.0 * q @ docs.T
        loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(idx)))
        loss = loss + 0.01 * torch.sum((w - torch.eye(d)) ** 2)  # stay near the identity
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = float(loss.detach())
        history.append({"step": step + 1, "loss": value})
        if report((step + 1) / steps, f"training adapter step {step + 1}/{steps}", value):
            break
    np.save(out_dir / ADAPTER_FILE, w.detach().numpy().astype(np.float32))
    (out_dir / "adapter.json").write_text(json.dumps({"kind": "query_adapter", "dim": d}))
    return {
        "steps": len(history),
        "train_loss": history[-1]["loss"] if history else 0.0,
        "loss_history": history[-200:],
        "examples": len(order),
    }

"""Training pairs from every source, counted in a manifest, with a held-out split for the gate.

Sources (each switchable): ``labelled`` (feedback that named the right chunk), ``pseudo``
(misses judged by the configured LLM; skipped without one), ``synthetic`` (questions per
sampled chunk, LLM or offline), and hard negatives mined from the current index.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragloop.core.generators.base import LLMGenerator
from ragloop.core.retriever import search
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.storage.querylog import LABELLED_SOURCES, QueryLog
from ragloop.eval.model_mode import embed_in_batches
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pseudo import judge
from ragloop.finetune.synthetic import SyntheticQuestions

#: Held-out questions the gate wants at least; labelled pairs first, synthetic ones top it up.
MIN_HELDOUT = 60
HELDOUT_FRACTION = 0.2
#: ...but no more than this: 300 questions already tell a +0.01 nDCG change from noise, and
#: every labelled pair beyond that is worth more in training.
MAX_HELDOUT = 300
#: A negative must score at least this much below the positive (near-duplicates are not
#: negatives) and come from another document.
NEGATIVE_MARGIN = 0.05
PSEUDO_MAX_MISSES = 300

ProgressFn = Callable[[str, float], None]


@dataclass
class Pair:
    """A question and the chunk that answers it (plus a hard negative chunk, if mined)."""

    question: str
    chunk_id: str
    source: str
    negative_id: str | None = None
    #: The question is a span of the chunk (offline title/crop): train against the chunk with
    #: that span removed (inverse cloze), or the pair only teaches copying words.
    masked: bool = False


def mask_span(text: str, span: str) -> str:
    """``text`` with the first occurrence of ``span`` removed (whitespace tidied); ``text``
    itself when the span is absent or is nearly all of it."""
    at = text.find(span)
    if at < 0:
        return text
    rest = " ".join((text[:at] + " " + text[at + len(span) :]).split())
    return rest if len(rest.split()) >= 8 else text


@dataclass
class TrainingSet:
    """Pairs to train on, held-out (question, gold documents) for the gate, and counts."""

    train: list[Pair]
    heldout: list[tuple[str, list[str]]]
    manifest: dict[str, Any] = field(default_factory=dict)


def build_training_set(
    rt: Runtime,
    querylog: QueryLog,
    options: RetrainOptions,
    llm: LLMGenerator | None,
    progress: ProgressFn | None = None,
) -> TrainingSet:
    """Collect pairs from the enabled sources and split off the gate's held-out questions."""
    say = progress or (lambda message, fraction: None)
    rng = random.Random(options.seed)
    index = rt.active_index()
    manifest: dict[str, Any] = {"sources": {}}
    labelled: list[Pair] = []
    if "labelled" in options.sources:
        rows = querylog.pairs(LABELLED_SOURCES)
        known = rt.catalog.get_chunks([r["chunk_id"] for r in rows])
        kept = [r for r in rows if r["chunk_id"] in known]
        labelled = [Pair(r["question"], r["chunk_id"], "labelled") for r in kept]
        manifest["sources"]["labelled"] = len(labelled)
        origin = Counter(r["source"] for r in kept)
        manifest["labelled_origin"] = {name: origin.get(name, 0) for name in LABELLED_SOURCES}
    pseudo: list[Pair] = []
    if "pseudo" in options.sources:
        if llm is None:
            manifest["sources"]["pseudo"] = "skipped: no LLM generator configured"
        else:
            say("pseudo-labelling misses", 0.02)
            pseudo = pseudo_label(rt, index, querylog, llm)
            manifest["sources"]["pseudo"] = len(pseudo)
    synthetic: list[Pair] = []
    if "synthetic" in options.sources:
        say("synthetic questions", 0.04)
        synthetic, method = synthetic_pairs(rt, options, llm, rng)
        manifest["sources"]["synthetic"] = len(synthetic)
        manifest["synthetic_method"] = method
    train, heldout = split_heldout(labelled, pseudo, synthetic, options, rng)
    if options.shuffle_positives:
        # Deliberately wrong pairs, for testing that the gate rejects a bad model.
        positives = [p.chunk_id for p in train]
        rng.shuffle(positives)
        for p, cid in zip(train, positives, strict=True):
            p.chunk_id = cid
        manifest["shuffled_positives"] = True
    if options.hard_negatives and train:
        say("mining hard negatives", 0.08)
        manifest["hard_negatives"] = mine_negatives(rt, index, train)
    manifest["train_pairs"] = len(train)
    manifest["heldout_queries"] = len(heldout)
    return TrainingSet(train, heldout, manifest)


def pseudo_label(rt: Runtime, index: ActiveIndex, log: QueryLog, llm: LLMGenerator) -> list[Pair]:
    """Confident LLM judgements for recent unlabelled misses (stored as ``pseudo`` pairs)."""
    labelled_queries = {r["query_id"] for r in log.pairs()}
    misses, _ = log.find(misses_only=True, limit=PSEUDO_MAX_MISSES)
    out = []
    for rec in misses:
        if rec.id in labelled_queries:
            continue
        hits = search(index, rt.store, rt.catalog, rec.question, k=30)
        chunk_id = judge(llm, rec.question, hits)
        if chunk_id is not None:
            log.add_pair(rec.question, chunk_id, "pseudo", rec.id)
            out.append(Pair(rec.question, chunk_id, "pseudo"))
    return out


def synthetic_pairs(
    rt: Runtime, options: RetrainOptions, llm: LLMGenerator | None, rng: random.Random
) -> tuple[list[Pair], str]:
    """Questions for a seeded sample of chunks, from the cache or freshly generated."""
    firsts: list[str] = []
    others: list[str] = []
    for batch in rt.catalog.iter_chunks(5000):
        for c in batch:
            (firsts if c.seq == 0 else others).append(c.id)
    rng.shuffle(firsts)
    rng.shuffle(others)
    # Documents' first chunks first: every document gets a question before any gets two.
    ids = firsts + others
    chunks = list(rt.catalog.get_chunks(ids[: options.max_synthetic_chunks]).values())
    chunks.sort(key=lambda c: c.id)
    per_chunk = options.synthetic_per_chunk or (3 if llm is not None else 1)
    gen = SyntheticQuestions(rt.catalog.engine, llm, per_chunk)
    questions = gen.for_chunks(chunks)
    titles = {c.id: c.title.strip() for c in chunks}
    # Offline crops are masked out of their chunk (inverse cloze); a title stays in, as every
    # stored chunk carries its title line: masking it measured worse on SciFact (docs/quality.md).
    pairs = [
        Pair(q, cid, "synthetic", masked=llm is None and q != titles[cid])
        for cid, qs in questions.items()
        for q in qs
    ]
    method = gen.method + (" (cropped questions masked out of their chunk)" if llm is None else "")
    return pairs, method


def split_heldout(
    labelled: list[Pair],
    pseudo: list[Pair],
    synthetic: list[Pair],
    options: RetrainOptions,
    rng: random.Random,
) -> tuple[list[Pair], list[tuple[str, list[str]]]]:
    """Hold out labelled pairs first (they are the truth users gave), then synthetic ones."""
    if options.gate_dataset:
        return labelled + pseudo + synthetic, []
    labelled = labelled[:]
    synthetic = synthetic[:]
    rng.shuffle(labelled)
    rng.shuffle(synthetic)
    n_lab = min(int(len(labelled) * HELDOUT_FRACTION), MAX_HELDOUT) if len(labelled) >= 10 else 0
    held = labelled[:n_lab]
    need = max(0, MIN_HELDOUT - len(held))
    held_syn = synthetic[:need] if len(synthetic) > 4 * need else []
    held += held_syn
    held_questions = {p.question for p in held}
    # A held-out question never appears in training (its other chunks go with it).
    # Feedback (and judged misses) are the scarce, true signal: seen ``labelled_repeats`` times.
    weighted = (labelled[n_lab:] + pseudo) * options.labelled_repeats
    train = [p for p in weighted + synthetic[len(held_syn) :] if p.question not in held_questions]
    return train, [(p.question, [p.chunk_id]) for p in held]


def mine_negatives(rt: Runtime, index: ActiveIndex, pairs: list[Pair]) -> int:
    """Give each pair a hard negative: ranked 5-30 by the current model, from another document,
    and scoring at least ``NEGATIVE_MARGIN`` below the positive."""
    chunk_docs: dict[str, str] = {}
    found = 0
    positives = rt.catalog.get_chunks([p.chunk_id for p in pairs])
    chunk_docs.update({cid: c.document_id for cid, c in positives.items()})
    qv = embed_in_batches(index.embedder, [p.question for p in pairs], is_query=True)
    pv = rt.store.vectors(index.collection, list(positives))
    for pair, q in zip(pairs, qv, strict=True):
        pos_vec = pv.get(pair.chunk_id)
        if pos_vec is None:
            continue
        pos_score = float(np.dot(q, pos_vec))
        ranked = rt.store.query(index.collection, q, 30)
        candidates = [cid for cid, _ in ranked[5:]]
        docs = rt.catalog.get_chunks(candidates)
        for cid, score in ranked[5:]:
            chunk = docs.get(cid)
            if chunk is None or chunk.document_id == chunk_docs.get(pair.chunk_id):
                continue
            if score <= pos_score - NEGATIVE_MARGIN:
                pair.negative_id = cid
                found += 1
                break
    return found

"""Training pairs from every source, counted in a manifest, with a held-out split for the gate.

Sources (each switchable): ``labelled`` (feedback that named the right chunk), ``pseudo``
(misses judged by the configured LLM; skipped without one), ``synthetic`` (questions per
sampled chunk, LLM or offline), and hard negatives mined through the serving retriever.

The gate's questions are labelled pairs held out, topped up with *gate-only* questions: one
non-copying synthetic question (a section heading or title, or an LLM's question) for each of a
set of documents that are then never trained on. A question cropped from its chunk repeats its
words, so it would favour the lexical side and any model that matches words: crops are trained
on but never judge or tune anything.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragloop.core.generators.base import LLMGenerator
from ragloop.core.progress import ProgressFn
from ragloop.core.records import TITLE_SEPARATOR, ChunkRecord, section_heading
from ragloop.core.retriever import search
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.storage.querylog import FEEDBACK_SOURCE, LABELLED_SOURCES, QueryLog
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.pseudo import judge
from ragloop.finetune.synthetic import SyntheticQuestions

#: Held-out questions the gate aims for; labelled pairs first, gate-only questions top it up.
#: (``RetrainOptions.min_gate_questions``, default 30, is the fewest a decision may rest on.)
MIN_HELDOUT = 60
HELDOUT_FRACTION = 0.2
#: ...but no more than this: 300 questions already tell a +0.01 nDCG change from noise, and
#: every labelled pair beyond that is worth more in training.
MAX_HELDOUT = 300
#: A negative must score at least this much below the positive (near-duplicates are not
#: negatives) and come from another document.
NEGATIVE_MARGIN = 0.05
NEGATIVE_DEPTH = 30
PSEUDO_MAX_MISSES = 300
#: Building the set reports ``(stage, step, PAIR_STEPS)``: pseudo-labelling is step 1, synthetic
#: questions 2, hard negatives 4 (the split before them is quick and not reported).
PAIR_STEPS = 5


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
    #: The chunk's document (groups a document's pairs when it is kept out for the gate).
    document_id: str | None = None
    #: A sentence cropped out of its chunk: it copies its answer's words, so it never tunes a
    #: recipe or judges a model (headings, titles and LLM questions do not copy).
    copies: bool = False

    @property
    def group(self) -> str:
        """The document, or the chunk when the document is not known."""
        return self.document_id or self.chunk_id


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
    #: Where each held-out question came from: ``labelled`` or ``synthetic`` (gate-only).
    origins: dict[str, str] = field(default_factory=dict)
    #: Labelled questions that only reached the log as feedback on a served answer: picked
    #: because serving retrieval failed them, so they judge a model but never tune a recipe.
    feedback_only: set[str] = field(default_factory=set)


def build_training_set(
    rt: Runtime,
    querylog: QueryLog,
    options: RetrainOptions,
    llm: LLMGenerator | None,
    progress: ProgressFn | None = None,
) -> TrainingSet:
    """Collect pairs from the enabled sources and split off the gate's held-out questions."""
    say = progress or (lambda stage, done, total: None)
    rng = random.Random(options.seed)
    index = rt.active_index()
    manifest: dict[str, Any] = {"sources": {}}
    labelled: list[Pair] = []
    feedback_only: set[str] = set()
    if "labelled" in options.sources:
        rows = querylog.pairs(LABELLED_SOURCES)
        known = rt.catalog.get_chunks([r["chunk_id"] for r in rows])
        kept = [r for r in rows if r["chunk_id"] in known]
        labelled = [
            Pair(
                r["question"],
                r["chunk_id"],
                "labelled",
                document_id=known[r["chunk_id"]].document_id,
            )
            for r in kept
        ]
        manifest["sources"]["labelled"] = len(labelled)
        origin = Counter(r["source"] for r in kept)
        imported = {r["question"] for r in kept if r["source"] != FEEDBACK_SOURCE}
        feedback_only = {r["question"] for r in kept} - imported
        manifest["labelled_origin"] = {name: origin.get(name, 0) for name in LABELLED_SOURCES}
    pseudo: list[Pair] = []
    if "pseudo" in options.sources:
        if llm is None:
            manifest["sources"]["pseudo"] = "skipped: no LLM generator configured"
        else:
            say("pseudo-labelling misses", 1, PAIR_STEPS)
            pseudo = pseudo_label(rt, index, querylog, llm)
            manifest["sources"]["pseudo"] = len(pseudo)
    synthetic: list[Pair] = []
    if "synthetic" in options.sources:
        say("synthetic questions", 2, PAIR_STEPS)
        synthetic, method = synthetic_pairs(rt, options, llm, rng)
        manifest["sources"]["synthetic"] = len(synthetic)
        manifest["synthetic_method"] = method
    train, heldout = split_heldout(labelled, pseudo, synthetic, options, rng)
    origins = _origins(heldout, labelled)
    if options.shuffle_positives:
        # Deliberately wrong pairs, for testing that the gate rejects a bad model.
        positives = [p.chunk_id for p in train]
        rng.shuffle(positives)
        for p, cid in zip(train, positives, strict=True):
            p.chunk_id = cid
        manifest["shuffled_positives"] = True
    if options.hard_negatives and train:
        say("mining hard negatives", 4, PAIR_STEPS)
        manifest["hard_negatives"] = mine_negatives(rt, index, train)
    manifest["train_pairs"] = len(train)
    manifest["heldout_queries"] = len(heldout)
    manifest["gate_questions"] = dict(Counter(origins.values()))
    if not options.gate_dataset and len(heldout) < options.min_gate_questions:
        manifest["gate_shortfall"] = gate_shortfall(
            options.min_gate_questions, Counter(origins.values()), len(labelled)
        )
    held_feedback = {q for q, _ in heldout if q in feedback_only}
    manifest["recipe_questions"] = len(heldout) - len(held_feedback)
    return TrainingSet(train, heldout, manifest, origins, held_feedback)


def _origins(heldout: list[tuple[str, list[str]]], labelled: list[Pair]) -> dict[str, str]:
    asked = {p.question for p in labelled}
    return {q: "labelled" if q in asked else "synthetic" for q, _ in heldout}


def gate_shortfall(needed: int, origins: Counter[str], n_labelled: int) -> str:
    """What the gate lacks, in words that say how to get it."""
    have = sum(origins.values())
    missing = needed - have
    lab, syn = origins.get("labelled", 0), origins.get("synthetic", 0)
    more_labels = max(
        math.ceil(missing / HELDOUT_FRACTION), 10 - n_labelled if n_labelled < 10 else 0
    )
    return (
        f"the gate needs {needed} questions and has {have} ({lab} held-out labelled pairs, "
        f"{syn} section headings, titles or LLM questions of documents kept out of training): "
        f"label about {more_labels} more misses (a fifth of labelled pairs is held out, from "
        f"10 on), or add about {2 * missing} documents with section headings or titles (half "
        "of them are kept out of training for the gate), or configure an LLM generator"
    )


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
    by_id = {c.id: c for c in chunks}
    pairs = [
        Pair(
            q,
            cid,
            "synthetic",
            masked=llm is None and q != titles[cid],
            document_id=by_id[cid].document_id,
            copies=llm is None and q not in _names(by_id[cid]),
        )
        for cid, qs in questions.items()
        for q in qs
    ]
    method = gen.method + (" (cropped questions masked out of their chunk)" if llm is None else "")
    return pairs, method


def _names(chunk: ChunkRecord) -> set[str]:
    """The chunk's section heading and document title, as offline questions use them."""
    return {
        section_heading(chunk.title).rstrip(" …:").strip(),
        chunk.title.partition(TITLE_SEPARATOR)[0].strip(),
    }


def split_heldout(
    labelled: list[Pair],
    pseudo: list[Pair],
    synthetic: list[Pair],
    options: RetrainOptions,
    rng: random.Random,
) -> tuple[list[Pair], list[tuple[str, list[str]]]]:
    """Hold out labelled pairs first (they are the truth users gave), then top the gate up with
    one non-copying question per gate-only document: at most half of the documents that have
    one and that no labelled or judged pair points to; no pair of a gate-only document is
    trained on."""
    if options.gate_dataset:
        return labelled + pseudo + synthetic, []
    labelled = labelled[:]
    synthetic = synthetic[:]
    rng.shuffle(labelled)
    rng.shuffle(synthetic)
    n_lab = min(int(len(labelled) * HELDOUT_FRACTION), MAX_HELDOUT) if len(labelled) >= 10 else 0
    held = labelled[:n_lab]
    need = max(0, max(MIN_HELDOUT, options.min_gate_questions) - len(held))
    told = {p.group for p in labelled + pseudo}
    first: dict[str, Pair] = {}
    for p in synthetic:
        if not p.copies and p.group not in told:
            first.setdefault(p.group, p)
    gate_only = list(first.values())[: min(need, len(first) // 2)]
    gate_groups = {p.group for p in gate_only}
    held += gate_only
    held_questions = {p.question for p in held}
    # A held-out question never appears in training (its other chunks go with it).
    # Feedback (and judged misses) are the scarce, true signal: seen ``labelled_repeats`` times.
    weighted = (labelled[n_lab:] + pseudo) * options.labelled_repeats
    rest = [p for p in synthetic if p.group not in gate_groups]
    train = [p for p in weighted + rest if p.question not in held_questions]
    return train, [(p.question, [p.chunk_id]) for p in held]


def mine_negatives(rt: Runtime, index: ActiveIndex, pairs: list[Pair]) -> int:
    """Give each pair a hard negative: ranked 5-30 by the serving retriever (``search`` with the
    active version's mode and recipe), from another document, and whose cosine with the
    question is at least ``NEGATIVE_MARGIN`` below the positive's. Questions are encoded in one
    batch and handed to ``search``."""
    chunk_docs: dict[str, str] = {}
    found = 0
    positives = rt.catalog.get_chunks([p.chunk_id for p in pairs])
    chunk_docs.update({cid: c.document_id for cid, c in positives.items()})
    qv = index.embedder.embed_many([p.question for p in pairs], is_query=True)
    pv = rt.store.vectors(index.collection, list(positives))
    for pair, q in zip(pairs, qv, strict=True):
        pos_vec = pv.get(pair.chunk_id)
        if pos_vec is None:
            continue
        pos_score = float(np.dot(q, pos_vec))
        hits = search(index, rt.store, rt.catalog, pair.question, k=NEGATIVE_DEPTH, vector=q)
        for hit in hits[5:]:
            if hit.chunk.document_id == chunk_docs.get(pair.chunk_id):
                continue
            if hit.dense_score is not None and hit.dense_score <= pos_score - NEGATIVE_MARGIN:
                pair.negative_id = hit.chunk.id
                found += 1
                break
    return found

"""Follow-up questions retrieved as typed vs condensed by the offline rule (SQuAD chains).

SQuAD's questions come in runs about one paragraph; here each run is one conversation, its
questions asked in file order. A later question is turned into a follow-up that leans on the
one before it by a fixed rule (``lean``), independent of the condenser's own word lists:

1. the words it shares with the previous question (as written in SQuAD) are its content words
   (``core.storage.lexical.STOP_WORDS`` removed) whose lower case or light stem also occurs
   there;
2. the longest run of consecutive shared words (an inner "of" allowed: "Duchy of Normandy"),
   with a "the"/"a"/"an" before it, goes: before "'s" it becomes "its"/"their" ("Emma's
   brother" -> "its brother"); after an article and before a noun-like content word (not
   ending in -ed/-ing/-ly, not "first"/"last") it is a modifier and is dropped, the article
   kept ("the Norse leader" -> "the leader"); otherwise it becomes "it", or "they"/"them"
   when its last word looks plural ("When were the Normans in Normandy?" -> "When were the
   Normans in it?"). A run right after which/what/whose/how is the thing asked for, not the
   shared topic, and is not a candidate; "many" and "much" are not content words here;
3. a question sharing no word with the previous one is a change of subject: left as is.

Each conversation's history is its earlier questions as derived (what a chat client resends)
with SQuAD's first reference answer as the assistant's reply. Groups: ``follow_ups`` (later
questions the rule above changed), ``self_contained`` (later questions it left as in SQuAD:
the condenser should leave them alone), ``topic_shift`` (each conversation's first question
asked after the previous conversation's turns, a change of paragraph: the harm case).

For each question the real retriever (``core.retriever.search``, the data dir's mode, hybrid by
default) ranks the corpus for the SQuAD question, for the question as typed, and for it
condensed by ``core.condense.RuleCondenser``; nDCG@10 over documents (a paragraph's best
chunk) against the gold paragraph. Cost: the rule's own time per question, and the retrieval
time of a rewritten question minus that of the typed one.

Usage::

    python -m benchmarks.followups                       # ingests SQuAD into a temp dir
    python -m benchmarks.followups --data-dir /tmp/squad  # reuse an ingested data dir
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import CORPORA, dataset_runtime
from benchmarks.retrieval_modes import bootstrap_diff
from ragloop.core.condense import RuleCondenser
from ragloop.core.generators.base import Turn
from ragloop.core.generators.extractive import stem
from ragloop.core.retriever import search
from ragloop.core.runtime import ActiveIndex, Runtime
from ragloop.core.storage.lexical import STOP_WORDS
from ragloop.eval.datasets import BeirDataset, load_beir
from ragloop.eval.metrics import ndcg_at_k
from ragloop.eval.search import best_per_document

K = 10
CHUNK_DEPTH = 30  # chunks read per question, collapsed to documents (paragraphs)
_TOKEN = re.compile(r"(?<=\w)'\w+|\w+")
_DETERMINERS = frozenset({"the", "a", "an", "this", "these", "those"})
_PREPOSITIONS = frozenset(
    "of in to from by with for on at about against into over under after before during".split()
)
# Before these a noun phrase is a subject ("did the Huguenots secure", "Who ... they").
_SUBJECT_BEFORE = frozenset(
    """do does did can could will would should may might must has have had is are was were
    and when where why how who what which""".split()
)
# A run after these is the asked-for noun ("which member state"): not a shared topic.
_WH_DETERMINERS = frozenset({"which", "what", "whose", "how"})
_EXTRA_STOP = frozenset({"many", "much"})


def _key(word: str) -> str:
    return stem(word.lower())


def _content(word: str) -> bool:
    low = word.lower()
    return word[0] != "'" and low not in STOP_WORDS and low not in _EXTRA_STOP


def _verbish(word: str) -> bool:
    low = word.lower()
    return low.endswith(("ed", "ing", "ly")) or low in {"first", "last", "originally"}


def _runs(words: Sequence[str], shared: set[str]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive shared words (an inner "of" allowed)."""
    is_shared = [_content(w) and _key(w) in shared for w in words]
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if not is_shared[i]:
            i += 1
            continue
        j = i + 1
        while j < len(words) and (
            is_shared[j] or (words[j].lower() == "of" and j + 1 < len(words) and is_shared[j + 1])
        ):
            j += 1
        runs.append((i, j))
        i = j
    return runs


def lean(question: str, previous: str) -> str:
    """``question`` made to lean on ``previous`` (see the module docstring); unchanged when
    they share no content word."""
    shared = {_key(w) for w in _TOKEN.findall(previous) if _content(w)}
    tokens = list(_TOKEN.finditer(question))
    words = [m.group() for m in tokens]
    runs = [
        (i, j)
        for i, j in _runs(words, shared)
        if not (i > 0 and words[i - 1].lower() in _WH_DETERMINERS)
    ]
    if not runs:
        return question
    start, end = max(runs, key=lambda r: (r[1] - r[0], -r[0]))  # longest, then first
    if start > 0 and words[start - 1].lower() in _DETERMINERS:
        start -= 1
    last = words[end - 1].lower()
    plural = last.endswith("s") and not last.endswith(("ss", "us", "is"))
    after = words[end] if end < len(words) else ""
    before = words[start - 1].lower() if start > 0 else ""
    tail = tokens[end - 1].end()
    if after == "'s" or question[tail : tail + 1] in ("'", "’"):
        pronoun = "their" if plural else "its"
        tail = tokens[end].end() if after == "'s" else tail + 1
    elif (
        words[start].lower() in _DETERMINERS
        and before not in _SUBJECT_BEFORE - {"is", "are", "was", "were"}
        and after
        and _content(after)
        and not _verbish(after)
    ):
        # "Who was the Norse leader?": the modifier goes, the article stays.
        return question[: tokens[start].end()] + question[tail:]
    elif plural:
        pronoun = "they" if not before or before in _SUBJECT_BEFORE else "them"
    else:
        pronoun = "it"
    if start == 0:
        pronoun = pronoun.capitalize()
    return question[: tokens[start].start()] + pronoun + question[tail:]


@dataclass
class Row:
    """One later question of a conversation: its three texts and their scores."""

    query_id: str
    original: str
    typed: str
    condensed: str
    scores: dict[str, float] = field(default_factory=dict)
    condense_ms: float = 0.0
    retrieve_ms: dict[str, float] = field(default_factory=dict)


def conversations(data: BeirDataset, max_turns: int) -> list[list[str]]:
    """Query ids in runs about one gold document (file order), each at most ``max_turns``."""
    runs: list[list[str]] = []
    previous_gold: frozenset[str] | None = None
    for qid in data.queries:
        gold = frozenset(data.relevant(qid))
        if not gold:
            continue
        if gold != previous_gold or len(runs[-1]) >= max_turns:
            runs.append([])
        runs[-1].append(qid)
        previous_gold = gold
    return runs


def run(rt: Runtime, dataset: Path, max_turns: int, limit: int | None) -> dict[str, Any]:
    """Every later question of every conversation, retrieved three ways."""
    data = load_beir(dataset, "test")
    index = rt.active_index()
    condenser = RuleCondenser()
    chats = conversations(data, max_turns)[:limit]
    rows: list[Row] = []
    cache: dict[str, tuple[list[str], float]] = {}

    def ranked(text: str) -> tuple[list[str], float]:
        if text not in cache:
            started = time.perf_counter()
            hits = search(index, rt.store, rt.catalog, text, CHUNK_DEPTH)
            ms = (time.perf_counter() - started) * 1000
            docs = best_per_document((h.chunk.document_id, h.score) for h in hits)
            cache[text] = ([d for d, _ in docs[:K]], ms)
        return cache[text]

    def measure(qid: str, typed: str, history: Sequence[Turn]) -> Row:
        original = data.queries[qid].text
        started = time.perf_counter()
        condensed = condenser.condense(typed, history).text
        row = Row(qid, original, typed, condensed)
        row.condense_ms = (time.perf_counter() - started) * 1000
        for name, text in (("original", original), ("typed", typed), ("condensed", condensed)):
            docs, ms = ranked(text)
            row.scores[name] = ndcg_at_k(docs, data.qrels[qid], K)
            row.retrieve_ms[name] = ms
        return row

    _warm(index, rt)
    shifts: list[Row] = []
    previous: list[Turn] = []
    for chat in chats:
        history: list[Turn] = []
        for n, qid in enumerate(chat):
            query = data.queries[qid]
            if n == 0:
                typed = query.text
                if previous:  # a new paragraph asked in the previous conversation
                    shifts.append(measure(qid, typed, previous))
            else:
                typed = lean(query.text, data.queries[chat[n - 1]].text)
                rows.append(measure(qid, typed, history))
            history.append(Turn(typed, query.answers[0] if query.answers else ""))
        previous = history
    follow = [r for r in rows if r.typed != r.original]
    same = [r for r in rows if r.typed == r.original]
    return {
        "dataset": str(dataset),
        "mode": index.retrieval,
        "model_version": index.version.version,
        "conversations": len(chats),
        "max_turns": max_turns,
        "later_questions": len(rows),
        "follow_ups": _group(follow),
        "self_contained": _group(same),
        "topic_shift": _group(shifts),
        "condense_ms": _spread([r.condense_ms for r in rows]),
        "examples": [
            {"original": r.original, "typed": r.typed, "condensed": r.condensed} for r in follow[:6]
        ],
    }


def _warm(index: ActiveIndex, rt: Runtime) -> None:
    # Model load and first-call costs are not a query's.
    for text in ("warm up", "warm up the lexical side"):
        search(index, rt.store, rt.catalog, text, CHUNK_DEPTH)


def _group(rows: Sequence[Row]) -> dict[str, Any]:
    if not rows:
        return {"questions": 0}
    mean = {
        name: round(statistics.fmean(r.scores[name] for r in rows), 4)
        for name in ("original", "typed", "condensed")
    }
    gain, low, high = bootstrap_diff(
        [r.scores["condensed"] for r in rows], [r.scores["typed"] for r in rows]
    )
    changed = [r for r in rows if r.condensed != r.typed]
    extra = [r.retrieve_ms["condensed"] - r.retrieve_ms["typed"] for r in changed]
    return {
        "questions": len(rows),
        "rewritten_by_rule": len(changed),
        "ndcg@10": mean,
        "gain": round(gain, 4),
        "gain_ci95": [round(low, 4), round(high, 4)],
        "retrieve_ms_typed": _spread([r.retrieve_ms["typed"] for r in rows]),
        "extra_retrieve_ms_when_rewritten": _spread(extra),
    }


def _spread(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "mean": round(statistics.fmean(ordered), 3),
        "p50": round(ordered[len(ordered) // 2], 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, ingest when needed, print the figures (and JSON with --out)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=CORPORA["squad"] / "beir")
    ap.add_argument("--data-dir", type=Path, default=None, help="an ingested data dir to reuse")
    ap.add_argument("--max-turns", type=int, default=5, help="questions per conversation")
    ap.add_argument("--limit", type=int, default=None, help="first N conversations only")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with dataset_runtime(args.dataset, args.data_dir, "followups-") as rt:
        started = time.perf_counter()
        result = run(rt, args.dataset, args.max_turns, args.limit)
        result["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"{result['conversations']} conversations, {result['later_questions']} later questions "
        f"({result['mode']}, model {result['model_version']}), {result['seconds']} s"
    )
    print(
        f"{'group':15s} {'n':>5s} {'rewritten':>9s} {'original':>9s} {'typed':>7s} "
        f"{'condensed':>9s} {'gain [95% CI]':>24s}"
    )
    for name in ("follow_ups", "self_contained", "topic_shift"):
        g = result[name]
        if not g["questions"]:
            continue
        m = g["ndcg@10"]
        ci = f"{g['gain']:+.4f} [{g['gain_ci95'][0]:+.4f}, {g['gain_ci95'][1]:+.4f}]"
        print(
            f"{name:15s} {g['questions']:5d} {g['rewritten_by_rule']:9d} {m['original']:9.4f} "
            f"{m['typed']:7.4f} {m['condensed']:9.4f} {ci:>24s}"
        )
    print(f"rule time per question (ms): {result['condense_ms']}")
    print(
        "extra retrieval time of a rewritten follow-up (ms): "
        f"{result['follow_ups'].get('extra_retrieve_ms_when_rewritten')}"
    )
    for ex in result["examples"]:
        print(
            f"  {ex['original']!r}\n    typed: {ex['typed']!r}\n    condensed: {ex['condensed']!r}"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

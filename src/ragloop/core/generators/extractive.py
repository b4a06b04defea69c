"""The extractive generator: no LLM, answers with the most relevant cited sentences.

It runs on the query hot path and is the fallback when a provider fails, so it is pure Python,
deterministic, and never raises. Each sentence of the top contexts is scored by the question's
content words it contains (lower-cased, stopwords dropped, lightly stemmed so "causes",
"caused" and "cause" match), each weighted by how rare it is among the candidate sentences
(an IDF over the given contexts), then scaled by the context's retrieval score. The best one
to three sentences are returned in document order, each followed by its citation ``[n]``. When
no sentence shares a content word with the question, the reply is ``NO_ANSWER`` and a plain
explanation, which the service records as a ``no_answer`` miss.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ragloop.core.generators.base import NO_ANSWER_MARKER, Context, Generator, Turn

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could d did do does doing done during each
    either else ever few for from further had has have having he her here hers him his how
    however i if in into is it its itself just ll m may me might more most much must my no
    nor not now of off on once only or other our ours out over own per please re s same shall
    she should so some such t than that the their theirs them then there these they this
    those through thus to too under until up upon us ve very via was we were what whatever
    when where whether which while who whom whose why will with within without would yes yet
    you your yours describe explain give know list mean many tell""".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_LIST_MARKER = re.compile(r"^(?:[-*+•]|\d{1,3}[.)])\s+")
# A sentence ends at . ! or ? (optionally closing a quote or bracket) before a capital or digit;
# group 1 is the whitespace between the two sentences.
_SENTENCE_BREAK = re.compile(r"[.!?][\"'”’)\]]*(\s+)(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset("e.g i.e etc vs dr mr mrs ms st no fig approx cf al".split())
#: Sentences longer than this many words are cut into windows, so a chunk without
#: punctuation (a table, a code block) cannot become one enormous "sentence".
_MAX_WORDS = 60
_MIN_WORDS = 3


def stem(word: str) -> str:
    """A light suffix-stripping stemmer: plurals, -ed, -ing and a final -e.

    Just enough that inflections of one word meet ("causes", "caused", "causing", "cause"
    all become "caus"); numbers and short words are left alone.
    """
    if len(word) <= 2 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and len(word) > 3 and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) >= 5:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and not word.endswith("eed") and len(word) >= 4:
        word = _undouble(word[:-2])
    if word.endswith("e") and len(word) > 2:
        word = word[:-1]
    return word


def _undouble(word: str) -> str:
    # "stopped" -> "stopp" -> "stop"; l, s and z often double in the stem itself ("called").
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouylsz":
        return word[:-1]
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed content words of ``text`` in order (lower-cased, stopwords removed)."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


@dataclass
class Sentence:
    """A candidate sentence: where it comes from, its content terms, and its score."""

    context: Context
    position: int
    text: str
    terms: frozenset[str]
    n_words: int
    score: float = 0.0


def split_sentences(text: str) -> list[str]:
    """Sentences of a chunk: paragraphs and list items apart, headings dropped, wraps joined."""
    blocks: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        marker = _LIST_MARKER.match(line)
        if not line or line.startswith("#") or marker:
            blocks.append([])  # a blank line, heading or list item starts a new block
        if line.startswith("#"):
            continue
        if marker:
            line = line[marker.end() :]
        if line:
            blocks[-1].append(line)
    sentences: list[str] = []
    for block in blocks:
        pieces = _split_at_breaks(" ".join(block)) if block else []
        merged: list[str] = []
        for piece in pieces:
            if merged and _ends_with_abbreviation(merged[-1]):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        for sentence in merged:
            sentences.extend(_windows(sentence.strip()))
    return [s for s in sentences if len(s.split()) >= _MIN_WORDS]


def _split_at_breaks(text: str) -> list[str]:
    pieces, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        pieces.append(text[start : match.start(1)])
        start = match.end(1)
    pieces.append(text[start:])
    return pieces


def _ends_with_abbreviation(text: str) -> bool:
    # Single capitals are not treated as initials: "vitamin C." ends sentences too often.
    return text.rsplit(" ", 1)[-1].rstrip(".").lower() in _ABBREVIATIONS


def _windows(sentence: str) -> list[str]:
    words = sentence.split()
    if len(words) <= _MAX_WORDS:
        return [sentence]
    step = _MAX_WORDS * 2 // 3
    return [" ".join(words[i : i + step]) + " …" for i in range(0, len(words), step)]


class ExtractiveGenerator(Generator):
    """Answers with the best cited sentences of the top contexts; no model, never fails."""

    name = "extractive"
    model = None

    def __init__(
        self, max_sentences: int = 3, max_contexts: int = 5, min_relative_score: float = 0.6
    ) -> None:
        self.max_sentences = max_sentences
        self.max_contexts = max_contexts
        self.min_relative_score = min_relative_score

    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        """Yield the chosen sentences one per delta, or ``NO_ANSWER`` and an explanation."""
        picked = self.select(question, contexts)
        if not picked:
            yield f"{NO_ANSWER_MARKER} {_explain_miss(question, contexts)}"
            return
        for i, cand in enumerate(picked):
            yield (" " if i else "") + _cite(cand.text, cand.context.n)

    def select(self, question: str, contexts: Sequence[Context]) -> list[Sentence]:
        """The sentences to answer with, in reading order; empty when nothing is relevant."""
        query = set(content_terms(question))
        top = sorted(contexts, key=lambda c: c.n)[: self.max_contexts]
        candidates = [
            Sentence(c, i, s, frozenset(content_terms(s)), len(s.split()))
            for c in top
            for i, s in enumerate(split_sentences(c.text))
        ]
        if not query or not candidates:
            return []
        idf = _idf(query, candidates)
        best_context = max((c.score for c in top), default=0.0)
        for cand in candidates:
            matched = query & cand.terms
            if not matched:
                continue
            title_only = (query & set(content_terms(cand.context.title))) - matched
            relevance = sum(idf[t] for t in matched) + 0.5 * sum(idf[t] for t in title_only)
            # Long sentences match more words by chance; damp them gently.
            relevance /= 1.0 + max(0, cand.n_words - 25) / 50
            weight = cand.context.score / best_context if best_context > 0 else 1.0
            cand.score = relevance * (0.6 + 0.4 * min(max(weight, 0.0), 1.0))
        ranked = sorted(
            (c for c in candidates if c.score > 0),
            key=lambda c: (-c.score, c.context.n, c.position),
        )
        chosen: list[Sentence] = []
        for cand in ranked:
            if len(chosen) == self.max_sentences:
                break
            if chosen and cand.score < self.min_relative_score * chosen[0].score:
                break
            if any(_similar(cand.terms, other.terms) for other in chosen):
                continue
            chosen.append(cand)
        # Reading order: contexts in the order their best sentence ranked, then text order.
        first_rank: dict[int, int] = {}
        for rank, cand in enumerate(chosen):
            first_rank.setdefault(cand.context.n, rank)
        return sorted(chosen, key=lambda c: (first_rank[c.context.n], c.position))


def _idf(query: set[str], candidates: Sequence[Sentence]) -> dict[str, float]:
    total = len(candidates)
    return {
        t: math.log(1.0 + total / max(1, sum(1 for c in candidates if t in c.terms))) for t in query
    }


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    # Near-duplicate sentences (chunks overlap, documents repeat) add nothing.
    return bool(a and b) and len(a & b) / len(a | b) > 0.7


def _cite(sentence: str, n: int) -> str:
    """``sentence`` with ``[n]`` before its final full stop, or after it otherwise."""
    if sentence.endswith(".") and not sentence.endswith(".."):
        return f"{sentence[:-1]} [{n}]."
    return f"{sentence} [{n}]"


def _explain_miss(question: str, contexts: Sequence[Context]) -> str:
    if not contexts:
        return "I could not find any documents for this question."
    words = list(dict.fromkeys(w for w in _WORD.findall(question.lower()) if w not in _STOPWORDS))
    if not words:
        return "I could not find anything in the documents that matches this question."
    quoted = [f'"{w}"' for w in words[:4]]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"I could not find {listed} in the documents."

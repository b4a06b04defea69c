"""The gate's retrieval, as serving retrieves: dense and lexical rankings fused by a recipe,
chunks collapsed to documents, scored per question; and the per-candidate recipe tuning.

The dense side is exact search over a model's vectors of the corpus the worker was handed; the
lexical side is the deployment's own BM25 index (``core.storage.lexical``, FTS5), or for a
foreign corpus (an admin-named BEIR gate set) the same index built in a temporary SQLite
catalog, so there is one BM25 implementation. Fusion is ``core.fusion.fuse``, the serving code.

A gate-only document's heading or title question is judged without the title it was taken
from (``jobspec.judged_untitled``): every chunk carries its title line, so otherwise it would
find its own document under any model and recipe. Such a question searches vectors of the
gate-only documents' chunk text without the title line (``with_bodies``; other chunks keep
their vectors) and the FTS5 ``text`` column only (``BODY_COLUMNS``).

Tuning picks the candidate's recipe from a small grid on the gate questions that do not depend
on serving retrieval: imported labelled pairs, gate-only headings, titles and LLM questions, an
admin-named set. Feedback on a miss is a question the current recipe failed, so it would tune
the recipe away from whatever serving does (it still judges both models). The current recipe
stays unless another wins on those questions by more than one standard error of the
per-question gain, and on fewer than ``MIN_RECIPE_QUESTIONS`` it always stays. Picking the best
of several recipes on the very questions that then judge it would flatter the candidate, so its
per-question scores are *cross-fitted*: each fold of tunable questions is scored with the
recipe chosen on the other folds; the version keeps the choice made on all of them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragloop.core.embedding.base import Embedder
from ragloop.core.fusion import FusionRecipe, Ranking, fuse
from ragloop.core.records import ChunkRecord, DocumentRecord
from ragloop.core.storage.catalog import Catalog
from ragloop.eval.datasets import BeirDataset
from ragloop.eval.metrics import DEFAULT_KS, PRIMARY_METRIC, evaluate_run, per_query
from ragloop.eval.search import ExactIndex

KS = DEFAULT_KS
#: Folds of the cross-fitted recipe choice (fewer when there are few questions).
FOLDS = 5
#: Fewer tunable questions than this keep the current recipe: a choice among the grid on a
#: handful of questions is mostly noise.
MIN_RECIPE_QUESTIONS = 20
#: The grid: dense only (weight 1), weighted at falling dense weights, then rrf. The current
#: version's own recipe is added to it, so a candidate can always keep it. Order breaks ties.
GRID_WEIGHTS = (1.0, 0.85, 0.7, 0.5, 0.3)

#: The FTS5 columns an untitled question is searched in: the chunk text, not its title.
BODY_COLUMNS = ("text",)


class LexicalSearch(Protocol):
    """(question, depth) -> lexical (chunk id, BM25) best first, at most ``depth``; ``columns``
    limits the match to those FTS5 columns (default: all)."""

    def __call__(
        self, query: str, depth: int, /, *, columns: Sequence[str] | None = None
    ) -> Ranking: ...


def recipe_grid(current: FusionRecipe) -> list[FusionRecipe]:
    """The recipes a candidate is tuned over (at the current recipe's depth), current first."""
    grid = [current]
    grid += [replace(current, method="weighted", dense_weight=w) for w in GRID_WEIGHTS]
    grid.append(replace(current, method="rrf"))
    return list(dict.fromkeys(grid))


def recipe_label(recipe: FusionRecipe) -> str:
    """A short name for reports: ``dense``, ``weighted:0.7`` or ``rrf:60``."""
    if recipe.method == "rrf":
        return f"rrf:{recipe.rrf_k}"
    return "dense" if recipe.dense_weight == 1.0 else f"weighted:{recipe.dense_weight:g}"


@dataclass
class Rankings:
    """Each gate question's dense and lexical chunk rankings, and the chunks' documents."""

    dense: Sequence[Ranking]
    lexical: Sequence[Ranking]
    doc_of: Mapping[str, str]
    gold: list[list[str]]

    def run(self, recipe: FusionRecipe | None) -> dict[str, list[str]]:
        """Document rankings per question (key: its index); ``None`` means dense retrieval."""
        out = {}
        for i, (dense, lexical) in enumerate(zip(self.dense, self.lexical, strict=True)):
            chunks = (
                [c for c, _ in dense]
                if recipe is None
                else [f.chunk_id for f in fuse(recipe, dense, lexical)]
            )
            # Fused order already carries fusion's tie-breaks: keep each document's first place.
            docs = dict.fromkeys(self.doc_of[c] for c in chunks if c in self.doc_of)
            out[str(i)] = list(docs)[: max(KS)]
        return out

    @property
    def qrels(self) -> dict[str, dict[str, int]]:
        """Gold documents per question, in ``run``'s keys."""
        return {str(i): dict.fromkeys(g, 1) for i, g in enumerate(self.gold)}


def dense_rankings(
    chunk_ids: Sequence[str],
    chunk_vecs: np.ndarray,
    query_vecs: np.ndarray,
    depth: int,
    untitled: Sequence[bool] = (),
    untitled_vecs: np.ndarray | None = None,
) -> list[Ranking]:
    """Exact top-``depth`` chunks per question by cosine (unit vectors). Questions flagged in
    ``untitled`` search ``untitled_vecs`` instead: the same chunks, gate-only documents' rows
    encoded without their title line (``with_bodies``)."""
    flags = list(untitled) or [False] * len(query_vecs)
    if any(flags) and untitled_vecs is None:
        raise ValueError("untitled questions need the chunks' untitled vectors")
    out: list[Ranking] = [[] for _ in flags]
    for vecs, side in ((chunk_vecs, False), (untitled_vecs, True)):
        rows = [i for i, flag in enumerate(flags) if flag is side]
        if rows and vecs is not None:
            found = ExactIndex(list(chunk_ids), vecs).search(query_vecs[rows], depth)
            for i, ranking in zip(rows, found, strict=True):
                out[i] = list(ranking)
    return out


def with_bodies(embedder: Embedder, vecs: np.ndarray, bodies: Mapping[int, str]) -> np.ndarray:
    """A copy of ``vecs`` whose rows in ``bodies`` are ``embedder``'s vectors of those chunks'
    text without the title line. Only those rows (the gate-only documents' chunks, a small
    set) are encoded; every other chunk keeps the vector serving has."""
    out = vecs.copy()
    if bodies:
        rows = list(bodies)
        out[rows] = embedder.embed_many([bodies[r] for r in rows], is_query=False)
    return out


def lexical_rankings(
    search: LexicalSearch | None,
    questions: Sequence[str],
    depth: int,
    known: Mapping[str, str],
    untitled: Sequence[bool] = (),
) -> list[Ranking]:
    """BM25 top-``depth`` per question, limited to ``known`` chunks (chunks ingested after the
    job's corpus was written are not in the dense side either); [] each without an index.
    Questions flagged in ``untitled`` match the chunk text only (``BODY_COLUMNS``)."""
    if search is None:
        return [[] for _ in questions]
    flags = list(untitled) or [False] * len(questions)
    return [
        [(c, s) for c, s in search(q, depth, columns=BODY_COLUMNS if bare else None) if c in known]
        for q, bare in zip(questions, flags, strict=True)
    ]


def score(rankings: Rankings, run: dict[str, list[str]]) -> tuple[dict[str, float], list[float]]:
    """All metrics, and the primary metric of each question (0 for one with no result)."""
    qrels = rankings.qrels
    name, k = PRIMARY_METRIC.split("@")
    scores = per_query(run, qrels, (int(k),), (name,))
    primary = [scores.get(str(i), {}).get(PRIMARY_METRIC, 0.0) for i in range(len(rankings.gold))]
    return evaluate_run(run, qrels, KS), primary


@dataclass
class Tuned:
    """A candidate's recipe choice: the kept recipe, its cross-fitted run, every recipe's score."""

    recipe: FusionRecipe
    run: dict[str, list[str]]
    table: dict[str, float] = field(default_factory=dict)
    folds: int = 1
    #: How many questions the choice was made on (the tunable ones).
    questions: int = 0


def _choose(per_recipe: Sequence[np.ndarray], idx: Sequence[int]) -> int:
    """The grid index to use, chosen on questions ``idx``: the current recipe (index 0) unless
    another wins there by more than one standard error of its per-question gain."""
    if len(idx) < 2:
        return 0
    rows = list(idx)
    means = [float(p[rows].mean()) for p in per_recipe]
    best = int(np.argmax(means))  # argmax keeps the first of equal means
    if best == 0:
        return 0
    gain = per_recipe[best][rows] - per_recipe[0][rows]
    stderr = float(gain.std(ddof=1)) / np.sqrt(len(rows))
    return best if float(gain.mean()) - stderr > 1e-9 else 0


def tune(
    rankings: Rankings,
    grid: Sequence[FusionRecipe],
    seed: int = 0,
    tunable: Sequence[bool] | None = None,
) -> Tuned:
    """Choose the candidate's recipe from ``grid`` (``grid[0]`` is the current one) on the
    ``tunable`` questions (default all) and cross-fit a run over them: each fold scored with
    the choice made on the other folds. Questions that may not tune (picked because serving
    retrieval failed them) are scored with the choice made on all tunable ones."""
    runs = [rankings.run(r) for r in grid]
    per_recipe = [np.asarray(score(rankings, run)[1]) for run in runs]
    n = len(rankings.gold)
    flags = list(tunable) if tunable is not None else [True] * n
    pool = [i for i in range(n) if flags[i]]
    table = {
        recipe_label(r): round(float(p[pool].mean()), 4) if pool else 0.0
        for r, p in zip(grid, per_recipe, strict=True)
    }
    if len(pool) < MIN_RECIPE_QUESTIONS:
        return Tuned(grid[0], runs[0], table, 1, len(pool))
    kept = _choose(per_recipe, pool)
    run = {str(i): runs[kept][str(i)] for i in range(n)}
    folds = min(FOLDS, len(pool) // 2)
    if folds < 2:
        return Tuned(grid[kept], run, table, 1, len(pool))
    order = pool[:]
    random.Random(seed).shuffle(order)
    for f in range(folds):
        held = set(order[f::folds])
        chosen = _choose(per_recipe, [i for i in pool if i not in held])
        run.update({str(i): runs[chosen][str(i)] for i in held})
    return Tuned(grid[kept], run, table, folds, len(pool))


@dataclass
class Comparison:
    """Both models scored on the same questions, each with its own recipe."""

    current: dict[str, float]
    candidate: dict[str, float]
    #: Per-question primary metric (the candidate's cross-fitted when its recipe was tuned).
    current_per_query: list[float]
    candidate_per_query: list[float]
    current_recipe: FusionRecipe | None
    candidate_recipe: FusionRecipe | None
    recipes: dict[str, float] | None = None
    #: The questions the candidate's recipe was chosen on (None: not tuned).
    recipe_questions: int | None = None


def compare(
    current: Rankings,
    candidate: Rankings,
    recipe: FusionRecipe | None,
    tune_recipe: bool = True,
    seed: int = 0,
    tunable: Sequence[bool] | None = None,
) -> Comparison:
    """The current model with its stored ``recipe`` against the candidate with the recipe
    tuned for it (``recipe_grid``; the stored one when not tuning); ``recipe`` None: both
    dense, as serving in dense mode."""
    cur_metrics, cur_pq = score(current, current.run(recipe))
    if recipe is not None and tune_recipe:
        tuned = tune(candidate, recipe_grid(recipe), seed, tunable)
        cand_metrics, cand_pq = score(candidate, tuned.run)
        return Comparison(
            cur_metrics,
            cand_metrics,
            cur_pq,
            cand_pq,
            recipe,
            tuned.recipe,
            tuned.table,
            tuned.questions,
        )
    cand_metrics, cand_pq = score(candidate, candidate.run(recipe))
    return Comparison(cur_metrics, cand_metrics, cur_pq, cand_pq, recipe, recipe)


class TemporaryLexical:
    """The FTS5 index over a foreign corpus (a BEIR gate set): a throwaway SQLite catalog
    holding one chunk per document, searched by the same ``SqliteFtsIndex`` as serving."""

    def __init__(self, dataset: BeirDataset, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"lexical-{uuid.uuid4().hex[:8]}.sqlite"
        self.catalog = Catalog.open(f"sqlite:///{self.path}")
        items: list[tuple[DocumentRecord, list[ChunkRecord]]] = []
        for doc_id, doc in dataset.corpus.items():
            record = DocumentRecord(doc_id, doc_id, "gate", doc.title, "json", doc_id, 0, 1)
            chunk = ChunkRecord(doc_id, doc_id, 0, doc.text, doc.title, 0, len(doc.text), 0)
            items.append((record, [chunk]))
        for start in range(0, len(items), 2000):
            self.catalog.save_documents(items[start : start + 2000], "gate")

    def search(self, query: str, depth: int, columns: Sequence[str] | None = None) -> Ranking:
        """BM25 over the gate corpus (``columns``: those FTS5 columns only)."""
        lexical = self.catalog.lexical
        return lexical.search(query, depth, columns=columns) if lexical is not None else []

    def close(self) -> None:
        """Drop the temporary catalog."""
        self.catalog.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def report_recipe(recipe: FusionRecipe | None) -> dict[str, Any] | None:
    """A recipe as the gate report carries it (None: dense retrieval, no fusion)."""
    return None if recipe is None else recipe.to_dict() | {"label": recipe_label(recipe)}

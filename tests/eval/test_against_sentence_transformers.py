"""Our model mode against sentence-transformers' InformationRetrievalEvaluator, real model.

Both sides use the bundled all-MiniLM-L6-v2 in fp32 (the evaluator never autocasts), the same
document texts (``title\\ntext``) and the same binary judgements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragloop.core.embedding.base import Embedder, EmbedderOptions
from ragloop.core.embedding.registry import default_registry
from ragloop.eval.datasets import BeirDataset, load_beir
from ragloop.eval.model_mode import evaluate_model
from tests.eval.beir_fixture import write_beir

pytestmark = pytest.mark.integration

CORPUS = [
    ("scurvy", "Scurvy", "Scurvy is a disease caused by a lack of vitamin C in the diet."),
    ("citrus", "Citrus fruit", "Lemons and limes carried on ships kept sailors healthy."),
    ("vitc", "Vitamin C", "Ascorbic acid is needed to make collagen in connective tissue."),
    ("whale", "Blue whale", "The blue whale is the largest animal known to have lived."),
    ("reef", "Coral reefs", "Warm oceans bleach corals when the water stays too hot."),
    ("volcano", "Volcanoes", "Magma that reaches the surface erupts as lava and ash."),
    ("pompeii", "Pompeii", "Vesuvius buried the Roman town of Pompeii in 79 AD."),
    ("python", "Pythons", "Pythons are large constricting snakes found in Africa and Asia."),
    ("pylang", "Python language", "Python is a programming language with dynamic typing."),
    ("rail", "Railways", "Steam locomotives pulled the first passenger trains in England."),
    ("bread", "Bread", "Yeast ferments sugars in dough and the gas makes bread rise."),
    ("sourdough", "Sourdough", "A starter of wild yeast and lactobacilli leavens sourdough."),
    ("banana", "Bananas", "Bananas are rich in potassium and grow in tropical climates."),
    ("chroma", "Chroma", "Chroma is an open-source vector database for embeddings."),
    ("hnsw", "HNSW", "Hierarchical navigable small world graphs give fast approximate search."),
]
# Some judgements are deliberately loose (a whale for coral bleaching), so rankings are imperfect
# and the metrics at small k are not all 1.
QUERIES = [
    ("q1", "Why did sailors get scurvy?", ["scurvy", "citrus"]),
    ("q2", "What does vitamin C do in the body?", ["vitc", "scurvy"]),
    ("q3", "largest animal ever", ["whale", "reef"]),
    ("q4", "Which eruption destroyed a Roman city?", ["pompeii", "volcano"]),
    ("q5", "snake species that squeeze their prey", ["python", "pylang"]),
    ("q6", "How does dough rise?", ["bread", "sourdough"]),
    ("q7", "approximate nearest neighbour index", ["hnsw", "chroma"]),
    ("q8", "fruit with a lot of potassium", ["banana", "citrus", "bread"]),
    ("q9", "dynamic programming languages", ["pylang"]),
    ("q10", "coral bleaching", ["reef", "whale", "volcano"]),
]
KS = (1, 3, 5, 10)


@pytest.fixture(scope="module")
def fp32_embedder() -> Embedder:
    return default_registry().load("all-MiniLM-L6-v2", EmbedderOptions(precision="fp32"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> BeirDataset:
    root: Path = tmp_path_factory.mktemp("real")
    write_beir(
        root,
        corpus=[{"_id": i, "title": t, "text": x} for i, t, x in CORPUS],
        queries=[{"_id": q, "text": t} for q, t, _ in QUERIES],
        qrels={"test": [(q, d, 1) for q, _, docs in QUERIES for d in docs]},
    )
    return load_beir(root)


def _st_evaluator(dataset: BeirDataset) -> Any:
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    return InformationRetrievalEvaluator(
        queries={q.id: q.text for q in dataset.queries.values()},
        corpus={d.id: d.embedding_input for d in dataset.corpus.values()},
        relevant_docs={q: dataset.relevant(q) for q in dataset.queries},
        mrr_at_k=list(KS),
        ndcg_at_k=list(KS),
        accuracy_at_k=list(KS),
        precision_recall_at_k=list(KS),
        map_at_k=[100],
        write_csv=False,
    )


def _compare(ours: dict[str, float], theirs: dict[str, float]) -> None:
    names = {"ndcg": "ndcg", "mrr": "mrr", "recall": "recall", "precision": "precision"}
    names["accuracy"] = "accuracy"
    for metric, st_name in names.items():
        for k in KS:
            assert ours[f"{metric}@{k}"] == pytest.approx(theirs[f"{st_name}@{k}"], abs=1e-6)
    # MAP@k conventions agree when no query has more than k relevant documents.
    assert ours["map@100"] == pytest.approx(theirs["map@100"], abs=1e-6)


def test_end_to_end_matches_the_sentence_transformers_evaluator(
    fp32_embedder: Any, dataset: BeirDataset
) -> None:
    ours = evaluate_model(fp32_embedder, dataset, ks=(*KS, 100), batch_size=4).metrics
    st = _st_evaluator(dataset)(fp32_embedder.model)
    theirs = {key.removeprefix("cosine_"): value for key, value in st.items()}
    _compare(ours, theirs)
    assert 0.5 < ours["ndcg@10"] < 1.0  # a real ranking, neither trivial nor broken


def test_metrics_match_sentence_transformers_on_the_same_run(
    fp32_embedder: Any, dataset: BeirDataset
) -> None:
    # The same retrieved lists handed to both metric implementations: only arithmetic differs.
    from ragloop.eval.metrics import evaluate_run
    from ragloop.eval.search import ExactIndex

    ids = list(dataset.corpus)
    docs = fp32_embedder.embed_many(
        [dataset.corpus[d].embedding_input for d in ids], is_query=False
    )
    qids = list(dataset.queries)
    queries = fp32_embedder.embed([dataset.queries[q].text for q in qids], is_query=True)
    rankings = ExactIndex(ids, docs).search(queries, 100)
    ours = evaluate_run(
        {q: [d for d, _ in r] for q, r in zip(qids, rankings, strict=True)},
        dataset.qrels,
        (*KS, 100),
    )
    st = _st_evaluator(dataset)
    hits = [[{"corpus_id": d, "score": s} for d, s in r] for r in rankings]
    raw = st.compute_metrics(hits)
    theirs = {f"{m[:-2]}@{k}": v for m, per_k in raw.items() for k, v in per_k.items()}
    _compare(ours, theirs)

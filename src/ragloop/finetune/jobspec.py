"""The protocol between a retrain job's server side (``retrain``) and its training worker.

The server fills a job directory (``JobFiles``): the spec (``job.json``), the training rows,
the corpus with the current model's stored vectors, and the gate's held-out questions. The
worker process reads them, writes the candidate's vectors and the gate's verdict back, reports
progress on the job row within its stage's span of the job's overall progress (``Stage``), and
ends with an exit code (``EXIT_OK``, ``EXIT_CANCELLED``; anything else is a failure whose log
tail goes into the job's message).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from ragloop.finetune.gate import GateResult
from ragloop.finetune.options import RetrainOptions

EXIT_OK = 0
EXIT_CANCELLED = 3
#: Characters from the end of the worker's log that a failed job's message is drawn from.
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Stage:
    """One step of a retrain job and its span of the job's overall progress (0..1)."""

    name: str
    start: float
    end: float

    def at(self, done: float, total: float = 1) -> float:
        """Overall progress once ``done`` of this stage's ``total`` is finished (4 places)."""
        return round(self.start + (self.end - self.start) * done / max(total, 1), 4)


# The server builds pairs, the worker trains, encodes the corpus and gates, the server
# re-embeds into the new collection; a query-adapter job skips encoding.
PAIRS = Stage("building training pairs", 0.0, 0.10)
TRAINING = Stage("training", 0.10, 0.70)
ENCODING = Stage("embedding corpus", 0.70, 0.90)
GATE = Stage("gate", 0.90, 0.90)
REEMBEDDING = Stage("re-embedding", 0.90, 1.0)
DONE = 1.0


class JobSpec(BaseModel):
    """What the server hands the worker: which job, versions, directories and options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    #: The candidate's version id.
    version: str
    data_dir: str
    #: The version the candidate is trained from and judged against.
    current_version: str
    #: Where the worker writes the candidate model.
    candidate_dir: str
    options: RetrainOptions
    #: The server's explicitly set settings the worker shares (``Settings.for_worker``).
    settings: dict[str, Any] = Field(default_factory=dict)


class TrainRow(TypedDict):
    """One training example (``train.jsonl``): question, positive text, optional negative."""

    anchor: str
    positive: str
    positive_id: str
    source: str
    negative: NotRequired[str]
    negative_id: NotRequired[str]


class CorpusRow(TypedDict):
    """One chunk (``corpus.jsonl``), in the row order of both vector files."""

    id: str
    doc: str
    #: What the embedder sees: the title line, then the chunk text.
    text: str
    #: The chunk text without its title line, on the chunks of gate-only documents only: their
    #: questions are judged against it (``judged_untitled``). Absent in jobs written before.
    body: NotRequired[str]


class HeldoutQuestion(TypedDict):
    """A held-out question and its gold documents (``heldout.json``)."""

    question: str
    gold: list[str]
    #: ``labelled`` (held-out feedback) or ``synthetic`` (a gate-only document's heading,
    #: title or LLM question); absent in jobs written before origins were kept.
    origin: NotRequired[str]
    #: False for a question picked because serving retrieval failed it (feedback on a miss):
    #: it judges the models but never tunes a fusion recipe (``scoring.tune``). Default True.
    tunes: NotRequired[bool]


#: Held-out origins that are real questions (users' labels, an admin-named gate set): judged
#: against the chunks as serving holds them, title line included.
TITLED_ORIGINS = frozenset({"labelled", "dataset"})


def judged_untitled(origin: str) -> bool:
    """Whether a held-out question of this origin is judged without its document's titles.

    A gate-only document's question is its heading or title (or an LLM's question about the
    chunk and its title); every chunk carries that title line, in its vector and in the FTS5
    ``title`` column, so judged with it the question would find its own document under any
    model. Such questions are judged against the chunk text alone; users' questions are not.
    """
    return origin not in TITLED_ORIGINS


class JobFiles:
    """The files of one job directory, read and written in one place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: The job spec, written by the server.
        self.spec = root / "job.json"
        #: Training rows and every chunk, one JSON object a line; the gate's questions.
        self.train = root / "train.jsonl"
        self.corpus = root / "corpus.jsonl"
        self.heldout = root / "heldout.json"
        #: The current model's stored vectors (server) and the candidate's (worker), one row
        #: per corpus line.
        self.current_vectors = root / "current_vectors.npy"
        self.candidate_vectors = root / "candidate_vectors.npy"
        #: The gate's verdict (worker) and the worker's stdout and stderr.
        self.gate = root / "gate.json"
        self.log = root / "worker.log"

    def write_spec(self, spec: JobSpec) -> None:
        """Write ``job.json``."""
        self.spec.write_text(json.dumps(spec.model_dump(mode="json"), indent=2))

    def read_spec(self) -> JobSpec:
        """Read ``job.json``."""
        return JobSpec.model_validate_json(self.spec.read_text())

    def write_train(self, rows: Iterable[TrainRow]) -> None:
        """Write ``train.jsonl``."""
        _write_lines(self.train, rows)

    def read_train(self) -> list[TrainRow]:
        """Read ``train.jsonl``."""
        return [json.loads(line) for line in self.train.read_text().splitlines()]

    def write_corpus(self, rows: Iterable[CorpusRow]) -> None:
        """Write ``corpus.jsonl``."""
        _write_lines(self.corpus, rows)

    def read_corpus(self) -> list[CorpusRow]:
        """Read ``corpus.jsonl``."""
        return [json.loads(line) for line in self.corpus.read_text().splitlines()]

    def write_heldout(self, questions: list[HeldoutQuestion]) -> None:
        """Write ``heldout.json``."""
        self.heldout.write_text(json.dumps(questions))

    def read_heldout(self) -> list[HeldoutQuestion]:
        """Read ``heldout.json``."""
        held: list[HeldoutQuestion] = json.loads(self.heldout.read_text())
        return held

    def read_gate(self) -> GateResult:
        """Read the worker's verdict."""
        return GateResult(**json.loads(self.gate.read_text()))

    def log_tail(self) -> str:
        """The end of the worker's log (``LOG_TAIL_CHARS``), for a failed job's message."""
        return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]


def write_gate(gate: GateResult, *paths: Path) -> None:
    """Write the gate's verdict as JSON to each of ``paths``."""
    text = json.dumps(gate.to_dict(), indent=2)
    for path in paths:
        path.write_text(text)


def _write_lines(path: Path, rows: Iterable[object]) -> None:
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")

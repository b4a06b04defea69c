"""Retrain options, shared by ``POST /admin/retrain``, ``ragloop retrain`` and the scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragloop.core.errors import InvalidInputError
from ragloop.core.settings import Settings

Loss = Literal["mnrl", "matryoshka", "triplet", "online-contrastive", "tsdae"]
Source = Literal["labelled", "pseudo", "synthetic"]
ALL_SOURCES: tuple[Source, ...] = ("labelled", "pseudo", "synthetic")


class RetrainOptions(BaseModel):
    """What to train on, how, and how the candidate is judged."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Source] = Field(
        default_factory=lambda: list(ALL_SOURCES),
        description="Pair sources: feedback labels, LLM-judged misses, synthetic questions.",
    )
    hard_negatives: bool = Field(True, description="Mine hard negatives from the current index.")
    loss: Loss = "mnrl"
    matryoshka_dims: list[int] = Field(default_factory=lambda: [384, 256, 128, 64])
    lora: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights.")
    query_only: bool = Field(
        False, description="Train a query-side adapter only: promotion needs no re-embedding."
    )
    epochs: float = Field(1.0, gt=0, le=20)
    batch_size: int = Field(32, ge=2, le=1024)
    learning_rate: float = Field(2e-5, gt=0, le=1.0)
    max_synthetic_chunks: int = Field(
        6000, ge=0, le=1_000_000, description="Chunks sampled for synthetic questions."
    )
    attention_dropout: float | None = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "Dropout on attention probabilities while training; null keeps the model's own "
            "(0.1 for MiniLM), which on CPU doubles each step's time for its random masks."
        ),
    )
    labelled_repeats: int = Field(
        1, ge=1, le=10, description="Times each labelled or LLM-judged pair is trained on."
    )
    synthetic_per_chunk: int | None = Field(
        None, ge=1, le=5, description="Questions per chunk; default 3 with an LLM, 1 offline."
    )
    gate_dataset: str | None = Field(
        None,
        description="A BEIR dataset folder to gate on instead of held-out pairs; over HTTP, a "
        "folder under RAGLOOP_GATE_DATASETS_ROOT, named relative to it.",
    )
    gate_split: str = "test"
    margin: float | None = Field(
        None, ge=0, le=1, description="Required nDCG@10 gain; default RAGLOOP_GATE_MARGIN."
    )
    min_gate_questions: int = Field(
        30,
        ge=1,
        le=10_000,
        description="Fewest held-out questions a decision may rest on; below it the job ends "
        "not promoted and says what is missing.",
    )
    tune_recipe: bool = Field(
        True, description="Tune the candidate's fusion recipe on the gate questions."
    )
    general_dataset: str | None = Field(
        None,
        description="A BEIR folder scored for forgetting (default RAGLOOP_GATE_GENERAL_DATASET; "
        "none: neighbour agreement with the base model on untrained chunks).",
    )
    general_split: str = "test"
    general_max_queries: int = Field(
        300, ge=10, le=100_000, description="General-set questions sampled for the gate."
    )
    max_general_drop: float = Field(
        0.02, ge=0, le=1, description="Largest allowed nDCG@10 drop on the general set."
    )
    # A full fine-tune on Financial QA's 6k pairs gained +0.034 held-out nDCG@10 at 0.47
    # agreement (docs/quality.md): domain adaptation moves neighbourhoods that far, so the
    # default only refuses a collapse; a general set is the real test of forgetting.
    min_neighbour_agreement: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Without a general set: least top-10 neighbour agreement with the base "
        "model on untrained chunks.",
    )
    seed: int = 20261122
    shuffle_positives: bool = Field(
        False, description="Deliberately wrong pairs (positives shuffled), to test the gate."
    )

    @model_validator(mode="after")
    def _check(self) -> RetrainOptions:
        if not self.sources and self.loss != "tsdae":
            raise ValueError("choose at least one pair source (labelled, pseudo, synthetic)")
        if self.query_only and (self.lora or self.loss not in ("mnrl", "triplet")):
            raise ValueError("query_only trains a linear query adapter with mnrl or triplet")
        if self.loss == "matryoshka" and not self.matryoshka_dims:
            raise ValueError("matryoshka needs matryoshka_dims")
        return self

    def confined(self, root: Path) -> RetrainOptions:
        """These options with ``gate_dataset`` and ``general_dataset`` resolved under ``root``.

        A request over HTTP may name only BEIR sets under the gate datasets root (relative
        names are taken from it); anything else is refused with one message, whether or not
        the path exists, so the API cannot be used to probe the server's files.
        """
        base = root.resolve()
        update: dict[str, str] = {}
        for field, what in (("gate_dataset", "gate"), ("general_dataset", "general")):
            value: str | None = getattr(self, field)
            if not value:
                continue
            path = (base / value).resolve()
            if not path.is_relative_to(base):
                raise InvalidInputError(
                    f"{what} dataset does not load: {field} must name a folder under the gate "
                    f"datasets root {base} (RAGLOOP_GATE_DATASETS_ROOT), relative to it; "
                    f"{value[:200]!r} is not under it"
                )
            update[field] = str(path)
        return self.model_copy(update=update)


def gate_datasets_root(settings: Settings) -> Path:
    """Where BEIR sets that retrain requests may name live (``RAGLOOP_GATE_DATASETS_ROOT``)."""
    return settings.gate_datasets_root or settings.data_dir / "gate-datasets"

"""One evaluator interface over the two modes, and how ``--model`` values become embedders.

An evaluator has a ``primary_metric`` and ``greater_is_better`` (what the promotion gate
compares) and ``evaluate(model) -> RetrievalReport``. Model mode takes ``active``, a model
version id, a local model directory or a registered embedder name; service mode takes
``active`` or a version id whose collection holds vectors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from ragloop.core.embedding import registry as embedders
from ragloop.core.embedding.base import Embedder, EmbedderOptions, EmbedderRegistry
from ragloop.core.errors import ModelUnavailableError, NotFoundError
from ragloop.core.fusion import RetrievalMode
from ragloop.core.progress import ProgressFn
from ragloop.core.records import ModelVersion
from ragloop.core.runtime import ModelLoader, Runtime
from ragloop.core.settings import Settings
from ragloop.core.storage.catalog import Catalog
from ragloop.eval.datasets import BeirDataset
from ragloop.eval.metrics import DEFAULT_KS, PRIMARY_METRIC
from ragloop.eval.model_mode import evaluate_model
from ragloop.eval.report import RetrievalReport
from ragloop.eval.service_mode import evaluate_service


class RetrievalEvaluator(ABC):
    """Scores a model on one dataset split; reports compare by ``primary_metric``."""

    primary_metric: str = PRIMARY_METRIC
    greater_is_better: bool = True

    def __init__(
        self,
        dataset: BeirDataset,
        *,
        dims: Sequence[int] | None = None,
        ks: Sequence[int] = DEFAULT_KS,
        batch_size: int = 64,
        progress: ProgressFn | None = None,
    ) -> None:
        self.dataset = dataset
        self.dims = list(dims) if dims else None
        self.ks = tuple(ks)
        self.batch_size = batch_size
        self.progress = progress

    @abstractmethod
    def evaluate(self, model: str) -> RetrievalReport:
        """Evaluate the model a reference names."""

    def score(self, report: RetrievalReport) -> float:
        """The primary metric of a report (at its largest dimension)."""
        return report.metrics[self.primary_metric]

    def is_better(
        self, candidate: RetrievalReport, baseline: RetrievalReport, margin: float = 0.0
    ) -> bool:
        """True when ``candidate`` beats ``baseline`` on the primary metric by more than
        ``margin`` (in the metric's direction)."""
        diff = self.score(candidate) - self.score(baseline)
        return (diff if self.greater_is_better else -diff) > margin


class ModelModeEvaluator(RetrievalEvaluator):
    """Exact search over the dataset's own corpus, encoded by the model under test."""

    def __init__(
        self, dataset: BeirDataset, load: Callable[[str], Embedder], **options: Any
    ) -> None:
        super().__init__(dataset, **options)
        self.load = load

    def evaluate(self, model: str) -> RetrievalReport:
        """Load ``model`` through ``load`` and score it."""
        return self.evaluate_embedder(self.load(model), label=model)

    def evaluate_embedder(self, embedder: Embedder, label: str | None = None) -> RetrievalReport:
        """Score an already loaded embedder (what the promotion gate holds)."""
        return evaluate_model(
            embedder,
            self.dataset,
            dims=self.dims,
            batch_size=self.batch_size,
            ks=self.ks,
            label=label,
            progress=self.progress,
        )


class ServiceModeEvaluator(RetrievalEvaluator):
    """The live retriever over the ingested data dir, chunks mapped back to documents."""

    def __init__(
        self,
        dataset: BeirDataset,
        runtime: Runtime,
        retrieval: RetrievalMode | None = None,
        **options: Any,
    ) -> None:
        super().__init__(dataset, **options)
        self.runtime = runtime
        self.retrieval = retrieval

    def evaluate(self, model: str) -> RetrievalReport:
        """Score ``active`` or a stored model version through the retriever (in this
        evaluator's retrieval mode; default ``RAGLOOP_RETRIEVAL``)."""
        return self.evaluate_mode(model, self.retrieval)

    def evaluate_mode(self, model: str, retrieval: RetrievalMode | None) -> RetrievalReport:
        """Score a model with dense, lexical or hybrid retrieval (None: the setting's)."""
        return evaluate_service(
            self.runtime,
            self.dataset,
            version=model,
            dims=self.dims,
            ks=self.ks,
            batch_size=self.batch_size,
            label=model,
            progress=self.progress,
            retrieval=retrieval,
        )


def has_catalog(settings: Settings) -> bool:
    """Whether the data dir holds a catalog (so reading it creates nothing)."""
    return bool(settings.catalog_url) or (settings.data_dir / "catalog.sqlite").exists()


class ModelSource:
    """Turns ``--model`` values into embedders for model mode.

    ``active`` is the data dir's active version (or the configured base embedder when the data
    dir has no catalog or no version yet: nothing is created just to evaluate); a model version
    id is looked up in the catalog; anything else is a local directory or a registered name.
    Only the catalog is opened, never the vector store: model mode reads no vectors.
    """

    def __init__(self, settings: Settings, registry: EmbedderRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self._catalog: Catalog | None = None
        self._loaded: dict[str, Embedder] = {}
        self._models: ModelLoader | None = None

    @property
    def catalog(self) -> Catalog | None:
        """The data dir's catalog, opened on first use when there is one."""
        if self._catalog is None and has_catalog(self.settings):
            self._catalog = Catalog.open(self.settings.resolved_catalog_url)
        return self._catalog

    def model_ref(self, ref: str) -> str:
        """The weights a reference names (a registered name or a directory)."""
        catalog = self.catalog
        if ref == "active":
            active = catalog.active_version() if catalog else None
            return active.model_ref if active else self.settings.embedder
        if catalog is not None:
            try:
                return catalog.get_version(ref).model_ref
            except NotFoundError:
                pass
        return ref

    def _version(self, ref: str) -> ModelVersion | None:
        catalog = self.catalog
        if catalog is None:
            return None
        if ref == "active":
            return catalog.active_version()
        try:
            return catalog.get_version(ref)
        except NotFoundError:
            return None

    def _load(self, model_ref: str) -> Embedder:
        if model_ref not in self._loaded:
            registry = self.registry or embedders.default_registry()
            opts = EmbedderOptions.from_settings(self.settings)
            self._loaded[model_ref] = registry.load(model_ref, opts)
        return self._loaded[model_ref]

    def load(self, ref: str) -> Embedder:
        """Load the embedder for ``active``, a version id, a directory or a registered name."""
        version = self._version(ref)
        if version is not None and self._catalog is not None:
            # Versions load as the service loads them (a query-only version is its parent's
            # model plus its query adapter, not a model directory of its own).
            if self._models is None:
                registry = self.registry or embedders.default_registry()
                self._models = ModelLoader(self.settings, self._catalog, registry)
            return self._models.index_for(version).embedder
        target = self.model_ref(ref)
        try:
            return self._load(target)
        except ModelUnavailableError as exc:
            if target != ref:  # "active" or a version: the weights' own message says it all
                raise
            catalog = self.catalog
            versions = ", ".join(v.version for v in catalog.list_versions()) if catalog else ""
            raise ModelUnavailableError(
                f"--model {ref!r} is not 'active', not a model version in "
                f"{self.settings.data_dir} (known: {versions or 'none'}), and {exc.message}"
            ) from exc

    def close(self) -> None:
        """Release the catalog if it was opened."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

"""Wiring: the catalog, vector store, embedder registry and the active index, built from
settings by the CLI or ``create_app`` and passed to everything else."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragloop.core.embedding.base import Embedder, EmbedderOptions, EmbedderRegistry
from ragloop.core.embedding.query_adapter import QueryAdapterEmbedder
from ragloop.core.embedding.query_batcher import QueryBatcher
from ragloop.core.embedding.query_cache import QueryCache
from ragloop.core.embedding.registry import default_registry
from ragloop.core.errors import ConfigError
from ragloop.core.fusion import FusionRecipe, RetrievalMode
from ragloop.core.records import ModelVersion
from ragloop.core.settings import Settings
from ragloop.core.storage.catalog import Catalog, make_private_dir
from ragloop.core.storage.vectors import ChromaStore, HnswParams, VectorStore, collection_name

BASE_VERSION = "base"


@dataclass(frozen=True)
class ActiveIndex:
    """A model version and its loaded embedder: always used together, never mixed."""

    version: ModelVersion
    embedder: Embedder
    cache: QueryCache | None = field(default=None, compare=False)
    batcher: QueryBatcher | None = field(default=None, compare=False)
    #: How hybrid retrieval fuses the two sides for this version (None: the version's stored
    #: recipe, else the default one).
    recipe: FusionRecipe | None = None
    #: dense, lexical or hybrid (``RAGLOOP_RETRIEVAL``).
    retrieval: RetrievalMode = "hybrid"

    def __post_init__(self) -> None:
        if self.recipe is None:
            stored = self.version.fusion
            recipe = FusionRecipe.from_dict(stored) if stored else FusionRecipe()
            object.__setattr__(self, "recipe", recipe)

    @property
    def fusion(self) -> FusionRecipe:
        """The recipe, never None (filled in at construction)."""
        assert self.recipe is not None
        return self.recipe

    @property
    def collection(self) -> str:
        """The collection holding this version's vectors."""
        return self.version.collection

    def query_vector(self, text: str) -> np.ndarray:
        """The query's embedding under this version: from the LRU cache when it has one, else
        encoded, together with concurrent callers' queries when it has a batcher."""
        compute = self.batcher.embed_query if self.batcher else self.embedder.embed_query
        if self.cache is None:
            return compute(text)
        return self.cache.get_or_compute(self.version.version, text, compute)


def recipe_for(version: ModelVersion, settings: Settings) -> FusionRecipe:
    """A version's fusion recipe: its stored one (else the settings' default), with any
    ``RAGLOOP_FUSION_*`` set explicitly on top."""
    stored = version.fusion
    base = FusionRecipe.from_dict(stored) if stored else settings.default_fusion
    return base.with_overrides(settings.fusion_overrides)


class ModelLoader:
    """Loads (once) the embedder of a model reference or a model version.

    Needs only the catalog and the registry, never the vector store, so the training worker and
    the evaluation harness load versions exactly as the serving runtime does (query-only
    versions included).
    """

    def __init__(self, settings: Settings, catalog: Catalog, registry: EmbedderRegistry) -> None:
        self.settings = settings
        self.catalog = catalog
        self.registry = registry
        self._embedders: dict[str, Embedder] = {}
        self._batchers: dict[str, QueryBatcher] = {}
        self._lock = threading.Lock()
        self.query_cache = QueryCache(settings.query_cache_size)

    def _index(self, version: ModelVersion, key: str, embedder: Embedder) -> ActiveIndex:
        # One batcher per loaded embedder, shared by every request that queries it.
        with self._lock:
            batcher = self._batchers.get(key)
            if batcher is None:
                batcher = QueryBatcher(
                    lambda texts: embedder.embed(texts, is_query=True),
                    self.settings.query_batch_size,
                )
                self._batchers[key] = batcher
        return ActiveIndex(
            version,
            embedder,
            self.query_cache,
            batcher,
            recipe=recipe_for(version, self.settings),
            retrieval=self.settings.retrieval,
        )

    def embedder_for(self, model_ref: str) -> Embedder:
        """Load (once) the embedder a model reference names."""
        with self._lock:
            emb = self._embedders.get(model_ref)
            if emb is None:
                emb = self.registry.load(model_ref, EmbedderOptions.from_settings(self.settings))
                self._embedders[model_ref] = emb
            return emb

    def index_for(self, version: ModelVersion) -> ActiveIndex:
        """A version with its embedder loaded: weights, or its parent plus a query adapter."""
        if version.info.get("kind") == "query_adapter":
            parent = self.index_for(self.catalog.get_version(str(version.parent)))
            key = f"adapter:{version.model_ref}"
            with self._lock:
                emb = self._embedders.get(key)
                if emb is None:
                    emb = QueryAdapterEmbedder.load(
                        parent.embedder, Path(version.model_ref), version.version
                    )
                    self._embedders[key] = emb
            return self._index(version, key, emb)
        return self._index(version, version.model_ref, self.embedder_for(version.model_ref))


class Runtime:
    """The objects one process shares: catalog, store, registry and the loaded embedders."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: VectorStore,
        registry: EmbedderRegistry,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.registry = registry
        self.models = ModelLoader(settings, catalog, registry)
        self._active: ActiveIndex | None = None
        self._checked = 0.0
        self._swap_lock = threading.Lock()
        #: How often (seconds) a process re-reads the active pointer; another process (a
        #: worker, the CLI) may have promoted or rolled back a version.
        self.follow_interval = 1.0

    def embedder_for(self, model_ref: str) -> Embedder:
        """Load (once) the embedder a model reference names."""
        return self.models.embedder_for(model_ref)

    def index_for(self, version: ModelVersion) -> ActiveIndex:
        """A version with its embedder loaded (see ``ModelLoader.index_for``)."""
        return self.models.index_for(version)

    def active_index(self) -> ActiveIndex:
        """The active version with its embedder, registering the base model on first use.

        The result is one consistent (model, collection) pair: callers use it for a whole
        query, so a swap can never make a query encode with one model and search another's
        vectors. The pointer is re-read at most every ``follow_interval`` seconds.
        """
        current = self._active
        if current is not None and time.monotonic() - self._checked < self.follow_interval:
            return current
        with self._swap_lock:
            active = self.catalog.active_version()
            if active is None:
                active = self._register_base()
            elif active.parent is None and active.model_ref != self.settings.embedder:
                raise ConfigError(
                    f"{self.settings.data_dir} was built with embedder {active.model_ref!r} but "
                    f"RAGLOOP_EMBEDDER is {self.settings.embedder!r}; use a new data dir to "
                    "change the base model (vectors of different models cannot be mixed)"
                )
            if self._active is None or self._active.version != active:
                # Load the new model before publishing it; queries keep the old pair meanwhile.
                self._active = self.index_for(active)
            self._checked = time.monotonic()
            return self._active

    def refresh(self) -> ActiveIndex:
        """Re-read the active pointer now (after a promotion or rollback in this process)."""
        self._checked = 0.0
        return self.active_index()

    def _register_base(self) -> ModelVersion:
        emb = self.embedder_for(self.settings.embedder)
        mv = ModelVersion(
            version=BASE_VERSION,
            model_ref=self.settings.embedder,
            parent=None,
            dimension=emb.dimension,
            max_seq_length=emb.max_seq_length,
            collection=collection_name(self.catalog.instance_id(), BASE_VERSION),
            status="active",
            created_at=time.time(),
            info={"model_id": emb.model_id, "fusion": self.settings.default_fusion.to_dict()},
        )
        self.catalog.add_version(mv)
        self.catalog.set_active(mv.version)
        self.store.ensure_collection(mv.collection)
        return mv

    def close(self) -> None:
        """Release the catalog's connections."""
        self.catalog.close()


def open_store(settings: Settings) -> VectorStore:
    """Chroma as the settings say: a server when ``chroma_url`` is set, else embedded."""
    hnsw = HnswParams(
        ef_construction=settings.hnsw_ef_construction,
        max_neighbors=settings.hnsw_max_neighbors,
        ef_search=settings.hnsw_ef_search,
    )
    if settings.chroma_url:
        return ChromaStore.remote(settings.chroma_url, hnsw)
    make_private_dir(settings.chroma_path)
    return ChromaStore.embedded(str(settings.chroma_path), hnsw)


def open_runtime(
    settings: Settings,
    registry: EmbedderRegistry | None = None,
    store: VectorStore | None = None,
) -> Runtime:
    """Open the catalog and store for ``settings``; the embedder loads on first use."""
    make_private_dir(settings.data_dir)  # users' documents and questions: owner only
    catalog = Catalog.open(settings.resolved_catalog_url)
    return Runtime(settings, catalog, store or open_store(settings), registry or default_registry())

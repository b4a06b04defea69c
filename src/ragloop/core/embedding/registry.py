"""The built-in embedders, wired into a registry: the top of the embedding runtime.

``default_registry`` is what the CLI, ``create_app`` and the training worker start from: the
bundled all-MiniLM-L6-v2 under its names, and any local sentence-transformers directory, each
loaded through ``backends.load_model_dir`` (which picks torch or ONNX). Entry point embedders
come on top through ``EmbedderRegistry`` itself.
"""

from __future__ import annotations

from ragloop.core.embedding.backends import load_model_dir
from ragloop.core.embedding.base import Embedder, EmbedderOptions, EmbedderRegistry
from ragloop.core.embedding.torch_embedder import BUNDLED_NAMES, bundled_model_path


def _load_bundled(options: EmbedderOptions) -> Embedder:
    return load_model_dir(bundled_model_path(), options, model_id=BUNDLED_NAMES[0])


def register_builtins(registry: EmbedderRegistry) -> None:
    """Register the bundled default and the local-directory loader (both pick a backend)."""
    for name in BUNDLED_NAMES:
        registry.register(name, _load_bundled)
    registry.set_path_loader(load_model_dir)


def default_registry() -> EmbedderRegistry:
    """A registry with the built-in embedders registered."""
    registry = EmbedderRegistry()
    register_builtins(registry)
    return registry

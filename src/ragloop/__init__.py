"""ragloop: a RAG service that learns from its misses.

Packages (imports only flow to the left): ``core`` <- ``ingest``, ``finetune``, ``eval`` <-
``service``. Nothing here runs at import time; objects are built by ``service.cli`` or
``service.app.create_app(settings)`` and passed in.
"""

__version__ = "0.1.0"

"""Ingest: loaders -> cleaning -> token-aware chunking -> catalog + embeddings."""

"""Shared domain: settings, catalog, embedders, vector store, retriever, errors."""

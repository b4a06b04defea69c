"""Shared domain: settings, errors, records, embedding, storage, generators, retrieval."""

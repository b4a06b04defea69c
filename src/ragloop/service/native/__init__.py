"""The native HTTP API: query, documents, misses, retraining and models, health."""

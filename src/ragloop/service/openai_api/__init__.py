"""The OpenAI-compatible API: chat completions, models, embeddings."""

"""The DocsGPT-compatible API: answers, streams, search, feedback, uploads and sources."""

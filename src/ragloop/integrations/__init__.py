"""Integrations with other frameworks (LangChain); they may import ``core``, never ``service``."""

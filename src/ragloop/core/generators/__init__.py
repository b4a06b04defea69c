"""Answer generators: one interface, a registry, and the built-ins (anthropic, openai, extractive)."""

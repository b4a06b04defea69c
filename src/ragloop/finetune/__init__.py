"""The learning loop: training pairs -> train (own process) -> gate -> promote / hot-swap."""

"""The Temporal engine: the same YAML workflows, run by workers on as many machines as needed.

Kept free of imports: the workflow sandbox imports this package, and it must stay light and deterministic.
"""

"""Packaged training recipes (YAML), installed as ``mtnet.configs``: ``mtnet train quickstart`` finds them by name."""

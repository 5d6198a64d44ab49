"""The mtnet release, in a module of its own so low layers (checkpoints) can record it without importing
the package's public API (``mtnet.__version__`` re-exports it)."""

__version__ = "0.1.0"

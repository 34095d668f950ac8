"""The one error of the model stage."""

from __future__ import annotations


class ModelError(RuntimeError):
    """The model bundle is missing, corrupt or does not match this edge."""

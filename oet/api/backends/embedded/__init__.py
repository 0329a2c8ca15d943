"""The embedded backend: runner subprocesses on this machine, records in SQLite."""

from oet.api.backends.embedded.backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]

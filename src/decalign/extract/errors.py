"""Errors of the extraction layer, and the lazy import of the ``extract`` extra."""

from __future__ import annotations

from types import ModuleType

from decalign._optional import MissingExtraError
from decalign._optional import require as _optional_require
from decalign.errors import DataError

__all__ = ["ExtractError", "MediaError", "MissingExtraError", "require"]


class ExtractError(DataError):
    """Input to ``decalign extract`` that cannot be used (a CSV without a needed column, a
    model directory that does not exist, clips that failed); the message names the file."""


class MediaError(ExtractError):
    """A media file that cannot be decoded (corrupt, truncated, not a media file)."""


def require(module: str, package: str | None = None) -> ModuleType:
    """Import ``module`` of the ``extract`` extra, or raise :class:`MissingExtraError` saying
    ``pip install 'decalign[extract]'`` (``package``: the distribution name, for the message)."""
    return _optional_require(module, "extract", f"feature extraction ({package or module})")

"""Errors of the extraction layer, and the lazy import of the ``extract`` extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from decalign.errors import DataError, DecalignError

__all__ = ["ExtractError", "MediaError", "MissingExtraError", "require"]


class ExtractError(DataError):
    """Input to ``decalign extract`` that cannot be used (a CSV without a needed column, a
    model directory that does not exist, clips that failed); the message names the file."""


class MediaError(ExtractError):
    """A media file that cannot be decoded (corrupt, truncated, not a media file)."""


class MissingExtraError(DecalignError, ImportError):
    """A package of the ``extract`` extra is not installed."""


def require(module: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error that says how to install it.

    The extraction dependencies are heavy and optional; a plain ``ImportError`` deep inside a run
    would not tell the user that one ``pip install`` fixes it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"feature extraction needs the package {package or module!r} ({err}); install it with "
            "pip install \"decalign[extract]\""
        ) from None

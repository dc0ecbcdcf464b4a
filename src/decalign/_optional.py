"""Optional dependencies: imported where a feature needs them, with an error naming the extra.

The core install (``pip install decalign``) holds what ``train``/``eval``/``predict`` on feature
files need. Everything else is an extra of ``pyproject.toml``; a feature that needs one calls
:func:`require`, so a missing package ends in one line that says what to install, and
``decalign --help`` never pays for importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from decalign.errors import DecalignError

__all__ = ["EXTRAS", "MissingExtraError", "available", "require"]

EXTRAS: dict[str, str] = {
    "transformers": "bert",
    "optuna": "sweep",
    "matplotlib": "plots",
    "sklearn": "plots",
    "tensorboard": "tb",
    "torch.utils.tensorboard": "tb",
    "onnx": "export",
    "onnxscript": "export",
    "av": "extract",
    "cv2": "extract",
    "opensmile": "extract",
    "librosa": "extract",
    "fastapi": "serve",
    "uvicorn": "serve",
    "python_multipart": "serve",
}
"""Top-level module -> the extra of ``pyproject.toml`` that installs it."""


class MissingExtraError(DecalignError, ImportError):
    """A feature needs a package of an extra that is not installed; the message names both."""


def require(module: str, extra: str | None = None, feature: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra to install.

    Args:
        module: dotted module name, e.g. ``"optuna"`` or ``"sklearn.manifold"``.
        extra: the extra that provides it (default: looked up in :data:`EXTRAS`).
        feature: what needs it, for the message (e.g. ``"decalign sweep"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        name = extra or EXTRAS.get(module) or EXTRAS.get(top) or top
        what = f"{feature} needs" if feature else "this needs"
        missing = getattr(err, "name", None) or top
        # A dependency of the package missing (a half-installed extra) is named too: the same
        # pip command repairs it.
        because = "" if missing.split(".")[0] == top else f" (its dependency {missing!r} is missing)"
        raise MissingExtraError(
            f"{what} the optional package {top!r}, which is not installed{because}: "
            f"pip install 'decalign[{name}]'"
        ) from err


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing, or a module set to None in sys.modules
        return False

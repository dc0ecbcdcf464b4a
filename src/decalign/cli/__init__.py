"""The ``decalign`` command line (``decalign --help``; also ``python -m decalign``).

One module per command (``decalign.cli.<command>``), each with ``add_parser(subparsers, name,
help)``, which declares its flags with the helpers of :mod:`decalign.cli.common`, and
``run(args) -> int``, which turns the flags into typed values and calls the library function that
does the work (the same one a notebook calls). :data:`COMMANDS` is the one table of commands.

argparse from the standard library: no dependency. The table holds every command's help line, so
``decalign --help`` imports no command module and ``decalign train ...`` only ``cli/train.py``;
a command imports what it needs (torch, numpy, an extra) when it runs. Errors a user can fix (bad
data, bad settings, a corrupt checkpoint) are printed as one line without a traceback
(``--verbose`` shows it).

This package is the only place argparse is imported (``tests/project/test_layering.py`` checks).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TextIO

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

log = logging.getLogger("decalign")


@dataclass(frozen=True)
class Command:
    """One row of :data:`COMMANDS`."""

    module: str
    """The module with ``add_parser(subparsers, name, help)`` and ``run(args) -> int``."""
    help: str
    """The line ``decalign --help`` shows."""
    extra: str | None = None
    """The ``pyproject.toml`` extra the command needs (for all of its work, or for some options:
    ``export --format onnx``), as the README's table of extras says; without it the command ends
    in one line naming it (``tests/project/test_registries.py`` checks both)."""
    interrupted: str = ""
    """What Ctrl-C adds to "decalign: interrupted": how to continue, for commands that can."""

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


COMMANDS: dict[str, Command] = {
    "train": Command("decalign.cli.train", "train over seeds and print the test table (default: built-in dataset)",
                     interrupted=" (the completed epochs are saved: run the same command with --resume to continue)"),
    "eval": Command("decalign.cli.eval", "metrics of a saved model on a data file"),
    "predict": Command("decalign.cli.predict",
                       "write one prediction per sample id to a CSV file (labels optional)"),
    "info": Command("decalign.cli.info", "what a data file holds: kind, splits, shapes, label ranges, problems"),
    "convert": Command("decalign.cli.convert", "convert a benchmark pickle into decalign's pickle-free format"),
    "presets": Command("decalign.cli.presets", "list presets, or show one preset's settings"),
    "bench": Command("decalign.cli.bench",
                     "train every model and ablation over seeds; write bench.md/bench.csv and figures",
                     interrupted=" (completed runs and epochs are saved: run the same command again to continue)"),
    "sweep": Command("decalign.cli.sweep",
                     "hyper-parameter search on Optuna (start several workers to share one study)", extra="sweep"),
    "extract": Command("decalign.cli.extract",
                       "media + transcripts -> a dataset file (text, audio and vision features)", extra="extract"),
    "export": Command("decalign.cli.export",
                      "write a model as an ONNX, TorchScript or torch.export prediction graph", extra="export"),
    "probe": Command("decalign.cli.probe", "ridge-regression probes on pooled features (the linear floor)",
                     extra="probe"),
    "datasets": Command("decalign.cli.datasets", "the benchmarks' releases: file names, shapes, splits, sources; "
                        "with FILE, which release it is and its fingerprint"),
    "serve": Command("decalign.cli.serve",
                     "a local web app over the runs in a folder, and an HTTP API to predict", extra="serve"),
    "report": Command("decalign.cli.report",
                      "runs side by side with paired differences and confidence intervals"),
}
"""Every command, in the order ``decalign --help`` lists them. A new command is its module plus
one row here (docs/contributing.md)."""


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command (``commands=None``), or of the named ones only: the others get
    their help line but no flags, so their modules are not imported."""
    from decalign import __version__

    full = set(COMMANDS) if commands is None else set(commands)
    parser = argparse.ArgumentParser(
        prog="decalign",
        description="DecAlign (ICLR 2026): train, evaluate and compare decoupled multimodal models.",
    )
    parser.add_argument("--version", action="version", version=f"decalign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        if name in full:
            command.load().add_parser(sub, name, command.help)
        else:
            sub.add_parser(name, help=command.help)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command of a command line: its first word that is not an option (``decalign`` itself
    has only ``--help`` and ``--version``, which take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. The CLI configures the ``decalign`` logger and the warning display for
    itself; both are restored on return, so calling ``main`` from Python (a notebook, a test) leaves
    no handler bound to a stream that may be closed by then."""
    logger = logging.getLogger("decalign")
    saved = (logger.handlers[:], logger.level, logger.propagate, warnings.showwarning)
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    finally:
        logger.handlers[:], logger.level, logger.propagate, warnings.showwarning = saved


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not verbose else "%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("decalign")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              file: TextIO | None = None, line: str | None = None) -> None:
        root.warning("warning: %s", message)

    # ty types a module's ``def`` as that one function, so no other function may replace it (the
    # documented way to redirect warnings); the signature above is typeshed's.
    warnings.showwarning = _show  # ty: ignore[invalid-assignment]


def _main(argv: list[str]) -> int:
    named = _command_named(argv)
    parser = build_parser([named] if named in COMMANDS else [])
    args = parser.parse_args(argv)
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    _setup_logging(quiet, verbose)
    command = COMMANDS[args.command]
    try:
        code = int(command.load().run(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:  # `decalign presets --keys | head`: the reader had enough; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush goes nowhere
        return 0
    except KeyboardInterrupt:
        print(f"decalign: interrupted{command.interrupted}", file=sys.stderr)
        return 130
    except Exception as err:
        user_err = _as_user_error(err)
        if verbose or user_err is None:
            raise
        print(f"decalign: error: {_one_line(str(user_err))}", file=sys.stderr)
        return user_err.exit_code


def _one_line(message: str) -> str:
    """A message as one line: a multi-line one (every problem of a state dict) joined by ``; ``."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _as_user_error(err: Exception) -> Any:
    """The :class:`~decalign.errors.DecalignError` for an error a user caused, or ``None`` for our
    bugs (which keep their traceback).

    Operating-system refusals of a file the user named (permission, missing directory, name too
    long, full disk) become a :class:`~decalign.errors.FileAccessError`; ``ValueError``/``KeyError``
    from older code paths are still shown as one line (exit 2).
    """
    import errno

    from decalign.errors import DecalignError, UsageError, file_error

    if isinstance(err, DecalignError):
        return err
    user_errnos = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG,
                   errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST}
    if isinstance(err, OSError) and err.errno in user_errnos:
        return file_error(err, action="access")
    if isinstance(err, (FileNotFoundError, FileExistsError)):
        return UsageError(str(err))
    if isinstance(err, KeyError):
        return UsageError(str(err.args[0]) if err.args else "missing key")
    if isinstance(err, ValueError):
        return UsageError(str(err))
    return None

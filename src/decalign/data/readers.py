"""The file layouts decalign reads, one :class:`Reader` each, in one registry (:data:`READERS`).

What a path holds is decided from its content, never its name (:class:`Source`): a directory or
a zip/safetensors header is our native format (:mod:`decalign.data.native`); anything else is
unpickled once, with the restricted unpickler (:mod:`decalign.data.safe_pickle`), and offered to
the pickle layouts in turn: the MMSA dict of splits (MOSI, MOSEI, CH-SIMS, utterance-level
IEMOCAP, custom; :mod:`decalign.data.mmsa`) and the dialogue-level IEMOCAP 9-item sequence
(:mod:`decalign.data.iemocap`). The first reader that accepts the source reads it.

A new layout is one :class:`Reader` entry here and its module (``docs/contributing.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from decalign.config import DataConfig
from decalign.data.arrays import ReadLog
from decalign.data.iemocap import is_dialogue_layout, read_iemocap_dialogue
from decalign.data.mmsa import read_mmsa
from decalign.data.native import load_native, sniff_format
from decalign.data.safe_pickle import load_pickle
from decalign.data.types import DataError, MultimodalDataset

__all__ = ["READERS", "ReadFunction", "Reader", "Source", "read_file"]

_UNREAD = object()


@dataclass
class Source:
    """A data file or directory being read.

    ``format`` is sniffed from the first bytes (``directory``, ``npz``, ``safetensors`` or
    ``pickle``); a pickle's content is unpickled on first use and shared by every reader that
    looks at it, so a file of gigabytes is unpickled once whichever layout it turns out to be.
    """

    path: Path
    format: str
    _content: object = field(default=_UNREAD, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Source:
        """The source at ``path``; a missing, unreadable or text file is a :class:`DataError`."""
        return cls(Path(path), sniff_format(path))

    @property
    def is_pickle(self) -> bool:
        return self.format == "pickle"

    def content(self) -> Any:
        """The unpickled object (restricted unpickler; only for ``format == "pickle"``)."""
        if not self.is_pickle:
            raise TypeError(f"{self.path}: a {self.format} source has no pickled content")
        if self._content is _UNREAD:
            self._content = load_pickle(self.path)
        return self._content

    def release(self) -> None:
        """Drop the unpickled content (a MOSEI pickle holds gigabytes the dataset has copied)."""
        self._content = _UNREAD


class ReadFunction(Protocol):
    """How a reader turns a source into a dataset: ``kind`` forces the benchmark (``None``:
    detected from the feature widths), ``config`` carries the layout's settings (the IEMOCAP
    validation split), ``log`` collects what was fixed or noticed. Malformed content is a
    :class:`DataError` naming the file, split, key and shapes."""

    def __call__(self, source: Source, kind: str | None, config: DataConfig, log: ReadLog) -> MultimodalDataset: ...


@dataclass(frozen=True)
class Reader:
    """One file layout: how to recognise it from a :class:`Source` and how to read it."""

    name: str
    """The layout's name."""
    accepts: Callable[[Source], bool]
    """Whether the source is in this layout (from its content, never its name)."""
    read: ReadFunction
    description: str


def _read_native(source: Source, kind: str | None, config: DataConfig, log: ReadLog) -> MultimodalDataset:
    return load_native(source.path, kind, log)


def _read_mmsa(source: Source, kind: str | None, config: DataConfig, log: ReadLog) -> MultimodalDataset:
    return read_mmsa(source.content(), str(source.path), kind, log)


def _read_iemocap_dialogue(source: Source, kind: str | None, config: DataConfig, log: ReadLog) -> MultimodalDataset:
    return read_iemocap_dialogue(source.content(), str(source.path), kind, log,
                                 valid_fraction=config.valid_fraction, split_seed=config.split_seed)


READERS: tuple[Reader, ...] = (
    Reader("native", lambda s: not s.is_pickle, _read_native,
           "our pickle-free format: a .npz or .safetensors file, or a directory of them"),
    Reader("mmsa", lambda s: s.is_pickle and isinstance(s.content(), Mapping), _read_mmsa,
           "a pickled dict of splits 'train', 'valid', 'test' (MOSI, MOSEI, CH-SIMS, utterance-level IEMOCAP)"),
    Reader("iemocap_dialogue", lambda s: s.is_pickle and is_dialogue_layout(s.content()), _read_iemocap_dialogue,
           "the pickled 9-item dialogue-level IEMOCAP sequence"),
)
"""Every layout, tried in order; the first that accepts a source reads it."""


def _unrecognised(source: Source) -> DataError:
    obj = source.content()
    size = f" of {len(obj)} items" if isinstance(obj, (list, tuple)) else ""
    return DataError(
        f"{source.path}: the pickle holds a {type(obj).__name__}{size}; expected a dict with splits "
        "'train', 'valid', 'test' (MMSA layout) or the 9-item dialogue-level IEMOCAP sequence"
    )


def read_file(path: str | os.PathLike[str], kind: str | None, config: DataConfig) -> MultimodalDataset:
    """``path`` read by the first of :data:`READERS` that accepts it, with what the reader fixed
    in ``dataset.notes`` (and a :class:`~decalign.data.arrays.NonFiniteWarning` for replaced
    non-finite values, attributed to the caller of :func:`decalign.data.loading.load_dataset`)."""
    source = Source.open(path)
    log = ReadLog()
    try:
        reader = next((r for r in READERS if r.accepts(source)), None)
        if reader is None:
            raise _unrecognised(source)
        dataset = reader.read(source, kind, config, log)
    finally:
        source.release()
    return log.finish(dataset, stacklevel=4)

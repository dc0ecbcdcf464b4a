"""Where the benchmark files come from, what each must hold, and how to check that a downloaded
file is the one a result was measured on (``decalign datasets``, ``decalign info``).

Nothing is downloaded: the benchmarks are released by others (the MMSA project's processed
feature pickles for CMU-MOSI, CMU-MOSEI and CH-SIMS; the IEMOCAP feature pickle the DecAlign
authors' README links) under their own terms. :data:`RELEASES` lists, for each benchmark, the
known releases with their file names, shapes and split sizes; :func:`identify_file` says which
release a file is and :func:`describe_file` what it holds, each with the file's fingerprint:

* ``content``: :func:`decalign.train.runguard.data_fingerprint` of the data as decalign reads it
  (kind, task, ids, labels, shapes, a fixed sample of feature values). It is the digest a run
  stores in ``dataset.json``, so a file can be matched to the runs trained on it, and two copies
  that decode to the same data agree even when pickled differently.
* ``sha256``: of the file's bytes, for comparing with a colleague's copy or a published checksum.

The shapes are read from the dataset-kind registry (:data:`decalign.data.detect.DATASET_KINDS`),
so this list cannot disagree with what ``decalign info`` detects.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decalign.data.detect import DATASET_KINDS, SPLITS

__all__ = [
    "RELEASES",
    "Release",
    "describe_file",
    "file_sha256",
    "fingerprint",
    "identify",
    "identify_file",
    "releases_text",
]


@dataclass(frozen=True)
class Release:
    """One published file of a benchmark."""

    benchmark: str
    """The benchmark's name as papers print it."""
    kind: str
    """Its dataset kind (a key of :data:`DATASET_KINDS`)."""
    layout: str
    """The registry's layout name whose padded lengths the file has."""
    files: tuple[str, ...]
    """The names the file is distributed under (decalign never relies on them)."""
    source: str
    """Where it is published."""
    splits: tuple[int, int, int] | None
    """Published train / valid / test sample counts (``None``: the file's own)."""
    dims: Mapping[str, int] | None = None
    """Feature widths when they are not the kind's published ones (IEMOCAP's dialogue level)."""
    note: str = ""
    variant: str = ""
    """How people call this file (default: the layout)."""

    @property
    def name(self) -> str:
        return self.variant or self.layout

    def shape(self) -> tuple[dict[str, int], dict[str, int]]:
        """(widths, padded lengths) per modality, from the registry."""
        spec = DATASET_KINDS[self.kind]
        return dict(self.dims or spec.dims or {}), dict(spec.seq_lens[self.layout])


_MMSA = "the MMSA project (THUIAR's MMSA toolkit on GitHub): the processed-feature downloads its README links"

RELEASES: tuple[Release, ...] = (
    Release("CMU-MOSI", "mosi", "aligned", ("aligned_50.pkl", "mosi_aligned_50.pkl"), _MMSA, (1284, 229, 686)),
    Release("CMU-MOSI", "mosi", "unaligned", ("unaligned_50.pkl",), _MMSA, (1284, 229, 686),
            note="MMSA's own configuration files list these lengths as audio 500 / vision 375: the arrays are right"),
    Release("CMU-MOSEI", "mosei", "aligned", ("aligned_50.pkl", "mosei_aligned_50.pkl"), _MMSA, (16326, 1871, 4659),
            note="the audio holds -inf values: replaced by 0 and counted in a warning"),
    Release("CMU-MOSEI", "mosei", "unaligned", ("unaligned_50.pkl",), _MMSA, (16326, 1871, 4659),
            note="the audio holds -inf values: replaced by 0 and counted in a warning"),
    Release("CH-SIMS", "sims", "unaligned", ("unaligned_39.pkl", "chsims.pkl"), _MMSA, (1368, 456, 457),
            note="labels in [-1, 1]; the unimodal labels regression_labels_T/_A/_V are kept, not trained on"),
    Release("IEMOCAP", "iemocap", "utterance", ("IEMOCAP_features_raw_6way.pkl", "IEMOCAP_features_raw_4way.pkl"),
            "the dialogue-level feature pickle the DecAlign authors' README links (from the conversational "
            "emotion-recognition literature)",
            None, dims={"text": 100, "audio": 100, "vision": 512},
            note="a Python 2 pickle; the file's test dialogues are test, 10 % of its training dialogues "
            "(data.valid_fraction, seed data.split_seed) become valid; the _4way file holds the first four "
            "classes only", variant="dialogue level"),
    Release("IEMOCAP", "iemocap", "utterance", ("iemocap_data.pkl",),
            "the DecAlign authors' own utterance-level file (MMSA layout); not published: users have the "
            "dialogue-level file above", None, variant="utterance level, the authors' own"),
)
"""Every known release, in the order ``decalign datasets`` prints them."""

CHECKPOINTS = (
    "The DecAlign authors' checkpoints: plain PyTorch state dicts of their model, from "
    "the authors' release of their code (the paper: arXiv 2503.11892). decalign reads them with "
    "decalign.model.interop.load_official_checkpoint / load_official_state_dict, which check every key and shape "
    "against the preset: mosi 842,241 parameters, mosei 922,177, sims 404,673, iemocap 487,206 "
    "(docs/method.md)."
)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks: constant memory for a 10 GB file); of a
    directory (the native format), of its files' names and bytes in name order."""
    p = Path(path)
    digest = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            digest.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def fingerprint(dataset: Any, path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """``{"content": ..., "sha256": ..., "splits": {...}}`` of a loaded dataset and its file
    (``sha256`` is ``None`` for the built-in data, which has no file)."""
    from decalign.train.runguard import data_fingerprint

    content = data_fingerprint(dataset)
    return {"content": content["sha256"], "sha256": file_sha256(path) if path is not None else None,
            "splits": content["splits"]}


def identify(dataset: Any) -> tuple[Release | None, list[str]]:
    """The release whose kind, widths and padded lengths ``dataset`` has, and how it differs from
    the published split sizes (empty when it does not)."""
    sizes = tuple(len(dataset.splits[s]) for s in SPLITS)
    for release in RELEASES:
        dims, lens = release.shape()
        if release.kind != dataset.kind or dict(dataset.input_dims) != dims or dict(dataset.seq_lens) != lens:
            continue
        if release.splits is None or sizes == release.splits:
            return release, []
        return release, [f"split sizes {'/'.join(map(str, sizes))} differ from the published "
                         f"{'/'.join(map(str, release.splits))} (train/valid/test): a subset or another release"]
    return None, []


def _shape_text(release: Release) -> str:
    dims, lens = release.shape()
    return " / ".join(f"{m} {lens[m]}x{dims[m]}" for m in dims)


def releases_text() -> str:
    """The releases as the command prints them."""
    lines = ["Known releases (nothing is downloaded; get the files from the source named, then run "
             "`decalign datasets FILE` or `decalign info FILE`):", ""]
    for r in RELEASES:
        lines.append(f"{r.benchmark} ({r.kind}, {r.name}): {', '.join(r.files)}")
        lines.append(f"  shapes T x D:  {_shape_text(r)}")
        splits = "/".join(map(str, r.splits)) if r.splits else "the file's own"
        spec = DATASET_KINDS[r.kind]
        target = (f"labels in [{spec.label_range[0]:g}, {spec.label_range[1]:g}]" if spec.label_range
                  else f"classes {', '.join(spec.class_names or ())}")
        lines.append(f"  splits (train/valid/test): {splits};  {target}")
        lines.append(f"  from: {r.source}")
        if r.note:
            lines.append(f"  note: {r.note}")
        lines.append("")
    lines += [CHECKPOINTS, "",
              "Your own videos: `decalign extract` builds such a file offline (docs/extract.md).",
              "Verify a download: `decalign datasets FILE` prints its content fingerprint (the digest runs store "
              "in dataset.json) and its sha256; compare them with a colleague's copy or the release's. "
              "docs/datasets.md has the details."]
    return "\n".join(lines)


def identify_file(path: str | os.PathLike[str], kind: str = "auto") -> dict[str, Any]:
    """What ``decalign datasets FILE`` reports: kind, layout, the release it matches, fingerprints."""
    import warnings

    from decalign.config import DataConfig
    from decalign.data import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # `decalign info` lists the problems
        dataset = load_dataset(path, DataConfig(dataset=kind, path=os.fspath(path)))
    release, differences = identify(dataset)
    return {
        "file": os.fspath(path),
        "kind": dataset.kind,
        "layout": dataset.layout,
        "release": None if release is None else {"benchmark": release.benchmark, "layout": release.layout,
                                                 "variant": release.name,
                                                 "files": list(release.files), "source": release.source},
        "differences": differences,
        "fingerprint": fingerprint(dataset, path),
    }


def describe_file(path: str | os.PathLike[str] | None, kind: str = "auto") -> dict[str, Any]:
    """What ``decalign info`` reports on a data file (``None``: the built-in dataset, as
    ``decalign train`` without ``--data`` generates it): :func:`decalign.data.describe_dataset`
    and the file's :func:`fingerprint`; for a file that is not a full labelled dataset, the
    samples it holds to predict on (:func:`decalign.data.samples.describe_samples`) and its
    sha256. Problems the reader fixed are listed in ``notes``, not warned about; values a reader
    cannot accept (:class:`~decalign.data.checks.InvalidValuesError`) and a full dataset with a
    problem raise."""
    import warnings

    from decalign.config import DataConfig
    from decalign.data.checks import InvalidValuesError
    from decalign.data.loading import describe_dataset, load_dataset
    from decalign.data.types import DataError

    builtin = path is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # problems are listed in the description's notes
        try:
            dataset = load_dataset(path, DataConfig(dataset="synthetic" if builtin else kind,  # type: ignore[arg-type]
                                                    path=None if path is None else os.fspath(path)))
            info = describe_dataset(dataset)
            info["fingerprint"] = fingerprint(dataset, path)
            if builtin:
                info["source"] = "the built-in dataset (generated; `decalign train` without --data trains on it)"
        except InvalidValuesError:  # the layout was understood; its values are what is wrong
            raise
        except DataError as err:  # not a full labelled dataset: samples to predict on, if anything
            from decalign.data.samples import describe_samples, samples_instead

            if path is None:
                raise
            info = describe_samples(samples_instead(path, err))
            info["fingerprint"] = {"content": None, "sha256": file_sha256(path)}
    return info

"""decalign's own on-disk format: any number (>= 2) of modalities, no pickle.

Two containers, same content:

* a **directory** with ``train.npz``, ``valid.npz``, ``test.npz`` (or ``train.safetensors`` ...)
  and an optional ``meta.json``;
* a **single file** ``data.npz`` / ``data.safetensors`` whose array names carry the split:
  ``train/<key>``, ``valid/<key>``, ``test/<key>``.

Arrays of one split (``<key>`` above):

=========================  ==================  ==================================================
key                        shape / dtype       meaning
=========================  ==================  ==================================================
``<modality>``             ``[N, T_m, D_m]``   features, any float dtype (read as float32); every
                           float               float rank-3 array not listed below is a modality
``<modality>_lengths``     ``[N]`` int         optional true lengths (default: ``T_m``)
``labels``                 ``[N]``             float -> regression, integer -> classification
``ids``                    ``[N]`` str         optional sample ids (numpy unicode, not object)
``raw_text``               ``[N]`` str         optional transcripts
``text_bert``              ``[N, 3, T]`` int   optional BERT inputs (token ids, mask, segments)
``extra.<name>``           ``[N]`` float       optional further labels (CH-SIMS unimodal labels)
=========================  ==================  ==================================================

safetensors holds numbers only, so ``ids`` and ``raw_text`` go into the file's ``__metadata__`` as
JSON lists (keys ``ids``/``raw_text``, or ``<split>/ids`` in a single file).

``meta.json`` (all fields optional; in a single ``.npz`` it is the 0-d string array ``__meta__``,
in a single ``.safetensors`` the metadata entry ``__meta__``)::

    {"format": "decalign-native", "version": 1, "kind": "custom", "task": "regression",
     "modalities": ["text", "audio", "vision"], "class_names": null, "label_range": [-3, 3],
     "notes": []}

``task`` overrides the label dtype rule; ``modalities`` fixes the order (and ignores other arrays);
``extraction`` (files from ``decalign extract``) records how the features were made;
``kind`` names a benchmark/synthetic origin (otherwise detected from the widths, ``custom`` if none
matches). ``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Generator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from decalign.data.arrays import (
    ReadLog,
    bert_inputs,
    class_labels,
    float_features,
    int_lengths,
    regression_labels,
    replace_nonfinite_,
    str_array,
)
from decalign.data.detect import BENCHMARKS, detect_kind, shape_mismatch
from decalign.data.types import SPLITS, DataError, MultimodalDataset, Split, Task, numbered_ids

__all__ = ["ACCEPTED_FORMATS", "FORMAT_NAME", "FORMAT_VERSION", "load_native", "save_native", "sniff_format"]

FORMAT_NAME = "decalign-native"
FORMAT_VERSION = 1
_META_KEY = "__meta__"
_EXTRA_PREFIX = "extra."
_RESERVED = {"labels", "ids", "raw_text", "text_bert"}
_STRING_KEYS = ("ids", "raw_text")


# ----------------------------------------------------------------------------------------- sniffing


def sniff_format(path: str | os.PathLike[str]) -> str:
    """``"directory"``, ``"npz"``, ``"safetensors"`` or ``"pickle"``, from the file's first bytes
    (file names are not trusted)."""
    p = Path(path)
    if p.is_dir():
        return "directory"
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
        size = p.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as err:
        raise DataError(f"{p}: cannot read ({err.strerror or err})") from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz"
    if len(head) >= 9 and head[8:9] == b"{":
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len <= size - 8:
            return "safetensors"
    if _looks_like_text(head):
        first = head.decode("utf-8", "replace").splitlines()[0][:60] if head.strip() else ""
        raise DataError(f"{p}: a text file (it begins {first!r}), not a data file; decalign reads {ACCEPTED_FORMATS}")
    return "pickle"


ACCEPTED_FORMATS = (
    "a benchmark pickle (MMSA's aligned_50.pkl / unaligned_50.pkl / unaligned_39.pkl, the IEMOCAP pickles), "
    "the native .npz or .safetensors format or a directory of it (docs/data.md; `decalign datasets` lists the "
    "releases); a CSV of transcripts is an input of `decalign extract --transcripts`"
)
"""What a ``--data`` file may be: the one sentence every "not a data file" error ends with."""


def _looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (CSV, JSON, YAML, a README) rather than a pickle.

    Every pickle the benchmarks ship is binary (protocol 2 or later starts with ``0x80``); the
    text-only protocol 0 starts with an opcode such as ``(`` (a dict or list) and is still read
    as a pickle. Without this check a CSV reached the unpickler and was reported as a "corrupt or
    truncated pickle (KeyError: 35)" ('#' is no opcode) or a refused global."""
    if not head or head[:1] in (b"\x80", b"(", b"}", b"]", b")"):
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # cut in the middle of a character: judge the whole characters
        text = head[:-3].decode("utf-8", "ignore")
    return all(ch.isprintable() or ch in "\n\r\t" for ch in text)


# ------------------------------------------------------------------------------------------ writing


def _meta(dataset: MultimodalDataset) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": dataset.kind,
        "task": dataset.task,
        "modalities": list(dataset.modalities),
        "class_names": list(dataset.class_names) if dataset.class_names is not None else None,
        "label_range": list(dataset.label_range) if dataset.label_range is not None else None,
        "notes": list(dataset.notes),
        **({"extraction": dataset.provenance} if dataset.provenance else {}),
    }


def _split_arrays(sp: Split) -> dict[str, np.ndarray]:
    """Numeric arrays of a split under their format keys (strings separately)."""
    out: dict[str, np.ndarray] = {}
    for m, x in sp.features.items():
        out[m] = np.ascontiguousarray(x, dtype=np.float32)
        out[f"{m}_lengths"] = np.ascontiguousarray(sp.lengths[m], dtype=np.int64)
    out["labels"] = np.ascontiguousarray(sp.labels)
    for k, a in sp.extra_labels.items():
        out[_EXTRA_PREFIX + k] = np.ascontiguousarray(a)
    if sp.text_bert is not None:
        out["text_bert"] = np.ascontiguousarray(sp.text_bert, dtype=np.int64)
    return out


def _split_strings(sp: Split) -> dict[str, np.ndarray]:
    out = {"ids": np.asarray(sp.ids, dtype=np.str_)}
    if sp.raw_text is not None:
        out["raw_text"] = np.asarray(sp.raw_text, dtype=np.str_)
    return out


def _check_names(dataset: MultimodalDataset) -> None:
    for m in dataset.modalities:
        if m in _RESERVED or m.endswith("_lengths") or m.startswith(_EXTRA_PREFIX) or "/" in m or m == _META_KEY:
            raise DataError(f"modality name {m!r} clashes with a reserved key of the native format")


def save_native(
    dataset: MultimodalDataset, out_path: str | os.PathLike[str], fmt: str | None = None
) -> Path:
    """Write ``dataset`` in the native format and return the written path.

    ``out_path`` ending in ``.npz`` / ``.safetensors`` gives a single file; anything else a
    directory with one file per split plus ``meta.json``. ``fmt`` (``"npz"`` or
    ``"safetensors"``) defaults to the suffix, else ``"npz"``.
    """
    out = Path(out_path)
    single = out.suffix in (".npz", ".safetensors")
    if fmt is None:
        fmt = out.suffix[1:] if single else "npz"
    if fmt not in ("npz", "safetensors"):
        raise DataError(f"unknown native format {fmt!r}; use 'npz' or 'safetensors'")
    if single and out.suffix != f".{fmt}":
        raise DataError(f"{out}: the suffix {out.suffix!r} does not match format {fmt!r}")
    _check_names(dataset)
    meta = _meta(dataset)
    # Written atomically (a temporary file or folder, then renamed), with modes from the umask:
    # an interrupted write never leaves a half dataset where a reader would take it for whole.
    from decalign.safety.outputs import atomic_directory, atomic_write

    if single:
        numeric: dict[str, np.ndarray] = {}
        strings: dict[str, np.ndarray] = {}
        for name in SPLITS:
            sp = dataset.splits[name]
            numeric.update({f"{name}/{k}": a for k, a in _split_arrays(sp).items()})
            strings.update({f"{name}/{k}": a for k, a in _split_strings(sp).items()})
        if fmt == "npz":
            arrays = {**numeric, **strings, _META_KEY: np.array(json.dumps(meta))}
            return atomic_write(out, lambda tmp: _write_npz(Path(tmp), arrays))
        return atomic_write(
            out, lambda tmp: _write_safetensors(Path(tmp), numeric, strings, {_META_KEY: json.dumps(meta)}))

    def fill(folder: Path) -> None:
        for name in SPLITS:
            sp = dataset.splits[name]
            target = folder / f"{name}.{fmt}"
            if fmt == "npz":
                arrays = {**_split_arrays(sp), **_split_strings(sp)}
                atomic_write(target, lambda tmp, arrays=arrays: _write_npz(Path(tmp), arrays))
            else:  # through atomic_write for its umask mode (safetensors' own file is 0600)
                atomic_write(target, lambda tmp, sp=sp: _write_safetensors(Path(tmp), _split_arrays(sp),
                                                                           _split_strings(sp), {}))
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")

    return atomic_directory(out, fill)


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    # np.savez appends ".npz" to names without it; write through a handle to keep the name.
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore  # numpy's stub reads **arrays as its allow_pickle flag too


def _write_safetensors(
    path: Path, numeric: Mapping[str, np.ndarray], strings: Mapping[str, np.ndarray], extra: dict[str, str]
) -> None:
    from safetensors.numpy import save_file

    metadata = {"format": FORMAT_NAME, **extra}
    metadata.update({k: json.dumps(a.tolist(), ensure_ascii=False) for k, a in strings.items()})
    save_file(dict(numeric), str(path), metadata=metadata)


# ------------------------------------------------------------------------------------------ reading


class _Source:
    """Key -> array access to one split of a native file, with the file name for messages."""

    def __init__(self, where: str, keys: list[str], get: Callable[[str], Any]) -> None:
        self.where = where
        self.keys = keys
        self._get = get

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def __getitem__(self, key: str) -> Any:
        return self._get(key)


def _npz_getter(npz: Any, file: str, prefix: str) -> Callable[[str], np.ndarray]:
    def get(key: str) -> np.ndarray:
        try:
            return npz[prefix + key]
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise DataError(
                    f"{file}, key {prefix + key!r}: stored as a numpy object array, which needs pickle "
                    "to load; save strings as numpy unicode (e.g. np.asarray(ids, dtype=str))"
                ) from None
            raise DataError(f"{file}, key {prefix + key!r}: unreadable array ({err})") from None
        except (OSError, zipfile.BadZipFile, EOFError) as err:
            raise DataError(f"{file}, key {prefix + key!r}: truncated or corrupt .npz ({err})") from None

    return get


@contextmanager
def _open_npz(path: Path) -> Generator[Any, None, None]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: truncated or corrupt .npz file ({err})") from None
    with npz:
        yield npz


@contextmanager
def _open_safetensors(path: Path) -> Generator[tuple[Any, dict[str, str]], None, None]:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="numpy")
    except Exception as err:  # safetensors raises its own SafetensorError / OSError
        raise DataError(f"{path}: truncated or corrupt .safetensors file ({err})") from None
    with handle as fh:
        yield fh, dict(fh.metadata() or {})


def _st_getter(fh: Any, meta: Mapping[str, str], file: str, prefix: str) -> Callable[[str], Any]:
    def get(key: str) -> Any:
        full = prefix + key
        if key in _STRING_KEYS:
            try:
                return np.asarray(json.loads(meta[full]), dtype=np.str_)
            except (KeyError, json.JSONDecodeError) as err:
                raise DataError(f"{file}: metadata entry {full!r} is not a JSON list of strings ({err})") from None
        try:
            return fh.get_tensor(full)
        except Exception as err:
            raise DataError(f"{file}, key {full!r}: unreadable tensor ({err})") from None

    return get


def _parse_meta(text: str, where: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: invalid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(meta).__name__}")
    return meta


def _modalities_of(src: _Source, meta_modalities: list[str] | None) -> list[str]:
    if meta_modalities is not None:
        missing = [m for m in meta_modalities if m not in src]
        if missing:
            raise DataError(f"{src.where}: missing key(s) {missing} (listed in meta 'modalities'); found {src.keys}")
        return list(meta_modalities)
    return [
        k
        for k in src.keys
        if k not in _RESERVED and not k.endswith("_lengths") and not k.startswith(_EXTRA_PREFIX) and k != _META_KEY
    ]


def _read_split(src: _Source, name: str, modalities: list[str], task: Task, log: ReadLog) -> Split:
    where = src.where
    if "labels" not in src:
        raise DataError(f"{where}: missing key 'labels'; found keys {src.keys}")
    raw_labels = src["labels"]
    labels = (regression_labels if task == "regression" else class_labels)(raw_labels, where, "labels")
    n = int(labels.shape[0])
    features: dict[str, np.ndarray] = {}
    lengths: dict[str, np.ndarray] = {}
    for m in modalities:
        value = src[m]
        if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
            raise DataError(
                f"{where}, key {m!r}: expected float features [N, T, D], found "
                f"{getattr(value, 'dtype', type(value).__name__)} {getattr(value, 'shape', '')} "
                "(list the modalities in meta.json to ignore other arrays)"
            )
        x, bad = replace_nonfinite_(float_features(value, where, m))
        log.count_nonfinite(name, m, bad)
        features[m] = x
        key = f"{m}_lengths"
        lengths[m] = (
            int_lengths(src[key], where, key, log)
            if key in src
            else np.full(x.shape[0], x.shape[1], dtype=np.int64)
        )
    if "ids" in src:
        ids = str_array(src["ids"], where, "ids")
    else:
        ids = numbered_ids(name, n)
        log.note("no 'ids' array: ids generated as '<split>$_$<index>'")
    raw_text = str_array(src["raw_text"], where, "raw_text") if "raw_text" in src else None
    text_bert = None
    if "text_bert" in src:
        text_bert, swapped = bert_inputs(src["text_bert"], where, n)
        if swapped:
            log.note(f"{where}: text_bert rows 1 and 2 were swapped (mask = larger sum); put back")
    extra = {
        k[len(_EXTRA_PREFIX) :]: regression_labels(src[k], where, k) for k in src.keys if k.startswith(_EXTRA_PREFIX)
    }
    return Split(
        features=features,
        lengths=lengths,
        labels=labels,
        ids=ids,
        extra_labels=extra,
        text_bert=text_bert,
        raw_text=raw_text,
    )


def _task_from_labels(labels: Any, where: str) -> Task:
    dt = np.asarray(labels).dtype
    if dt.kind == "f":
        return "regression"
    if dt.kind in "iu":
        return "classification"
    raise DataError(f"{where}, key 'labels': expected float (regression) or integer (classes) labels, found {dt}")


def _build(
    sources: dict[str, _Source], meta: dict[str, Any], kind: str | None, layout: str, origin: str, log: ReadLog
) -> MultimodalDataset:
    meta_mods = meta.get("modalities")
    modalities = _modalities_of(sources["train"], meta_mods)
    if len(modalities) < 2:
        raise DataError(
            f"{sources['train'].where}: the native format needs at least 2 modalities (float "
            f"[N, T, D] arrays), found {modalities} among keys {sources['train'].keys}"
        )
    for name in ("valid", "test"):
        missing = [m for m in modalities if m not in sources[name]]
        if missing:
            raise DataError(f"{sources[name].where}: missing key(s) {missing}; found keys {sources[name].keys}")

    meta_kind = meta.get("kind")
    if kind is not None and meta_kind not in (None, kind):
        log.note(f"read as {kind!r} as requested; the file's meta says {meta_kind!r}")
    forced = kind or meta_kind
    spec = BENCHMARKS.get(forced) if forced else None
    if "labels" not in sources["train"]:
        raise DataError(f"{sources['train'].where}: missing key 'labels'; found keys {sources['train'].keys}")
    task: Task
    if meta.get("task") in ("regression", "classification"):
        task = meta["task"]
    elif spec is not None and spec.task is not None:  # every benchmark has its task
        task = spec.task
    else:
        task = _task_from_labels(sources["train"]["labels"], sources["train"].where)

    splits = {name: _read_split(sources[name], name, modalities, task, log) for name in SPLITS}
    dims = {m: int(splits["train"].features[m].shape[2]) for m in modalities}
    seq_lens = {m: int(splits["train"].features[m].shape[1]) for m in modalities}
    if forced is None:
        detected = detect_kind(dims)
        forced = detected if detected == "custom" or BENCHMARKS[detected].task == task else "custom"
        spec = BENCHMARKS.get(forced)
    if kind is not None or meta_kind is None:
        # A kind from the file's own meta is its provenance (e.g. IEMOCAP read from the dialogue
        # pickle), not a claim about published shapes: only user-forced/detected kinds are checked.
        mismatch = shape_mismatch(forced, dims, seq_lens)
        if mismatch:
            log.note(mismatch)

    # The meta's class names / label range describe the kind it names; a different forced kind
    # takes the benchmark's own (or none).
    own = meta if meta_kind in (None, forced) else {}
    class_names = own.get("class_names")
    if class_names is None and spec is not None and task == spec.task:
        class_names = spec.class_names
    label_range = own.get("label_range")
    if label_range is None and spec is not None and task == spec.task:
        label_range = spec.label_range
    notes = [str(t) for t in meta.get("notes") or []]
    return MultimodalDataset(
        kind=str(forced),
        layout=layout,
        task=task,
        splits=splits,
        class_names=tuple(class_names) if class_names is not None else None,
        label_range=(float(label_range[0]), float(label_range[1])) if label_range is not None else None,
        source=origin,
        notes=notes,
        provenance=meta["extraction"] if isinstance(meta.get("extraction"), dict) else None,
    )


def load_native(path: str | os.PathLike[str], kind: str | None, log: ReadLog) -> MultimodalDataset:
    """Read a native-format directory or single file (see the module docstring).

    ``kind`` forces the dataset kind (``None``: the file's meta, else detected from widths).
    """
    p = Path(path)
    what = sniff_format(p)
    if what == "directory":
        return _load_directory(p, kind, log)
    if what == "npz":
        with _open_npz(p) as npz:
            files = list(npz.files)
            meta = _parse_meta(str(npz[_META_KEY]), f"{p}, key '__meta__'") if _META_KEY in files else {}
            sources = _single_file_sources(p, files, lambda prefix: _npz_getter(npz, str(p), prefix))
            return _build(sources, meta, kind, "npz", str(p), log)
    if what == "safetensors":
        with _open_safetensors(p) as (fh, md):
            meta = _parse_meta(md[_META_KEY], f"{p}, metadata '__meta__'") if _META_KEY in md else {}
            keys = list(fh.keys()) + [k for k in md if k.endswith(("/ids", "/raw_text"))]
            sources = _single_file_sources(p, keys, lambda prefix: _st_getter(fh, md, str(p), prefix))
            return _build(sources, meta, kind, "safetensors", str(p), log)
    raise DataError(f"{p}: not a native .npz/.safetensors file or directory")


def _single_file_sources(
    path: Path, keys: list[str], getter: Callable[[str], Callable[[str], Any]]
) -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for name in SPLITS:
        prefix = f"{name}/"
        sub = [k[len(prefix) :] for k in keys if k.startswith(prefix)]
        if not sub:
            raise DataError(
                f"{path}: missing split {name!r} (no arrays named '{name}/<key>'); found keys "
                f"{sorted(keys)[:12]}{' ...' if len(keys) > 12 else ''}"
            )
        sources[name] = _Source(f"{path}, split {name!r}", sub, getter(prefix))
    return sources


def _load_directory(path: Path, kind: str | None, log: ReadLog) -> MultimodalDataset:
    found = {f.name for f in path.iterdir()}
    fmts = [fmt for fmt in ("npz", "safetensors") if any(f"{s}.{fmt}" in found for s in SPLITS)]
    if not fmts:
        pickles = sorted(f for f in found if f.endswith(".pkl"))
        hint = f"; to read a benchmark pickle pass the file itself, e.g. {path / pickles[0]}" if pickles else ""
        raise DataError(
            f"{path}: a dataset directory needs train/valid/test .npz or .safetensors files; found "
            f"{sorted(found)[:12]}{hint}"
        )
    if len(fmts) > 1:
        raise DataError(f"{path}: holds both .npz and .safetensors split files; keep one format")
    fmt = fmts[0]
    for s in SPLITS:
        if f"{s}.{fmt}" not in found:
            raise DataError(f"{path}: missing split {s!r} (no file {s}.{fmt}); found {sorted(found)}")
    meta: dict[str, Any] = {}
    if "meta.json" in found:
        meta = _parse_meta((path / "meta.json").read_text(), str(path / "meta.json"))
    with ExitStack() as stack:
        sources: dict[str, _Source] = {}
        for s in SPLITS:
            file = path / f"{s}.{fmt}"
            if fmt == "npz":
                npz = stack.enter_context(_open_npz(file))
                sources[s] = _Source(f"{file}, split {s!r}", list(npz.files), _npz_getter(npz, str(file), ""))
            else:
                fh, md = stack.enter_context(_open_safetensors(file))
                keys = list(fh.keys()) + [k for k in _STRING_KEYS if k in md]
                sources[s] = _Source(f"{file}, split {s!r}", keys, _st_getter(fh, md, str(file), ""))
        return _build(sources, meta, kind, fmt, str(path), log)

"""The native (pickle-free) format: save -> load round trips, convert, hand-written files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from decalign.config import DataConfig, SyntheticConfig
from decalign.data import (
    DataError,
    MultimodalDataset,
    convert,
    load_dataset,
    make_synthetic,
    save_native,
)
from decalign.testing.fixtures import write_iemocap_dialogue_pickle, write_mmsa_pickle

SPLITS = ("train", "valid", "test")


def assert_same_dataset(a: MultimodalDataset, b: MultimodalDataset, *, notes: bool = True) -> None:
    assert (a.kind, a.task, a.class_names, a.label_range) == (b.kind, b.task, b.class_names, b.label_range)
    assert a.modalities == b.modalities
    if notes:
        assert a.notes == b.notes
    for name in SPLITS:
        x, y = a.splits[name], b.splits[name]
        for m in x.features:
            assert y.features[m].dtype == x.features[m].dtype
            np.testing.assert_array_equal(x.features[m], y.features[m])
            np.testing.assert_array_equal(x.lengths[m], y.lengths[m])
            assert y.lengths[m].dtype == np.int64
        assert x.labels.dtype == y.labels.dtype
        np.testing.assert_array_equal(x.labels, y.labels)
        assert x.ids.tolist() == y.ids.tolist()
        assert sorted(x.extra_labels) == sorted(y.extra_labels)
        for k in x.extra_labels:
            np.testing.assert_array_equal(x.extra_labels[k], y.extra_labels[k])
        assert (x.text_bert is None) == (y.text_bert is None)
        if x.text_bert is not None:
            np.testing.assert_array_equal(x.text_bert, y.text_bert)
        assert (x.raw_text is None) == (y.raw_text is None)
        if x.raw_text is not None:
            assert x.raw_text.tolist() == y.raw_text.tolist()


def _datasets(tmp: Path) -> dict[str, MultimodalDataset]:
    return {
        "mosi-unaligned": load_dataset(write_mmsa_pickle(tmp / "u.pkl", kind="mosi", aligned=False, n=(4, 2, 2))),
        "sims": load_dataset(write_mmsa_pickle(tmp / "s.pkl", kind="sims", n=(4, 2, 2))),
        "iemocap-dialogue": load_dataset(write_iemocap_dialogue_pickle(tmp / "d.pkl", ways=4)),
        "synthetic": make_synthetic(SyntheticConfig(n_train=6, n_valid=3, n_test=3, seq_len=4, variable_lengths=True)),
    }


@pytest.mark.parametrize("target", ["dir-npz", "dir-safetensors", "file.npz", "file.safetensors"])
def test_native_round_trip(tmp_path: Path, target: str) -> None:
    for name, ds in _datasets(tmp_path).items():
        if target.startswith("dir"):
            out = save_native(ds, tmp_path / f"{name}-native", fmt=target.split("-")[1])
            assert out.is_dir() and (out / "meta.json").exists()
        else:
            out = save_native(ds, tmp_path / f"{name}-{target}")
            assert out.is_file()
        back = load_dataset(out)
        assert back.layout == ("safetensors" if "safetensors" in target else "npz")
        assert back.source == str(out)
        assert_same_dataset(ds, back)


def test_npz_files_need_no_pickle(tmp_path: Path) -> None:
    ds = load_dataset(write_mmsa_pickle(tmp_path / "u.pkl", kind="mosi", aligned=False, n=(4, 2, 2)))
    out = save_native(ds, tmp_path / "nat", fmt="npz")
    with np.load(out / "train.npz", allow_pickle=False) as npz:
        assert npz["ids"].dtype.kind == "U" and npz["raw_text"].dtype.kind == "U"
        assert npz["text"].dtype == np.float32 and npz["labels"].dtype == np.float32
        assert npz["text_bert"].dtype == np.int64
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "decalign-native" and meta["modalities"] == ["text", "audio", "vision"]


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_convert_round_trip(tmp_path: Path, fmt: str) -> None:
    src = write_mmsa_pickle(tmp_path / "unaligned_50.pkl", kind="mosei", aligned=False, n=(4, 2, 2), neg_inf_audio=3)
    with pytest.warns(UserWarning):
        ref = load_dataset(src)
    with pytest.warns(UserWarning):
        out = convert(src, tmp_path / "converted", fmt)
    back = load_dataset(out)
    assert_same_dataset(ref, back)  # notes travel in meta.json
    assert back.kind == "mosei"
    pickle_path = write_mmsa_pickle(tmp_path / "m.pkl", kind="mosi", n=(3, 2, 2))
    forced = convert(pickle_path, tmp_path / f"f.{fmt}", kind="custom")
    assert load_dataset(forced).kind == "custom"


def test_convert_iemocap_dialogue_uses_split_settings(tmp_path: Path) -> None:
    src = write_iemocap_dialogue_pickle(tmp_path / "d.pkl", n_dialogues=(10, 3))
    cfg = DataConfig(valid_fraction=0.3, split_seed=3)
    out = convert(src, tmp_path / "d.npz", config=cfg)
    assert_same_dataset(load_dataset(src, cfg), load_dataset(out))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _handmade_split(rng: np.random.Generator, n: int, *, labels_int: bool) -> dict[str, np.ndarray]:
    return {
        "eeg": rng.standard_normal((n, 7, 3)),  # float64 on purpose
        "face": rng.standard_normal((n, 2, 5)).astype(np.float16),
        "speech": rng.standard_normal((n, 9, 4)).astype(np.float32),
        "gaze": rng.standard_normal((n, 4, 2)).astype(np.float32),
        "speech_lengths": rng.integers(1, 10, size=n),
        "labels": rng.integers(0, 3, size=n) if labels_int else rng.standard_normal(n),
    }


def test_hand_written_directory_with_four_modalities(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    d = tmp_path / "mydata"
    for name, n in zip(SPLITS, (6, 3, 3)):
        arrays = _handmade_split(rng, n, labels_int=True)
        arrays["labels"][:3] = [0, 1, 2]
        _write_npz(d / f"{name}.npz", arrays)
    ds = load_dataset(d)
    assert ds.kind == "custom" and ds.task == "classification" and ds.num_classes == 3
    assert ds.modalities == ("eeg", "face", "speech", "gaze")  # file order
    assert ds.input_dims == {"eeg": 3, "face": 5, "speech": 4, "gaze": 2}
    assert all(x.dtype == np.float32 for x in ds.splits["train"].features.values())
    assert ds.splits["train"].ids.tolist()[:2] == ["train$_$0", "train$_$1"]
    assert (ds.splits["valid"].lengths["eeg"] == 7).all()
    assert any("ids generated" in n for n in ds.notes)

    (d / "meta.json").write_text(json.dumps({"modalities": ["speech", "eeg"], "task": "regression"}))
    ds2 = load_dataset(d)
    assert ds2.modalities == ("speech", "eeg") and ds2.task == "regression"
    assert ds2.splits["train"].labels.dtype == np.float32


def test_single_npz_with_split_prefixes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays: dict[str, np.ndarray] = {}
    for name, n in zip(SPLITS, (5, 2, 2)):
        for k, v in _handmade_split(rng, n, labels_int=False).items():
            arrays[f"{name}/{k}"] = v
        arrays[f"{name}/ids"] = np.array([f"{name}-{i}" for i in range(n)])
    # A misleading name: content decides.
    path = _write_npz(tmp_path / "data.pkl", arrays)
    ds = load_dataset(path)
    assert ds.layout == "npz" and ds.task == "regression" and ds.kind == "custom"
    assert ds.splits["test"].ids.tolist() == ["test-0", "test-1"]


def test_native_detects_benchmarks_without_meta(tmp_path: Path) -> None:
    ds = load_dataset(write_mmsa_pickle(tmp_path / "m.pkl", kind="mosei", n=(3, 2, 2)))
    for sp in ds.splits.values():  # within CH-SIMS's label range too, so it can be read as sims
        sp.labels[:] = np.clip(sp.labels, -1, 1)
    out = save_native(ds, tmp_path / "nat")
    (out / "meta.json").unlink()
    back = load_dataset(out)
    assert back.kind == "mosei" and back.label_range == (-3.0, 3.0)
    forced = load_dataset(out, DataConfig(dataset="sims"))
    assert forced.kind == "sims" and any("'mosei'" in n for n in forced.notes)


def test_native_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    # Object arrays would need pickle.
    d = tmp_path / "obj"
    for name in SPLITS:
        arrays = _handmade_split(rng, 3, labels_int=False)
        arrays["ids"] = np.array(["a", "b", "c"], dtype=object)
        _write_npz(d / f"{name}.npz", arrays)
    with pytest.raises(DataError, match=r"train\.npz.*'ids'.*unicode"):
        load_dataset(d)
    # A missing split file.
    d = tmp_path / "missing"
    for name in ("train", "test"):
        _write_npz(d / f"{name}.npz", _handmade_split(rng, 3, labels_int=False))
    with pytest.raises(DataError, match=r"missing split 'valid'.*valid\.npz"):
        load_dataset(d)
    # One modality only.
    d = tmp_path / "one"
    for name in SPLITS:
        _write_npz(d / f"{name}.npz", {"x": rng.standard_normal((3, 2, 2)), "labels": rng.standard_normal(3)})
    with pytest.raises(DataError, match="at least 2 modalities"):
        load_dataset(d)
    # A non-float array that is not a known key.
    d = tmp_path / "intfeat"
    for name in SPLITS:
        arrays = _handmade_split(rng, 3, labels_int=False)
        arrays["mask"] = np.ones((3, 4), dtype=np.int64)
        _write_npz(d / f"{name}.npz", arrays)
    with pytest.raises(DataError, match=r"key 'mask'.*float features"):
        load_dataset(d)
    # A single file without split prefixes.
    path = _write_npz(tmp_path / "flat.npz", _handmade_split(rng, 3, labels_int=False))
    with pytest.raises(DataError, match=r"flat\.npz: missing split 'train'"):
        load_dataset(path)
    # An empty directory, a truncated npz, a truncated safetensors file.
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train/valid/test"):
        load_dataset(tmp_path / "empty")
    ds = make_synthetic(SyntheticConfig(n_train=4, n_valid=2, n_test=2, seq_len=3))
    for suffix in ("npz", "safetensors"):
        out = save_native(ds, tmp_path / f"t.{suffix}")
        out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
        with pytest.raises(DataError, match=str(out)):
            load_dataset(out)


def test_save_native_rejects_clashing_names_and_formats(tmp_path: Path) -> None:
    ds = make_synthetic(SyntheticConfig(n_train=4, n_valid=2, n_test=2, seq_len=3))
    with pytest.raises(DataError, match="does not match"):
        save_native(ds, tmp_path / "x.npz", fmt="safetensors")
    with pytest.raises(DataError, match="unknown native format"):
        save_native(ds, tmp_path / "x", fmt="hdf5")
    bad = make_synthetic(SyntheticConfig(n_train=4, n_valid=2, n_test=2, seq_len=3, dims={"labels": 2, "a": 2}))
    with pytest.raises(DataError, match="reserved"):
        save_native(bad, tmp_path / "y")

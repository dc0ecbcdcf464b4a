"""Readers for the benchmark layouts: round trips on fixtures, quirks, kind detection, IEMOCAP."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from decalign.config import DataConfig, SyntheticConfig
from decalign.data import (
    DataError,
    NonFiniteWarning,
    describe_dataset,
    load_dataset,
    load_pickle,
)
from decalign.testing.fixtures import write_iemocap_dialogue_pickle, write_mmsa_pickle

SMALL = (6, 3, 3)
SPLITS = ("train", "valid", "test")

LAYOUT_CASES = [
    ("mosi", True, "mmsa-aligned"),
    ("mosi", False, "mmsa-unaligned"),
    ("mosei", True, "mmsa-aligned"),
    ("mosei", False, "mmsa-unaligned"),
    ("sims", False, "mmsa-unaligned"),
    ("iemocap", True, "iemocap-utterance"),
    ("custom", True, "mmsa-aligned"),
    ("custom", False, "mmsa-unaligned"),
]


@pytest.mark.parametrize(("kind", "aligned", "layout"), LAYOUT_CASES)
def test_mmsa_round_trip(tmp_path: Path, kind: str, aligned: bool, layout: str) -> None:
    # A misleading file name on purpose: the content decides.
    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind=kind, aligned=aligned, n=SMALL, seed=3)
    raw = load_pickle(path)
    ds = load_dataset(path)
    assert ds.kind == kind
    assert ds.layout == layout
    assert ds.source == str(path)
    assert ds.task == ("classification" if kind == "iemocap" else "regression")
    assert ds.modalities == ("text", "audio", "vision")
    assert ds.aligned == (aligned and kind != "sims")
    for name in SPLITS:
        sp, r = ds.splits[name], raw[name]
        assert len(sp) == SMALL[SPLITS.index(name)]
        for m in ds.modalities:
            assert sp.features[m].dtype == np.float32
            np.testing.assert_array_equal(sp.features[m], r[m])
            if f"{m}_lengths" in r:
                np.testing.assert_array_equal(sp.lengths[m], r[f"{m}_lengths"])
            elif m == "text" and not aligned and "text_bert" in r:
                np.testing.assert_array_equal(sp.lengths[m], r["text_bert"][:, 1].sum(axis=1))
            else:
                assert (sp.lengths[m] == r[m].shape[1]).all()
            assert sp.lengths[m].dtype == np.int64
        if kind == "iemocap":
            assert sp.labels.dtype == np.int64
            np.testing.assert_array_equal(sp.labels, r["classification_labels"].astype(np.int64))
        else:
            assert sp.labels.dtype == np.float32
            np.testing.assert_array_equal(sp.labels, r["regression_labels"])
        assert sp.ids.dtype.kind == "U"
        assert sp.ids.tolist() == list(r["id"])
        assert sp.raw_text is not None and sp.raw_text.tolist() == list(r["raw_text"])
        if "text_bert" in r:
            assert sp.text_bert is not None and sp.text_bert.dtype == np.int64
            np.testing.assert_array_equal(sp.text_bert, r["text_bert"])
        if kind == "sims":
            assert sorted(sp.extra_labels) == ["regression_labels_A", "regression_labels_T", "regression_labels_V"]
            for k, v in sp.extra_labels.items():
                np.testing.assert_array_equal(v, r[k])
                assert v.dtype == np.float32
        else:
            assert sp.extra_labels == {}
    if kind == "iemocap":
        assert ds.class_names == ("happy", "sad", "neutral", "angry", "excited", "frustrated")
        assert ds.num_classes == 6
    elif kind == "sims":
        assert ds.label_range == (-1.0, 1.0)
    elif kind in ("mosi", "mosei"):
        assert ds.label_range == (-3.0, 3.0)
    else:
        assert ds.label_range is None


def test_lists_and_plain_strings_read_like_arrays(tmp_path: Path) -> None:
    kw = {"kind": "mosei", "aligned": False, "n": (4, 2, 2), "seed": 1}
    arrays = load_dataset(write_mmsa_pickle(tmp_path / "a.pkl", **kw))
    lists = load_dataset(write_mmsa_pickle(tmp_path / "b.pkl", as_lists=True, object_strings=False, **kw))
    for name in SPLITS:
        a, b = arrays.splits[name], lists.splits[name]
        for m in a.features:
            np.testing.assert_array_equal(a.features[m], b.features[m])
            np.testing.assert_array_equal(a.lengths[m], b.lengths[m])
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.text_bert, b.text_bert)


def test_int_and_float_text_bert_agree_and_swapped_rows_are_fixed(tmp_path: Path) -> None:
    kw = {"kind": "mosi", "n": (5, 2, 2), "seed": 2}
    as_float = load_dataset(write_mmsa_pickle(tmp_path / "f.pkl", float_text_bert=True, **kw))
    as_int = load_dataset(write_mmsa_pickle(tmp_path / "i.pkl", float_text_bert=False, **kw))
    swapped = load_dataset(write_mmsa_pickle(tmp_path / "s.pkl", swapped_bert_rows=True, **kw))
    for name in SPLITS:
        tb = as_int.splits[name].text_bert
        assert tb is not None and tb.dtype == np.int64
        np.testing.assert_array_equal(as_float.splits[name].text_bert, tb)
        np.testing.assert_array_equal(swapped.splits[name].text_bert, tb)
        assert (tb[:, 1].sum() > tb[:, 2].sum()) and set(np.unique(tb[:, 1])) <= {0, 1}
    assert not any("swapped" in n for n in as_int.notes)
    assert any("swapped" in n for n in swapped.notes)


def test_neg_inf_audio_is_zeroed_with_a_counted_warning(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "mosei.pkl", kind="mosei", n=(6, 2, 2), neg_inf_audio=17, seed=4)
    raw = load_pickle(path)
    with pytest.warns(NonFiniteWarning, match=r"replaced 17 non-finite") as rec:
        ds = load_dataset(path)
    assert len([w for w in rec if issubclass(w.category, NonFiniteWarning)]) == 1
    assert "train audio 17" in str(rec[0].message)
    audio = ds.splits["train"].features["audio"]
    assert np.isfinite(audio).all()
    bad = ~np.isfinite(raw["train"]["audio"])
    assert bad.sum() == 17
    assert (audio[bad] == 0).all()
    np.testing.assert_array_equal(audio[~bad], raw["train"]["audio"][~bad])
    assert any("replaced 17 non-finite" in n for n in ds.notes)


def test_finite_file_gives_no_warning(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "mosi.pkl", kind="mosi", n=(3, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteWarning)
        ds = load_dataset(path)
    assert ds.notes == []


def test_nonfinite_replacement_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import decalign.data.arrays as arrays

    x = np.random.default_rng(0).standard_normal((7, 5, 3)).astype(np.float32)
    x[0, 0, 0], x[3, 2, 1], x[6, 4, 2] = np.nan, np.inf, -np.inf
    y, count = arrays.replace_nonfinite_(x.copy(), chunk_elements=4)
    assert count == 3 and np.isfinite(y).all()
    ro = x.copy()
    ro.flags.writeable = False
    z, count = arrays.replace_nonfinite_(ro, chunk_elements=16)
    assert count == 3 and z is not ro and np.isfinite(z).all()
    np.testing.assert_array_equal(y, z)


@pytest.mark.parametrize("kind", ["mosi", "mosei", "sims", "iemocap", "custom"])
def test_kind_is_detected_from_shapes_not_names(tmp_path: Path, kind: str) -> None:
    path = write_mmsa_pickle(tmp_path / "mosi_aligned_50.pkl", kind=kind, n=(3, 2, 2))
    assert load_dataset(path).kind == kind


def test_forcing_a_kind(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "x.pkl", kind="mosei", n=(3, 2, 2))
    forced = load_dataset(path, DataConfig(dataset="mosi"))
    assert forced.kind == "mosi"
    assert any("'mosei'" in n and "mosi" in n for n in forced.notes)
    custom = load_dataset(path, DataConfig(dataset="custom"))
    assert custom.kind == "custom" and custom.label_range is None and custom.notes == []
    same = load_dataset(path, DataConfig(dataset="mosei"))
    assert same.kind == "mosei" and same.notes == []


def test_custom_task_from_labels(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "c.pkl", kind="custom", regression=False, n=(8, 3, 3))
    ds = load_dataset(path)
    assert ds.kind == "custom" and ds.task == "classification"
    assert ds.num_classes == 6 and ds.class_names is None
    reg = load_dataset(write_mmsa_pickle(tmp_path / "r.pkl", kind="custom", n=(8, 3, 3)))
    assert reg.task == "regression"


def test_custom_with_two_modalities_and_other_lengths(tmp_path: Path) -> None:
    path = write_mmsa_pickle(
        tmp_path / "two.pkl",
        kind="custom",
        aligned=False,
        dims={"text": 7, "audio": 3},
        seq_lens={"text": 4, "audio": 9},
        n=(5, 2, 2),
    )
    ds = load_dataset(path)
    assert ds.kind == "custom" and ds.modalities == ("text", "audio")
    assert ds.input_dims == {"text": 7, "audio": 3} and ds.seq_lens == {"text": 4, "audio": 9}


def test_padded_lengths_that_differ_from_the_benchmark_are_noted(tmp_path: Path) -> None:
    path = write_mmsa_pickle(
        tmp_path / "m.pkl", kind="mosi", seq_lens={"text": 20, "audio": 20, "vision": 20}, n=(3, 2, 2)
    )
    ds = load_dataset(path)
    assert ds.kind == "mosi"
    assert any("padded lengths" in n for n in ds.notes)


@pytest.mark.parametrize("protocol", [2, 5])
def test_other_pickle_protocols(tmp_path: Path, protocol: int) -> None:
    kw = {"kind": "sims", "n": (3, 2, 2), "seed": 5}
    ref = load_dataset(write_mmsa_pickle(tmp_path / "ref.pkl", **kw))
    other = load_dataset(write_mmsa_pickle(tmp_path / "p.pkl", protocol=protocol, **kw))
    for m in ref.modalities:
        np.testing.assert_array_equal(ref.splits["train"].features[m], other.splits["train"].features[m])
    np.testing.assert_array_equal(ref.splits["test"].ids, other.splits["test"].ids)


# ----------------------------------------------------------------------------- dialogue IEMOCAP


@pytest.mark.parametrize("ways", [6, 4])
@pytest.mark.parametrize("vid_sets", [False, True])
def test_iemocap_dialogue(tmp_path: Path, ways: int, vid_sets: bool) -> None:
    path = write_iemocap_dialogue_pickle(
        tmp_path / "IEMOCAP_features_raw_6way.pkl", ways=ways, n_dialogues=(10, 3), vid_sets=vid_sets
    )
    raw = load_pickle(path)
    labels, text, sentences = raw[2], raw[3], raw[6]
    train_vids, test_vids = set(raw[7]), set(raw[8])
    ds = load_dataset(path)
    assert ds.kind == "iemocap" and ds.layout == "iemocap-dialogue" and ds.task == "classification"
    names = ("happy", "sad", "neutral", "angry", "excited", "frustrated")[:ways]
    assert ds.class_names == names
    assert ds.seq_lens == {"text": 1, "audio": 1, "vision": 1}
    assert ds.input_dims == {"text": 100, "audio": 100, "vision": 512}

    def dialogues(split: str) -> set[str]:
        return {i.split("$_$")[0] for i in ds.splits[split].ids}

    assert dialogues("test") == test_vids
    assert dialogues("train") | dialogues("valid") == train_vids
    assert not dialogues("train") & dialogues("valid")
    assert len(dialogues("valid")) == 1  # 10% of 10 dialogues
    assert sum(len(ds.splits[s]) for s in SPLITS) == sum(len(v) for v in labels.values())
    for name in SPLITS:
        sp = ds.splits[name]
        for k, sample_id in enumerate(sp.ids):
            vid, idx = sample_id.split("$_$")
            idx = int(idx)
            assert sp.labels[k] == labels[vid][idx]
            np.testing.assert_allclose(sp.features["text"][k, 0], text[vid][idx], rtol=1e-6)
            assert sp.raw_text is not None and sp.raw_text[k] == sentences[vid][idx]
    assert (ds.splits["train"].labels.max()) <= ways - 1


def test_iemocap_dialogue_valid_split_is_seeded(tmp_path: Path) -> None:
    path = write_iemocap_dialogue_pickle(tmp_path / "d.pkl", n_dialogues=(12, 3), features_as_arrays=True)
    cfg = DataConfig(valid_fraction=0.25, split_seed=7)
    a, b = load_dataset(path, cfg), load_dataset(path, cfg)
    np.testing.assert_array_equal(a.splits["valid"].ids, b.splits["valid"].ids)
    assert len({i.split("$_$")[0] for i in a.splits["valid"].ids}) == 3
    others = [load_dataset(path, DataConfig(valid_fraction=0.25, split_seed=s)) for s in range(5)]
    assert len({tuple(o.splits["valid"].ids) for o in others}) > 1


def test_iemocap_dialogue_cannot_be_forced_to_a_regression_benchmark(tmp_path: Path) -> None:
    path = write_iemocap_dialogue_pickle(tmp_path / "d.pkl")
    with pytest.raises(DataError, match="dialogue-level IEMOCAP"):
        load_dataset(path, DataConfig(dataset="mosi"))
    assert load_dataset(path, DataConfig(dataset="custom")).kind == "custom"


@pytest.mark.parametrize("dialogue", [False, True])
def test_iemocap_paper_count_protocol(tmp_path: Path, dialogue: bool) -> None:
    path = (
        write_iemocap_dialogue_pickle(tmp_path / "d.pkl")
        if dialogue
        else write_mmsa_pickle(tmp_path / "u.pkl", kind="iemocap", n=(8, 4, 4))
    )
    base = load_dataset(path, DataConfig(iemocap_protocol="session_valid"))
    merged = load_dataset(path, DataConfig(iemocap_protocol="paper_count"))
    tr, va = base.splits["train"], base.splits["valid"]
    assert len(merged.splits["train"]) == len(tr) + len(va)
    np.testing.assert_array_equal(merged.splits["train"].ids, np.concatenate([tr.ids, va.ids]))
    np.testing.assert_array_equal(merged.splits["valid"].ids, va.ids)
    np.testing.assert_array_equal(merged.splits["test"].ids, base.splits["test"].ids)
    assert any("paper_count" in n for n in merged.notes)
    assert not any("paper_count" in n for n in base.notes)


# ------------------------------------------------------------------------------ entry point, info


def test_load_dataset_without_path_is_synthetic(tmp_path: Path) -> None:
    cfg = DataConfig(synthetic=SyntheticConfig(n_train=8, n_valid=4, n_test=4, seq_len=5))
    ds = load_dataset(None, cfg)
    assert ds.kind == "synthetic" and len(ds.splits["train"]) == 8
    path = write_mmsa_pickle(tmp_path / "m.pkl", kind="mosi", n=(3, 2, 2))
    forced = load_dataset(path, DataConfig(dataset="synthetic", synthetic=cfg.synthetic))
    assert forced.kind == "synthetic" and any("not read" in n for n in forced.notes)
    with pytest.raises(DataError, match="needs its data file: pass --data"):
        load_dataset(None, DataConfig(dataset="mosi"))
    assert load_dataset(None, DataConfig(path=str(path))).kind == "mosi"


def test_describe_dataset(tmp_path: Path) -> None:
    path = write_mmsa_pickle(tmp_path / "s.pkl", kind="sims", n=(5, 2, 2), neg_inf_audio=2)
    with pytest.warns(NonFiniteWarning):
        ds = load_dataset(path)
    info = describe_dataset(ds)
    json.dumps(info)
    assert info["kind"] == "sims" and info["layout"] == "mmsa-unaligned" and info["task"] == "regression"
    tr = info["splits"]["train"]
    assert tr["n"] == 5
    assert tr["modalities"]["audio"]["shape"] == [5, 400, 33]
    assert tr["modalities"]["audio"]["dtype"] == "float32"
    lo, hi = tr["modalities"]["audio"]["lengths"]
    assert 1 <= lo <= hi <= 400
    assert -1.0 <= tr["labels"]["min"] <= tr["labels"]["max"] <= 1.0
    assert tr["extra_labels"] == ["regression_labels_A", "regression_labels_T", "regression_labels_V"]
    assert any("non-finite" in n for n in info["notes"])
    cls = describe_dataset(load_dataset(write_iemocap_dialogue_pickle(tmp_path / "d.pkl", ways=4)))
    assert set(cls["splits"]["train"]["labels"]["class_counts"]) <= {"happy", "sad", "neutral", "angry"}
    assert cls["num_classes"] == 4


def test_import_is_torch_free() -> None:
    import subprocess
    import sys

    code = "import sys, decalign.data, decalign.testing.fixtures; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_directory_of_pickles_gets_a_hint(tmp_path: Path) -> None:
    write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="mosi", n=(3, 2, 2))
    with pytest.raises(DataError, match="pass the file itself"):
        load_dataset(tmp_path)

"""Every validation error names the file, the split, the key and the expected vs found shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from decalign.data import DataError, load_dataset, load_pickle
from decalign.testing.fixtures import write_iemocap_dialogue_pickle, write_mmsa_pickle, write_pickle

N = (5, 3, 3)


def _broken(tmp_path: Path, edit: Callable[[dict[str, Any]], None], kind: str = "mosi", **kw: Any) -> Path:
    """A fixture file whose unpickled dict went through ``edit``."""
    src = write_mmsa_pickle(tmp_path / "src.pkl", kind=kind, n=N, **kw)
    data = load_pickle(src)
    edit(data)
    return write_pickle(data, tmp_path / "broken.pkl")


def _error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    return msg


def test_missing_split(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda d: d.pop("valid"))
    msg = _error(path)
    assert "missing split" in msg and "'valid'" in msg and "found keys ['test', 'train']" in msg


def test_split_not_a_dict(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda d: d.update(test=[1, 2]))
    assert "split 'test'" in _error(path)


def test_missing_feature_key(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda d: d["valid"].pop("audio"))
    msg = _error(path)
    assert "split 'valid'" in msg and "missing key 'audio'" in msg


def test_missing_label_key(tmp_path: Path) -> None:
    path = _broken(tmp_path, lambda d: d["test"].pop("regression_labels"))
    msg = _error(path)
    assert "split 'test'" in msg and "'regression_labels'" in msg


def test_sample_count_mismatch(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["train"]["audio"] = d["train"]["audio"][:-1]

    msg = _error(_broken(tmp_path, edit))
    assert "split 'train'" in msg and "key 'audio'" in msg
    assert "expected 5 samples" in msg and "(4, 50, 5)" in msg


def test_label_count_mismatch_with_ids(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["valid"]["id"] = d["valid"]["id"][:2]

    msg = _error(_broken(tmp_path, edit))
    assert "split 'valid'" in msg and "'id'" in msg and "(3,)" in msg and "(2,)" in msg


def test_wrong_rank(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["test"]["vision"] = d["test"]["vision"].mean(axis=1)

    msg = _error(_broken(tmp_path, edit))
    assert "split 'test'" in msg and "key 'vision'" in msg and "rank 3" in msg and "(3, 20)" in msg


def test_length_longer_than_padded_sequence(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["train"]["audio_lengths"][2] = 400  # padded audio length is 375

    msg = _error(_broken(tmp_path, edit, aligned=False))
    assert "split 'train'" in msg and "'audio_lengths'" in msg
    assert "[1, 375]" in msg and "400" in msg and "(5, 375, 5)" in msg


def test_lengths_count_mismatch(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["valid"]["vision_lengths"] = d["valid"]["vision_lengths"][:-1]

    msg = _error(_broken(tmp_path, edit, aligned=False))
    assert "split 'valid'" in msg and "'vision_lengths'" in msg and "(3,)" in msg and "(2,)" in msg


def test_negative_and_fractional_lengths(tmp_path: Path) -> None:
    def neg(d: dict[str, Any]) -> None:
        d["train"]["audio_lengths"][0] = -1

    assert ">= 0" in _error(_broken(tmp_path, neg, aligned=False))

    def frac(d: dict[str, Any]) -> None:
        d["train"]["audio_lengths"] = [v + 0.5 for v in d["train"]["audio_lengths"]]

    assert "whole numbers" in _error(_broken(tmp_path, frac, aligned=False))


def test_zero_lengths_become_one_with_a_note(tmp_path: Path) -> None:
    src = write_mmsa_pickle(tmp_path / "src.pkl", kind="mosi", aligned=False, n=N)
    data = load_pickle(src)
    data["train"]["audio_lengths"][1] = 0
    ds = load_dataset(write_pickle(data, tmp_path / "z.pkl"))
    assert ds.splits["train"].lengths["audio"][1] == 1
    assert any("zero length" in n for n in ds.notes)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_labels(tmp_path: Path, bad: float) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["valid"]["regression_labels"][1] = bad

    msg = _error(_broken(tmp_path, edit))
    assert "split 'valid'" in msg and "'regression_labels'" in msg and "1 non-finite" in msg
    assert "index 1" in msg


def test_non_finite_unimodal_labels(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["train"]["regression_labels_A"][0] = np.nan

    msg = _error(_broken(tmp_path, edit, kind="sims"))
    assert "'regression_labels_A'" in msg


def test_fractional_class_labels(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["train"]["classification_labels"][2] = 1.5

    msg = _error(_broken(tmp_path, edit, kind="iemocap"))
    assert "split 'train'" in msg and "'classification_labels'" in msg and "1.5" in msg


def test_class_label_out_of_range(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["test"]["classification_labels"][0] = 9.0

    msg = _error(_broken(tmp_path, edit, kind="iemocap"))
    assert "split 'test'" in msg and "9" in msg and "6 classes" in msg


def test_text_bert_shape(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["train"]["text_bert"] = d["train"]["text_bert"][:, :2]

    msg = _error(_broken(tmp_path, edit))
    assert "'text_bert'" in msg and "(5, 3, T)" in msg and "(5, 2, 50)" in msg


def test_width_mismatch_between_splits(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["test"]["audio"] = d["test"]["audio"][:, :, :3]

    msg = _error(_broken(tmp_path, edit))
    assert "split 'test'" in msg and "'audio'" in msg and "(3, 50, 3)" in msg and "(5, 50, 5)" in msg


def test_ragged_feature_lists(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        feats = d["train"]["vision"].tolist()
        feats[0] = feats[0][:-1]
        d["train"]["vision"] = feats

    msg = _error(_broken(tmp_path, edit))
    assert "split 'train'" in msg and "key 'vision'" in msg and "list of 5" in msg


def test_too_few_modalities(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        for s in d.values():
            s.pop("audio")
            s.pop("vision")

    msg = _error(_broken(tmp_path, edit))
    assert "split 'train'" in msg and "'audio'" in msg and "'vision'" in msg


def test_dialogue_file_inconsistencies(tmp_path: Path) -> None:
    path = write_iemocap_dialogue_pickle(tmp_path / "d.pkl", n_dialogues=(4, 2))
    data = list(load_pickle(path))
    vid = next(iter(data[8]))
    data[4][vid] = data[4][vid][:-1]  # one audio vector short
    bad = write_pickle(tuple(data), tmp_path / "bad.pkl", protocol=2)
    msg = _error(bad)
    assert f"dialogue {vid!r}" in msg and "'videoAudio'" in msg and "expected shape" in msg

    data = list(load_pickle(path))
    data[8] = [*list(data[8]), "Ses09_missing"]
    msg = _error(write_pickle(tuple(data), tmp_path / "bad2.pkl", protocol=2))
    assert "'Ses09_missing'" in msg and "missing" in msg


def test_unknown_layout_nine_items_not_dicts(tmp_path: Path) -> None:
    path = write_pickle(tuple(range(9)), tmp_path / "nine.pkl")
    assert re.search("tuple of 9 items", _error(path))

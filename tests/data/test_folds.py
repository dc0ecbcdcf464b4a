"""Splits by video (:mod:`decalign.data.folds`): the greedy fold assignment in closed form, folds
that rotate whole videos over train + valid and never carry a clip of the test split, the valid
halves, ``decalign convert --folds / --valid-halves`` writing exactly those datasets, and the
one-line refusals."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from decalign.cli import main
from decalign.config import DataConfig
from decalign.data import MultimodalDataset, Split, load_dataset
from decalign.data.folds import (
    assign_folds,
    cv_folds,
    fold_plan,
    pool_splits,
    valid_halves,
    video_of,
)
from decalign.errors import DataError
from decalign.testing.fixtures import write_mmsa_pickle


def _split(videos: dict[str, int], offset: float, steps: int = 4) -> Split:
    ids = np.array([f"{v}$_${k}" for v, n in videos.items() for k in range(1, n + 1)])
    n = len(ids)
    return Split(features={"text": np.full((n, steps, 3), offset, np.float32)},
                 lengths={"text": np.full(n, steps, np.int64)},
                 labels=np.arange(n, dtype=np.float32) + 100 * offset, ids=ids)


def _dataset(train: dict[str, int], valid: dict[str, int], test: dict[str, int]) -> MultimodalDataset:
    return MultimodalDataset("custom", "npz", "regression",
                             {"train": _split(train, 0.0), "valid": _split(valid, 1.0), "test": _split(test, 2.0)},
                             source="mem")


def _videos(split: Split) -> set[str]:
    return {video_of(str(i)) for i in split.ids}


def test_video_of_takes_the_id_up_to_the_last_separator() -> None:
    assert video_of("03bSnISJMiM$_$11") == "03bSnISJMiM"
    assert video_of("a$_$b$_$3") == "a$_$b"
    assert video_of("f_x$_$1") == "f_x"  # "_" inside a video id is part of it
    for bad in ("train_00001", "$_$3", "plain"):
        with pytest.raises(DataError, match="names no video") as err:
            video_of(bad)
        assert "\n" not in str(err.value) and "'<video>$_$<clip>'" in str(err.value)


def test_folds_are_greedy_largest_video_first_and_independent_of_order() -> None:
    ids = [f"{v}$_${k}" for v, n in {"a": 9, "b": 6, "c": 5, "d": 2, "e": 4, "f_x": 3}.items()
           for k in range(n)]
    fold = assign_folds(ids, 3)
    by_video = {video_of(i): int(f) for i, f in zip(ids, fold)}
    # a(9), b(6), c(5) -> 9, 6, 5; e(4) -> fold 2 (9); f_x(3) -> fold 1 (9); d(2) -> fold 0 (11)
    assert by_video == {"a": 0, "b": 1, "c": 2, "e": 2, "f_x": 1, "d": 0}
    reordered = ids[::-1]
    again = {video_of(i): int(f) for i, f in zip(reordered, assign_folds(reordered, 3))}
    assert again == by_video
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 9  # at most one video's clips apart


def test_cv_folds_rotate_whole_videos_and_never_read_the_test_split() -> None:
    data = _dataset({"a": 9, "b": 6, "c": 5, "d": 2}, {"e": 4, "f_x": 3}, {"z": 6})
    folds = cv_folds(data, 3)
    tested = [_videos(f.splits["test"]) for f in folds]
    assert tested == [{"a", "d"}, {"b", "f_x"}, {"c", "e"}]
    labels = {str(i): float(y) for s in ("train", "valid") for i, y in zip(data.splits[s].ids, data.splits[s].labels)}
    for k, fold in enumerate(folds):
        assert _videos(fold.splits["valid"]) == tested[(k + 1) % 3]  # the next fold selects
        assert _videos(fold.splits["train"]) == set().union(*tested) - tested[k] - tested[(k + 1) % 3]
        assert fold.source == f"mem, fold {k + 1} of 3"
        for split in fold.splits.values():
            assert not np.any(split.features["text"] == 2.0)  # nothing of the original test split
            assert [labels[str(i)] for i in split.ids] == split.labels.tolist()  # every array cut alike
    # each pooled clip is tested exactly once
    every = sorted(str(i) for f in folds for i in f.splits["test"].ids)
    assert every == sorted(labels)
    # the fold owns its arrays: standardising it in place leaves the source as it was
    folds[0].splits["train"].features["text"] += 5.0
    assert np.all(data.splits["train"].features["text"] == 0.0)


def test_plan_rows_number_folds_from_one_and_pooling_keeps_file_order() -> None:
    data = _dataset({"a": 2, "b": 1}, {"c": 1}, {"z": 1})
    plan = fold_plan(data, 3)
    assert plan.rows() == [("a$_$1", "a", 1), ("a$_$2", "a", 1), ("b$_$1", "b", 2), ("c$_$1", "c", 3)]
    np.testing.assert_array_equal(pool_splits(data).ids, ["a$_$1", "a$_$2", "b$_$1", "c$_$1"])


def test_valid_halves_swap_roles_keep_train_and_leave_the_test_split_out() -> None:
    data = _dataset({"t1": 5, "t2": 3}, {"a": 7, "b": 5, "c": 4, "d": 3, "e_x": 2}, {"z": 6})
    first, second = valid_halves(data)
    assert _videos(first.splits["valid"]) == _videos(second.splits["test"]) == {"a", "d"}
    assert _videos(first.splits["test"]) == _videos(second.splits["valid"]) == {"b", "c", "e_x"}
    # largest first, each to the smaller half: a (7) | b (5) + c (4) | d (3) to a | e_x (2) to b
    assert (len(first.splits["valid"]), len(first.splits["test"])) == (10, 11)
    for ds in (first, second):
        np.testing.assert_array_equal(ds.splits["train"].ids, data.splits["train"].ids)
        for name in ("valid", "test"):
            assert np.all(ds.splits[name].features["text"] == 1.0)


@pytest.mark.parametrize(("train", "valid", "k", "message"), [
    ({"a": 2}, {"b": 2}, 3, "2 video(s) among 4 clips cannot fill 3 folds"),
    ({"a": 2, "b": 2, "c": 2}, {"d": 2}, 2, "needs at least 3 folds"),
    # a file without ids: the readers number its clips '<split>$_$<i>', which name no video
    ({"train": 4}, {"valid": 2}, 3, "the file has no ids of its own, so no clip names its video"),
])
def test_too_few_folds_or_videos_is_a_one_line_error(train: dict[str, int], valid: dict[str, int], k: int,
                                                     message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)) as err:
        fold_plan(_dataset(train, valid, {"z": 1}), k)
    assert "\n" not in str(err.value)


def test_splits_padded_differently_are_refused_by_name() -> None:
    data = _dataset({"a": 2, "b": 2, "c": 2}, {"d": 2}, {"z": 1})
    data.splits["valid"] = _split({"d": 2}, 1.0, steps=5)
    with pytest.raises(DataError, match="key 'text': splits \\['train', 'valid'\\] have per-sample shapes"):
        fold_plan(data, 3)
    one = _dataset({"t": 2}, {"a": 3}, {"z": 1})
    with pytest.raises(DataError, match="fewer than 2 videos"):
        valid_halves(one)


def test_convert_writes_the_folds_and_halves_as_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_mmsa_pickle(tmp_path / "d.pkl", "mosi", n=(18, 9, 6), dims={"text": 4, "audio": 3, "vision": 2},
                               seq_lens={"text": 5, "audio": 5, "vision": 5})
    config = DataConfig(dataset="mosi", standardize=None)
    original = load_dataset(source, config)
    assert main(["convert", str(source), str(tmp_path / "cv"), "--dataset", "mosi", "--folds", "3"]) == 0
    assert main(["convert", str(source), str(tmp_path / "h"), "--dataset", "mosi", "--valid-halves",
                 "--format", "safetensors"]) == 0
    assert sorted(p.name for p in (tmp_path / "cv").iterdir()) == ["fold_1.npz", "fold_2.npz", "fold_3.npz"]
    for k, want in enumerate(cv_folds(original, 3), 1):
        got = load_dataset(tmp_path / "cv" / f"fold_{k}.npz", config)
        for name, split in want.splits.items():
            np.testing.assert_array_equal(got.splits[name].ids, split.ids)
            np.testing.assert_array_equal(got.splits[name].labels, split.labels)
            np.testing.assert_array_equal(got.splits[name].features["audio"], split.features["audio"])
    half_a = load_dataset(tmp_path / "h" / "half_a.safetensors", config)
    np.testing.assert_array_equal(half_a.splits["valid"].ids, valid_halves(original)[0].splits["valid"].ids)
    capsys.readouterr()
    # refusals: one line each, nothing written
    assert main(["convert", str(source), str(tmp_path / "cv"), "--folds", "3"]) != 0
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(source), str(tmp_path / "few"), "--folds", "30"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot fill 30 folds" in err[0] and not (tmp_path / "few").exists()
    from decalign.data import make_synthetic, save_native

    no_videos = save_native(make_synthetic(), tmp_path / "syn.npz")  # ids 'train_00000': no video part
    assert main(["convert", str(no_videos), str(tmp_path / "syn"), "--folds", "3"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'train_00000' names no video" in err[0] and not (tmp_path / "syn").exists()
    with pytest.raises(SystemExit):  # --folds and --valid-halves exclude each other
        main(["convert", str(source), str(tmp_path / "x"), "--folds", "3", "--valid-halves"])

"""`decalign datasets` and the fingerprints of `decalign info`: where the benchmark files come
from, which release a file is, and a digest to compare a download with (issue 27)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from decalign.cli import COMMANDS, main
from decalign.data.catalog import RELEASES, file_sha256
from decalign.data.detect import DATASET_KINDS
from decalign.testing.fixtures import write_iemocap_dialogue_pickle, write_mmsa_pickle


def test_datasets_is_a_command_and_lists_every_benchmark_with_shapes_from_the_registry(capsys) -> None:
    assert "datasets" in COMMANDS
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("CMU-MOSI", "CMU-MOSEI", "CH-SIMS", "IEMOCAP", "aligned_50.pkl", "unaligned_50.pkl",
                 "unaligned_39.pkl", "IEMOCAP_features_raw_6way.pkl", "decalign extract", "sha256"):
        assert name in out, name
    # the widths printed are the registry's, so `datasets` cannot disagree with detection
    mosei = DATASET_KINDS["mosei"]
    assert f"audio {mosei.seq_lens['unaligned']['audio']}x{mosei.dims['audio']}" in out
    assert "16326/1871/4659" in out


def test_datasets_json_has_every_release(capsys) -> None:
    assert main(["datasets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["files"] for r in listed] == [list(r.files) for r in RELEASES]
    assert {r["kind"] for r in listed} == {"mosi", "mosei", "sims", "iemocap"}


def test_a_file_is_identified_and_its_fingerprints_match_info_and_the_run(tmp_path: Path, capsys) -> None:
    path = write_mmsa_pickle(tmp_path / "aligned_50.pkl", "mosi", n=(24, 8, 8))
    assert main(["datasets", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["kind"] == "mosi" and found["release"]["benchmark"] == "CMU-MOSI"
    assert found["release"]["layout"] == "aligned"
    # a subset of the published release: said, with both sizes
    assert found["differences"] and "1284/229/686" in found["differences"][0] and "24/8/8" in found["differences"][0]
    assert found["fingerprint"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fingerprint"]["content"] == found["fingerprint"]["content"]
    assert info["fingerprint"]["sha256"] == found["fingerprint"]["sha256"]
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert found["fingerprint"]["content"] in text and found["fingerprint"]["sha256"] in text
    # the content fingerprint is the one a run on this file stores in dataset.json
    from decalign.config import DataConfig
    from decalign.data import load_dataset
    from decalign.train.runguard import data_fingerprint

    assert data_fingerprint(load_dataset(path, DataConfig()))["sha256"] == found["fingerprint"]["content"]


def test_fingerprints_tell_a_changed_file_from_a_repickled_one(tmp_path: Path, capsys) -> None:
    a = write_mmsa_pickle(tmp_path / "a.pkl", "mosi", seed=0)
    same = write_mmsa_pickle(tmp_path / "same.pkl", "mosi", seed=0, protocol=2)  # other bytes, same data
    other = write_mmsa_pickle(tmp_path / "other.pkl", "mosi", seed=1)
    found = {}
    for p in (a, same, other):
        assert main(["datasets", str(p), "--json"]) == 0
        found[p.name] = json.loads(capsys.readouterr().out)["fingerprint"]
    assert found["a.pkl"]["content"] == found["same.pkl"]["content"]
    assert found["a.pkl"]["sha256"] != found["same.pkl"]["sha256"]
    assert found["a.pkl"]["content"] != found["other.pkl"]["content"]


def test_the_dialogue_level_iemocap_file_is_identified(tmp_path: Path, capsys) -> None:
    path = write_iemocap_dialogue_pickle(tmp_path / "IEMOCAP_features_raw_6way.pkl")
    assert main(["datasets", str(path)]) == 0
    out = capsys.readouterr().out
    assert "IEMOCAP dialogue level (IEMOCAP_features_raw_6way.pkl" in out and "file sha256:" in out


def test_unknown_shapes_match_no_release(tmp_path: Path, capsys) -> None:
    path = write_mmsa_pickle(tmp_path / "c.pkl", "custom", dims={"text": 6, "audio": 3},
                             seq_lens={"text": 4, "audio": 4})
    assert main(["datasets", str(path)]) == 0
    assert "none of the known releases" in capsys.readouterr().out


def test_file_sha256_of_a_directory_depends_on_names_and_bytes(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.npz").write_bytes(b"1")
    first = file_sha256(d)
    (d / "a.npz").write_bytes(b"2")
    assert file_sha256(d) != first
    (d / "a.npz").write_bytes(b"1")
    assert file_sha256(d) == first
    (d / "a.npz").rename(d / "b.npz")
    assert file_sha256(d) != first


def test_info_without_a_path_describes_the_built_in_dataset(capsys) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "kind:       synthetic" in out and "built-in dataset" in out and "content fingerprint:" in out
    assert "file sha256" not in out  # generated: no file


def test_info_help_explains_the_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    out = capsys.readouterr().out
    assert "fingerprint" in out and "built-in dataset" in out


@pytest.mark.parametrize("text", ["# a comment\n1,2\n", "id,text\n1,hello\n", '{"a": 1}\n'])
def test_a_text_file_as_data_says_what_is_accepted(tmp_path: Path, capsys, text: str) -> None:
    """Reproduced: a CSV given as --data was a "corrupt or truncated pickle (KeyError: 35)"."""
    path = tmp_path / "notes.csv"
    path.write_text(text)
    for argv in (["info", str(path)], ["train", "--data", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "a text file" in err and "native .npz" in err and "MMSA" in err and "KeyError" not in err, err
        assert err.count("\n") == 1

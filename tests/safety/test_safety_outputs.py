"""The output guard (issue 25): every command that writes refuses to replace what exists unless
told, never writes over one of its inputs, locks its output, writes atomically, and gives its
files the umask's modes (safetensors files too); a full disk during a checkpoint save is one line.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from decalign.cli import main
from decalign.errors import FileAccessError, UsageError
from decalign.safety.outputs import OutputLock, atomic_directory, guarded_output, lock_file_for

TINY = ["model.d_model=8", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=4"]


@pytest.fixture
def umask_022() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _checkpoint(path: Path) -> Path:
    """A small real checkpoint (random weights) of a regression model on two modalities."""
    import torch

    import decalign
    from decalign.config import DataConfig
    from decalign.train.checkpoint import ModelInfo, build_model, save_checkpoint

    config = decalign.resolve_config(decalign.load_dataset(None, DataConfig(dataset="synthetic")), overrides=TINY)
    info = ModelInfo("custom", "regression", ("a", "b"), {"a": 3, "b": 2}, {"a": 5, "b": 4}, 1)
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(config, info), config, info)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors")


def _tiny_data():  # type: ignore[no-untyped-def]
    from decalign.config import SyntheticConfig
    from decalign.data.synthetic import make_synthetic

    return make_synthetic(SyntheticConfig(n_train=8, n_valid=4, n_test=4, seq_len=3, dims={"text": 4, "audio": 2}))


# -- the guard itself ---------------------------------------------------------------------------


def test_an_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("mine")
    with pytest.raises(UsageError, match=r"--out '.*out\.csv' already exists; pass --overwrite"), \
            guarded_output(target):
        pass
    with guarded_output(target, overwrite=True) as out:
        out.write_text("new")
    assert target.read_text() == "new"


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "output holds the input",
                                 "output inside the input folder"])
def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path: Path, how: str) -> None:
    data = tmp_path / "folder" / "data.npz"
    data.parent.mkdir()
    data.write_bytes(b"precious")
    out = {"same path": data, "symlink": tmp_path / "link.npz", "hard link": tmp_path / "hard.npz",
           "output holds the input": data.parent, "output inside the input folder": data.parent / "x.npz"}[how]
    inputs = {"--data": data.parent if how == "output inside the input folder" else data}
    if how == "symlink":
        out.symlink_to(data)
    elif how == "hard link":
        os.link(data, out)
    with pytest.raises(UsageError, match=r"the input --data .*choose another --out"), \
            guarded_output(out, inputs=inputs, overwrite=True):
        pass
    assert data.read_bytes() == b"precious"


def test_two_writers_of_one_output_cannot_both_run(tmp_path: Path) -> None:
    """Issue case: two ``extract`` runs on one --out both reported success (last writer won)."""
    target = tmp_path / "data.npz"
    with guarded_output(target), pytest.raises(UsageError, match="being written by another decalign command"), \
            guarded_output(target, overwrite=True):
        pass
    # Another process too (the lock is the operating system's, not this process's).
    script = textwrap.dedent(f"""
        from decalign.safety.outputs import guarded_output
        from decalign.errors import UsageError
        try:
            with guarded_output({str(target)!r}):
                print("acquired")
        except UsageError as err:
            print("refused:", err)
    """)
    with OutputLock(lock_file_for(target), lambda lock: RuntimeError(str(lock))):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.startswith("refused:"), done.stdout + done.stderr
    with guarded_output(target):  # released: free again
        pass


def test_a_directory_is_swapped_in_whole_or_not_at_all(tmp_path: Path, umask_022: object) -> None:
    target = tmp_path / "dataset"
    target.mkdir()
    (target / "old.npz").write_text("old")

    def fail(folder: Path) -> None:
        (folder / "train.npz").write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(FileAccessError, match="no space left on device"):
        atomic_directory(target, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"] and (target / "old.npz").read_text() == "old"
    atomic_directory(target, lambda folder: (folder / "train.npz").write_text("new"))
    assert [p.name for p in target.iterdir()] == ["train.npz"] and _mode(target) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


# -- safetensors files follow the umask; a full disk is one line ----------------------------------


def test_safetensors_files_follow_the_umask(tmp_path: Path, umask_022: object) -> None:
    """Issue case: every .safetensors file (checkpoints, convert, extract) was 0600 whatever the
    umask (safetensors replaces the temporary file with one of its own)."""
    from decalign.data.native import save_native

    ckpt = _checkpoint(tmp_path / "model.safetensors")
    ds = _tiny_data()
    single = save_native(ds, tmp_path / "data.safetensors")
    folder = save_native(ds, tmp_path / "native", fmt="safetensors")
    for path in (ckpt, single, *folder.iterdir()):
        assert _mode(path) == 0o644, path
    assert _mode(folder) == 0o755


def test_a_full_disk_during_the_checkpoint_save_is_one_line(tmp_path: Path) -> None:
    """Issue case: a full disk during the checkpoint save was a SafetensorError traceback. The
    write really fails here: the process may not write files larger than 4 KB (RLIMIT_FSIZE),
    so safetensors' own write fails in the operating system, as on a full disk."""
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous version")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path[:0] = {sys.path!r}
        from test_safety_outputs import _checkpoint
        from decalign.errors import FileAccessError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            _checkpoint(__import__("pathlib").Path({str(target)!r}))
        except FileAccessError as err:
            print("refused:", err)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent)
    assert done.stdout.startswith("refused: cannot write"), done.stdout + done.stderr
    assert "model.safetensors" in done.stdout and done.stdout.count("\n") == 1
    assert target.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # nothing half-written left


def test_safetensors_no_space_left_names_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC itself, as safetensors words it (its Rust error carries the OS error code)."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(FileAccessError, match=r"cannot write '.*model\.safetensors': no space left on device"):
        _checkpoint(tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


# -- the commands ---------------------------------------------------------------------------------


def test_export_over_an_existing_file_is_refused(checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: ``export --out EXISTING`` overwrote without asking."""
    pytest.importorskip("onnx")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"someone's model")
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists; pass --overwrite" in err and str(out) in err
    assert out.read_bytes() == b"someone's model"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out),
                 "--overwrite"]) == 0
    assert out.read_bytes() != b"someone's model"


def test_export_onto_its_own_checkpoint_is_refused(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: ``export --checkpoint C --out C`` destroyed the checkpoint."""
    before = checkpoint.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(checkpoint),
                     *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is the same file as the input --checkpoint" in err
    assert checkpoint.read_bytes() == before


def test_predict_refuses_an_existing_out_and_its_own_inputs(checkpoint: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pred.csv"
    out.write_text("kept")
    assert main(["predict", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "kept"
    before = checkpoint.read_bytes()
    assert main(["predict", "--checkpoint", str(checkpoint), "--out", str(checkpoint), "--overwrite"]) == 2
    assert "same file as the input --checkpoint" in capsys.readouterr().err and checkpoint.read_bytes() == before


def test_convert_never_writes_over_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.data.native import save_native

    ds = _tiny_data()
    data = save_native(ds, tmp_path / "d" / "data.npz")
    before = data.read_bytes()
    assert main(["convert", str(data), str(data), "--overwrite"]) == 2
    assert "same file as the input IN" in capsys.readouterr().err
    assert main(["convert", str(data), str(data.parent), "--overwrite"]) == 2  # would replace the folder
    assert "holds the input IN" in capsys.readouterr().err
    assert data.read_bytes() == before
    assert main(["convert", str(data), str(tmp_path / "copy"), "--format", "safetensors"]) == 0


def test_train_overwrite_never_deletes_the_data_it_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.data.native import save_native

    run = tmp_path / "run"
    data = save_native(_tiny_data(),
                       run / "data.npz")
    assert main(["train", "--data", str(data), "--out", str(run), "--overwrite", "--epochs", "1", "--seeds", "1",
                 "--no-tensorboard", "-q", "--set", *TINY]) == 2
    assert "holds the input --data" in capsys.readouterr().err and data.exists()


def _clips(tmp_path: Path) -> list:  # type: ignore[type-arg]
    from decalign.extract.inputs import Clip

    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    (media / "c0.mp4").write_bytes(b"not read")
    return [Clip("c0", "c0", None, media / "c0.mp4", None, None, "hello", 1.0, "train")]


def test_extract_refuses_an_existing_dataset_and_a_report_over_its_input(tmp_path: Path) -> None:
    """Issue cases: ``extract --out EXISTING`` replaced a dataset silently; ``--report`` aimed at
    the transcripts CSV overwrote the input. Both are refused before any clip is extracted."""
    from decalign.extract.pipeline import ExtractConfig, run_extraction

    config = ExtractConfig(text_model=None, audio="librosa", vision="hog")
    transcripts = tmp_path / "transcripts.csv"
    transcripts.write_text("clip_id,text\nc0,hello\n")
    existing = tmp_path / "data.pkl"
    existing.write_bytes(b"last week's dataset")
    with pytest.raises(UsageError, match=r"--out '.*data\.pkl' already exists; pass --overwrite"):
        run_extraction(_clips(tmp_path), config, existing, progress=False)
    assert existing.read_bytes() == b"last week's dataset"
    with pytest.raises(UsageError, match=r"--report .* is the same file as the input --transcripts"):
        run_extraction(_clips(tmp_path), config, tmp_path / "new.pkl", report=transcripts, overwrite=True,
                       inputs={"--transcripts": transcripts}, progress=False)
    with pytest.raises(UsageError, match="the media of clip 'c0'"):
        run_extraction(_clips(tmp_path), config, tmp_path / "media" / "c0.mp4", overwrite=True, progress=False)
    assert transcripts.read_text() == "clip_id,text\nc0,hello\n" and not (tmp_path / "new.pkl").exists()
    assert (tmp_path / "media" / "c0.mp4").read_bytes() == b"not read"


def test_two_extract_runs_on_one_out_cannot_both_succeed(tmp_path: Path) -> None:
    from decalign.extract.pipeline import ExtractConfig, run_extraction

    out = tmp_path / "data.pkl"
    with guarded_output(out), pytest.raises(UsageError, match="being written by another decalign command"):
        run_extraction(_clips(tmp_path), ExtractConfig(text_model=None, audio="librosa", vision="hog"), out,
                       progress=False)


def test_an_earlier_extract_report_is_replaced_anything_else_is_not(tmp_path: Path) -> None:
    from decalign.extract.pipeline import _is_earlier_report
    from decalign.extract.report import write_report

    report = write_report(tmp_path / "extract_report.csv", [], set())
    assert _is_earlier_report(report)
    (tmp_path / "notes.csv").write_text("my,own\nnotes,here\n")
    assert not _is_earlier_report(tmp_path / "notes.csv")
    assert not _is_earlier_report(tmp_path / "missing.csv")


def test_dump_config_never_replaces_the_config_it_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 0.001\n")
    assert main(["train", "--config", str(config), "--dump-config", str(config), "--overwrite"]) == 2
    assert "same file as the input --config" in capsys.readouterr().err
    assert config.read_text() == "train:\n  lr: 0.001\n"
    dump = tmp_path / "dump.yaml"
    assert main(["train", "--config", str(config), "--dump-config", str(dump)]) == 0
    assert main(["train", "--config", str(config), "--dump-config", str(dump)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err

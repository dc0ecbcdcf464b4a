"""Run directories (issue 11): one run at a time, resume only on the run's own data, nothing left
blocking after a failed start, --overwrite explicit, one-line errors for outputs that cannot be
written, and command-line settings refused before anything is written."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from decalign.api import resolve_config, train
from decalign.cli import main
from decalign.config import SyntheticConfig
from decalign.data import make_synthetic
from decalign.errors import RunDirError
from decalign.train.runguard import LOCK_NAME, RunLock, data_fingerprint, opened_run

pytestmark = pytest.mark.slow

TINY = ["model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
        "train.batch_size=16", "train.num_threads=1", "train.seeds=[1]", "train.num_epochs=1"]
SYN = ["--set", *TINY, "data.synthetic.n_train=32", "data.synthetic.n_valid=16", "data.synthetic.n_test=16"]


def _data(seed: int = 0) -> Any:
    return make_synthetic(SyntheticConfig(n_train=32, n_valid=16, n_test=16, seed=seed))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


# -- the lock -------------------------------------------------------------------------------------


def test_a_second_run_on_a_locked_directory_is_refused(tmp_path: Path) -> None:
    """Issue case: two decalign.train() on one out dir both ran and interleaved their files."""
    ds = _data()
    config = resolve_config(ds, overrides=TINY)
    out = tmp_path / "run"
    with RunLock(out.mkdir() or out), pytest.raises(RunDirError, match="in use by another run"):
        train(config, ds, out, quiet=True, tensorboard=False)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the refused run wrote nothing


def test_a_run_in_another_thread_is_refused_then_proceeds_once_free(tmp_path: Path) -> None:
    ds1, ds2 = _data(), _data()
    config = resolve_config(ds1, overrides=TINY)
    out = tmp_path / "run"
    errors: list[BaseException] = []

    def second() -> None:
        try:
            train(config, ds1, out, quiet=True, tensorboard=False)
        except BaseException as err:
            errors.append(err)

    with RunLock(out.mkdir() or out):  # held, as a running first run holds it
        t = threading.Thread(target=second)
        t.start()
        t.join()
    assert len(errors) == 1 and isinstance(errors[0], RunDirError)
    train(config, ds2, out, quiet=True, tensorboard=False)  # free again: runs
    assert (out / "results.json").exists()


def test_the_lock_is_released_when_the_run_ends(tmp_path: Path) -> None:
    with opened_run(tmp_path / "r", resume=False):
        pass
    with RunLock(tmp_path / "r"):
        pass


# -- fingerprint and resume -------------------------------------------------------------------------


def test_fingerprint_sees_other_data_of_the_same_shapes() -> None:
    a, b = _data(0), _data(0)
    assert data_fingerprint(a) == data_fingerprint(b)
    c = _data(1)
    assert data_fingerprint(c)["sha256"] != data_fingerprint(a)["sha256"]
    b.splits["test"].features["audio"][-1, 0, 0] += 1.0  # one value of the last sample, a sampled row
    assert data_fingerprint(b)["sha256"] != data_fingerprint(a)["sha256"]


def test_resume_on_other_data_is_refused_touching_nothing(tmp_path: Path) -> None:
    """Issue case: --resume on different data of the same shapes continued silently; with other
    shapes it overwrote dataset.json and then failed."""
    out = tmp_path / "run"
    ds = _data(0)
    config = resolve_config(ds, overrides=TINY)
    train(config, ds, out, quiet=True, tensorboard=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for other in (_data(1), make_synthetic(SyntheticConfig(n_train=40, n_valid=16, n_test=16))):
        with pytest.raises(RunDirError, match="data differs"):
            train(config, other, out, resume=True, quiet=True, tensorboard=False)
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    train(config, _data(0), out, resume=True, quiet=True, tensorboard=False)  # the same data resumes


def test_resume_after_config_json_was_truncated_names_the_file(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _cli(capsys, "train", "--out", str(out), "-q", "--no-tensorboard", *SYN)[0] == 0
    cfg = out / "config.json"
    cfg.write_text(cfg.read_text()[:40])
    rc, err = _cli(capsys, "train", "--out", str(out), "--resume", "-q", "--no-tensorboard")
    assert rc == 2 and str(cfg) in err and "not valid JSON" in err and err.count("\n") == 1


# -- failed starts, overwrite -----------------------------------------------------------------------


def test_a_run_failing_before_its_first_epoch_leaves_nothing_blocking(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from decalign.train import engine

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("failed during set-up")

    monkeypatch.setattr(engine, "fit_seed", broken)
    ds = _data()
    config = resolve_config(ds, overrides=TINY)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        train(config, ds, out, quiet=True, tensorboard=False)
    assert not out.exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("the user's")
    with pytest.raises(RuntimeError):
        train(config, ds, existing, quiet=True, tensorboard=False)
    assert sorted(p.name for p in existing.iterdir()) == [LOCK_NAME, "notes.txt"]
    monkeypatch.undo()
    train(config, ds, out, quiet=True, tensorboard=False)  # the rerun is not blocked
    assert (out / "results.json").exists()


def test_device_cuda_without_cuda_is_one_line_and_leaves_nothing(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: a traceback and a partial run directory that blocked a rerun and --resume."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    rc, err = _cli(capsys, "train", "--device", "cuda", "--out", str(out), *SYN)
    assert rc == 2 and "train.device=cuda" in err and err.count("\n") == 1
    assert not out.exists()


def test_overwrite_replaces_a_run_explicitly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _cli(capsys, "train", "--out", str(out), "-q", "--no-tensorboard", *SYN)[0] == 0
    (out / "stale.txt").write_text("from the old run")
    rc, err = _cli(capsys, "train", "--out", str(out), "-q", "--no-tensorboard", *SYN)
    assert rc == 2 and "already holds a run" in err
    assert _cli(capsys, "train", "--out", str(out), "--overwrite", "-q", "--no-tensorboard", *SYN)[0] == 0
    assert not (out / "stale.txt").exists() and (out / "results.json").exists()
    rc, err = _cli(capsys, "train", "--out", str(out), "--overwrite", "--resume", *SYN)
    assert rc == 2 and "contradict" in err


# -- command-line settings --------------------------------------------------------------------------


def test_epochs_zero_is_refused_not_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: --epochs 0 was ignored (the preset's 18 ran)."""
    out = tmp_path / "run"
    rc, err = _cli(capsys, "train", "--epochs", "0", "--out", str(out), *SYN)
    assert rc == 2 and "num_epochs" in err and err.count("\n") == 1 and not out.exists()


def test_empty_seed_list_is_refused_early(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: train.seeds=[] failed late, unclearly, and left --out blocked."""
    out = tmp_path / "run"
    rc, err = _cli(capsys, "train", "--out", str(out), *SYN, "train.seeds=[]")
    assert rc == 2 and "train.seeds" in err and not out.exists()


def test_out_below_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "FILE").write_text("x")
    rc, err = _cli(capsys, "train", "--out", str(tmp_path / "FILE" / "sub"), *SYN)
    assert rc in (1, 2) and "FILE" in err and err.count("\n") == 1
    assert (tmp_path / "FILE").read_text() == "x"


def test_too_long_out_path_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, err = _cli(capsys, "train", "--out", str(tmp_path / ("x" * 300)), *SYN)
    assert rc == 1 and "file name too long" in err and err.count("\n") == 1


def test_permission_denied_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated (root may write anywhere): the OS refuses to create the run directory."""
    real_mkdir = Path.mkdir
    target = tmp_path / "ro" / "run"

    def deny(self: Path, *args: Any, **kwargs: Any) -> None:
        if str(self).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", deny)
    rc, err = _cli(capsys, "train", "--out", str(target), *SYN)
    assert rc == 1 and "permission denied" in err and str(target) in err and err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_output_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = _cli(capsys, "train", "--out", str(ro / "run"), *SYN)
        assert rc == 1 and "permission denied" in err
    finally:
        ro.chmod(0o755)


def test_a_250_character_output_name_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: a valid 250-character output name failed (temporary name 14 characters longer)."""
    run = tmp_path / "run"
    assert _cli(capsys, "train", "--out", str(run), "-q", "--no-tensorboard", *SYN)[0] == 0
    csv = tmp_path / ("p" * 246 + ".csv")
    rc, err = _cli(capsys, "predict", "--checkpoint", str(run / "seed_1" / "model.safetensors"), "--out", str(csv))
    assert rc == 0, err
    assert csv.exists() and len(csv.name) == 250
    long_run = tmp_path / ("r" * 250)
    assert _cli(capsys, "train", "--out", str(long_run), "-q", "--no-tensorboard", *SYN)[0] == 0
    assert json.loads((long_run / "results.json").read_text())["seeds"]


def test_convert_refuses_an_existing_output_without_overwrite(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Issue case: convert IN EXISTING_DIR overwrote an existing dataset without asking."""
    from decalign.testing.fixtures import write_mmsa_pickle

    src = write_mmsa_pickle(tmp_path / "aligned_50.pkl", kind="custom", n=(6, 3, 3))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    rc, err = _cli(capsys, "convert", str(src), str(existing))
    assert rc == 2 and "already exists" in err and "--overwrite" in err
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]
    assert _cli(capsys, "convert", str(src), str(existing), "--overwrite")[0] == 0
    assert (existing / "train.npz").exists() or any(existing.iterdir())

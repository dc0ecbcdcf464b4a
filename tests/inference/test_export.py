"""Exported prediction graphs equal the eager predictor (to 1e-5) at every benchmark preset's
shapes, in every format, and run without decalign importable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from decalign.config.presets import get_preset
from decalign.data.preprocess import FeatureStats
from decalign.export import describe_graph, export_model
from decalign.inference import Predictor
from decalign.testing.fixtures import LAYOUTS
from decalign.train.checkpoint import ModelInfo, build_model

pytestmark = pytest.mark.slow

PRESETS = {"mosi": "aligned", "mosei": "unaligned", "sims": "unaligned", "iemocap": "aligned"}


def _predictor(kind: str, num_layers: int | None = None) -> Predictor:
    """Random weights at the preset's shapes (widths, padded lengths, kernels, outputs), with
    random standardisation statistics for audio and vision so the graph must apply them."""
    from decalign.config import apply_overrides

    config = get_preset(kind)
    if num_layers is not None:  # the export cost grows with depth; the shapes do not depend on it
        config = apply_overrides(config, {"model.fusion.num_layers": num_layers})
    dims, lens = LAYOUTS[kind]["dims"], LAYOUTS[kind][PRESETS[kind]]
    classes = ("neu", "fru", "sad", "hap", "ang", "exc") if kind == "iemocap" else None
    info = ModelInfo(kind, "classification" if classes else "regression", tuple(dims), dict(dims), dict(lens),
                     len(classes) if classes else 1, class_names=classes)
    torch.manual_seed(0)
    model = build_model(config, info)
    rng = np.random.default_rng(1)
    stats = {}
    for m in ("audio", "vision"):
        d = dims[m]
        lo = rng.normal(-1.5, 0.2, d).astype(np.float32)
        stats[m] = {"lo": lo, "hi": lo + 3.0, "mean": rng.normal(0, 0.3, d).astype(np.float32),
                    "std": rng.uniform(0.5, 2.0, d).astype(np.float32)}
    return Predictor(model, config, info, stats)


def _raw_inputs(predictor: Predictor, batch: int, seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for m in predictor.modalities:
        x = rng.normal(0, 2.0, (batch, predictor.seq_lens[m], predictor.input_dims[m])).astype(np.float32)
        x[:, predictor.seq_lens[m] // 2 + 1 :] = 0.0  # zero padding at the end, as the data files pad
        out[m] = x
    return out


def _eager(predictor: Predictor, inputs: dict[str, np.ndarray]) -> np.ndarray:
    pred = predictor.predict(inputs)
    return pred.logits if pred.logits is not None else pred.values


@pytest.mark.parametrize("kind", list(PRESETS))
def test_torchscript_equals_eager(kind: str, tmp_path: Path) -> None:
    predictor = _predictor(kind)
    path = export_model(predictor, "torchscript", tmp_path / "model.ts")
    loaded = torch.jit.load(str(path))
    for batch in (3, 1):
        inputs = _raw_inputs(predictor, batch)
        out = loaded(*[torch.from_numpy(inputs[m]) for m in predictor.modalities])
        got = out[0] if isinstance(out, tuple) else out
        np.testing.assert_allclose(got.numpy(), _eager(predictor, inputs), atol=1e-5, rtol=0)


def test_torch_export_equals_eager(tmp_path: Path) -> None:
    """One preset: the ONNX files of every preset below are built from the same torch.export
    program, so they cover its other shapes (each export costs tens of seconds on two cores)."""
    predictor = _predictor("iemocap", num_layers=1)
    path = export_model(predictor, "exported", tmp_path / "model.pt2")
    module = torch.export.load(str(path)).module()
    for batch in (5, 1):
        inputs = _raw_inputs(predictor, batch)
        out = module(*[torch.from_numpy(inputs[m]) for m in predictor.modalities])
        got = out[0] if isinstance(out, tuple) else out
        np.testing.assert_allclose(got.numpy(), _eager(predictor, inputs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(PRESETS))
def test_onnx_equals_eager_in_onnxruntime(kind: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    predictor = _predictor(kind, num_layers=1)
    path = export_model(predictor, "onnx", tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    description = describe_graph(predictor)
    assert [i.name for i in session.get_inputs()] == list(predictor.modalities)
    assert [o.name for o in session.get_outputs()] == [o["name"] for o in description["outputs"]]
    assert json.loads(session.get_modelmeta().custom_metadata_map["decalign"]) == description
    for batch in (4, 1):
        inputs = _raw_inputs(predictor, batch, seed=batch)
        outs = session.run(None, inputs)
        np.testing.assert_allclose(outs[0], _eager(predictor, inputs), atol=1e-5, rtol=0)
        if predictor.task == "classification":
            np.testing.assert_allclose(outs[1], predictor.predict(inputs).probabilities, atol=1e-5, rtol=0)


def test_graph_leaves_the_training_losses_out() -> None:
    predictor = _predictor("mosi", num_layers=1)
    inputs = {m: torch.from_numpy(x) for m, x in _raw_inputs(predictor, 3).items()}
    arrays, _, _ = predictor.prepare({m: x.numpy() for m, x in inputs.items()})
    with torch.no_grad():
        full = predictor.model({m: torch.from_numpy(a) for m, a in arrays.items()}).prediction
        only = predictor.model.predict({m: torch.from_numpy(a) for m, a in arrays.items()})
    torch.testing.assert_close(only, full, rtol=0, atol=0)


def test_exported_files_run_without_decalign(tmp_path: Path) -> None:
    from decalign.train.checkpoint import save_checkpoint

    predictor = _predictor("sims", num_layers=1)
    ckpt = save_checkpoint(tmp_path / "model.safetensors", predictor.model, predictor.config, predictor.info,
                           {m: dict(s._asdict()) for m, s in predictor.stats.items()})
    from decalign.cli import main

    assert main(["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "m.ts")]) == 0
    inputs = _raw_inputs(predictor, 2)
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["decalign"] = None  # any import of decalign now fails
        import json, numpy as np, torch
        inputs = np.load({str(tmp_path / "inputs.npz")!r})
        extra = {{"decalign.json": ""}}
        model = torch.jit.load({str(tmp_path / "m.ts")!r}, _extra_files=extra)
        names = [i["name"] for i in json.loads(extra["decalign.json"])["inputs"]]
        out = model(*[torch.from_numpy(inputs[n]) for n in names])
        print(json.dumps(out.tolist()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(json.loads(done.stdout), _eager(predictor, inputs), atol=1e-5, rtol=0)


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from decalign.cli import main

    assert main(["export", "--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_standardisation_is_inside_the_graph() -> None:
    predictor = _predictor("sims", num_layers=1)
    st = predictor.stats["audio"]
    assert isinstance(st, FeatureStats)
    from decalign.export import PredictionGraph

    graph = PredictionGraph(predictor)
    assert torch.equal(graph.audio_lo, torch.from_numpy(st.lo)) and "text" not in graph.standardized

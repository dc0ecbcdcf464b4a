"""``decalign export``: a trained model as a prediction graph that runs without decalign.

The graph (:class:`PredictionGraph`) takes the raw features of each modality, exactly as the
predictor does, applies the run's saved standardisation inside the graph, and returns the
prediction; the alignment losses (GMM EM, Sinkhorn, MMD) are training terms with data-dependent
loops and are not part of it (:meth:`decalign.model.DecAlign.predict`). Three formats:

* ``onnx`` -- ``torch.onnx.export`` (the ``torch.export``-based exporter, extra ``export``);
  run it with onnxruntime.
* ``torchscript`` -- ``torch.jit.trace``; ``torch.jit.load(path)(*inputs)``.
* ``exported`` -- a ``torch.export`` program (``.pt2``); ``torch.export.load(path).module()(*inputs)``.

Inputs are named after the modalities, ``[batch, T_m, D_m]`` float32, padded with zeros at the
end to the model's length ``T_m``; the batch axis is dynamic. Outputs: ``prediction`` ``[batch]``
(regression), or ``logits`` and ``probabilities`` ``[batch, C]`` (classification). Each file
carries the same description as JSON (ONNX: metadata ``decalign``; TorchScript and exported:
the extra file ``decalign.json``). ``docs/deploy.md`` has examples.

From Python: :func:`export` (a checkpoint file) or :func:`export_model` (a loaded predictor); the
command line is :mod:`decalign.cli.export`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decalign.inference import Predictor
    from decalign.model.base import MultimodalModel

__all__ = ["FORMATS", "ExportedGraph", "PredictionGraph", "describe_graph", "export", "export_model"]

FORMATS = ("onnx", "torchscript", "exported")
METADATA_KEY = "decalign"
EXAMPLE_BATCH = 2
"""Batch size of the example inputs that tracing runs on (2: torch.export specialises sizes 0
and 1, so a dynamic batch axis needs an example of at least 2)."""


def _graph_class() -> Any:
    import torch
    from torch import Tensor, nn

    class _PredictionGraph(nn.Module):
        """Raw features (one input per modality, in ``names`` order) -> prediction outputs."""

        def __init__(self, model: MultimodalModel, names: tuple[str, ...], stats: dict[str, Any], classification: bool):
            super().__init__()
            self.model = model
            self.names = names
            self.classification = classification
            self.standardized = tuple(m for m in names if m in stats)
            for m in self.standardized:
                for key in ("lo", "hi", "mean", "std"):
                    self.register_buffer(f"{m}_{key}", torch.as_tensor(getattr(stats[m], key), dtype=torch.float32))

        def forward(self, *features: Tensor) -> Any:
            inputs = {}
            for name, x in zip(self.names, features):
                x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))  # as the data readers do
                if name in self.standardized:
                    lo, hi = getattr(self, f"{name}_lo"), getattr(self, f"{name}_hi")
                    x = (torch.minimum(torch.maximum(x, lo), hi) - getattr(self, f"{name}_mean")) / getattr(
                        self, f"{name}_std")
                    x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
                inputs[name] = x
            out = self.model.predict(inputs)
            if self.classification:
                return out, torch.softmax(out, dim=-1)
            return out

    return _PredictionGraph


def PredictionGraph(predictor: Predictor) -> Any:
    """The prediction graph of a :class:`decalign.inference.Predictor` (an ``nn.Module`` whose
    ``forward(*features)`` takes one raw ``[B, T_m, D_m]`` tensor per modality, in
    ``predictor.modalities`` order). It holds a frozen copy of the model, so the exported
    outputs carry no autograd history and the predictor's model is left as it was. A function
    rather than a class so that importing this module does not import torch."""
    if getattr(predictor.model, "text_encoder", None) is not None:
        from decalign.errors import UsageError

        raise UsageError("export: models with the fine-tuned BERT text encoder (model.text_encoder.kind=bert) "
                         "cannot be exported yet; export a model trained on precomputed text features")
    if getattr(getattr(predictor.model, "config", None), "padding_mask", False):
        from decalign.errors import UsageError

        raise UsageError("export: a model trained with model.padding_mask=true needs each sample's true lengths, "
                         "which the exported graph does not take yet; use the Predictor (decalign predict)")
    import copy

    model = copy.deepcopy(predictor.model).to("cpu").eval().requires_grad_(False)
    cls = _graph_class()
    return cls(model, predictor.modalities, predictor.stats, predictor.task == "classification").eval()


def describe_graph(predictor: Predictor) -> dict[str, Any]:
    """Names, shapes, dtypes and dynamic axes of the graph's inputs and outputs, and what the
    outputs mean (stored in every exported file)."""
    inputs = [{"name": m, "shape": ["batch", predictor.seq_lens[m], predictor.input_dims[m]], "dtype": "float32"}
              for m in predictor.modalities]
    if predictor.class_names is not None:  # a classifier: the Predictor names classes exactly then
        c = len(predictor.class_names)
        outputs = [{"name": "logits", "shape": ["batch", c], "dtype": "float32"},
                   {"name": "probabilities", "shape": ["batch", c], "dtype": "float32"}]
    else:
        outputs = [{"name": "prediction", "shape": ["batch"], "dtype": "float32"}]
    info = predictor.info
    return {
        "format": "decalign-prediction-graph-v1",
        "task": predictor.task,
        "kind": info.kind,
        "inputs": inputs,
        "outputs": outputs,
        "dynamic_axes": {"batch": "dimension 0 of every input and output"},
        "class_names": list(predictor.class_names) if predictor.class_names else None,
        "label_range": list(info.label_range) if info.label_range else None,
        "standardized_in_graph": sorted(predictor.stats),
        "padding": "zeros at the end of the time axis, up to the input's T (the data files' padding)",
    }


def _example(predictor: Predictor, batch: int) -> tuple[Any, ...]:
    import torch

    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(batch, predictor.seq_lens[m], predictor.input_dims[m], generator=gen)
                 for m in predictor.modalities)


def export_model(predictor: Predictor, fmt: str, out: str | os.PathLike[str], *, overwrite: bool = False,
                 inputs: dict[str, str | os.PathLike[str] | None] | None = None) -> Path:
    """Write ``predictor``'s prediction graph to ``out`` in format ``fmt`` (see :data:`FORMATS`).

    ``out`` goes through the output guard (:mod:`decalign.safety.outputs`): an existing file is
    refused unless ``overwrite``, one of ``inputs`` (flag -> path, e.g. the checkpoint) always."""
    from decalign.errors import UsageError
    from decalign.safety.outputs import guarded_output

    if fmt not in FORMATS:
        raise UsageError(f"export format {fmt!r} is not one of {list(FORMATS)}")
    with guarded_output(out, flag="--out", inputs=inputs, overwrite=overwrite) as target:
        return _write_graph(predictor, fmt, target)


def _write_graph(predictor: Predictor, fmt: str, out: Path) -> Path:
    import torch

    from decalign.safety.outputs import atomic_write

    graph = PredictionGraph(predictor)
    description = describe_graph(predictor)
    meta = json.dumps(description)
    names = [i["name"] for i in description["inputs"]]
    output_names = [o["name"] for o in description["outputs"]]
    example = _example(predictor, EXAMPLE_BATCH)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    dynamic = tuple({0: batch} for _ in names)
    with torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(graph, example, check_trace=False)
            return atomic_write(out, lambda tmp: torch.jit.save(traced, tmp, _extra_files={"decalign.json": meta}))
        program = torch.export.export(graph, example, dynamic_shapes=(dynamic,))  # one entry: *features
        if fmt == "exported":
            return atomic_write(out, lambda tmp: torch.export.save(program, tmp, extra_files={"decalign.json": meta}))
        from decalign._optional import require

        require("onnxscript", "export", "decalign export --format onnx")
        onnx = require("onnx", "export", "decalign export --format onnx")
        onnx_program = torch.onnx.export(program, (), input_names=names, output_names=output_names, dynamo=True,
                                         verbose=False)
    if onnx_program is None:  # torch returns no program only for the legacy exporter (dynamo=False)
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    proto = onnx_program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta
    return atomic_write(out, lambda tmp: onnx.save(proto, tmp))


@dataclass(frozen=True)
class ExportedGraph:
    """A written prediction graph: the file, its format and :func:`describe_graph`'s description
    of its inputs and outputs (also stored in the file)."""

    path: Path
    format: str
    description: dict[str, Any]


def export(checkpoint: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], *,
           overwrite: bool = False) -> ExportedGraph:
    """:func:`export_model` for a ``model.safetensors`` file. ``out`` is checked before the (slow)
    load: it may never be the checkpoint, and an existing file is replaced only with
    ``overwrite``. The exporters' notes on tracing are silenced: they concern our graph, which
    the tests check, not the caller."""
    import warnings

    from decalign.inference import Predictor
    from decalign.safety.outputs import check_not_input, check_replaceable

    inputs: dict[str, str | os.PathLike[str] | None] = {"--checkpoint": checkpoint}
    check_not_input(out, inputs, "--out")
    check_replaceable(out, overwrite, "--out")
    predictor = Predictor.from_checkpoint(checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_model(predictor, fmt, out, overwrite=overwrite, inputs=inputs)
    return ExportedGraph(path, fmt, describe_graph(predictor))

"""What each setting is: ``decalign presets --keys`` prints every key ``--set`` accepts with its
type, default, allowed range and a one-line meaning.

Type, default and range are read from the config dataclasses themselves (their annotations and
the ``Field`` bounds pydantic validates), so they cannot drift from what is enforced. The meaning
is the first sentence of the field's docstring in :mod:`decalign.config.schema`; a field without one has
its line in :data:`MEANINGS` (a test checks that every key has a meaning and that no entry there
is stale or shadows a docstring).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

from decalign.config import schema
from decalign.config.schema import RunConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["MEANINGS", "KeyHelp", "key_help", "keys_table"]

MEANINGS: dict[str, str] = {
    "data.path": "The data file (set by --data).",
    "data.iemocap_protocol": "IEMOCAP: session_valid carves valid from training dialogues; paper_count trains on "
    "train + valid (docs/data.md).",
    "data.split_seed": "Dialogue-level IEMOCAP: seed of the validation dialogues drawn from training.",
    "data.synthetic.n_train": "Built-in dataset: training samples.",
    "data.synthetic.n_valid": "Built-in dataset: validation samples.",
    "data.synthetic.n_test": "Built-in dataset: test samples.",
    "data.synthetic.seq_len": "Built-in dataset: time steps per modality.",
    "data.synthetic.dims": "Built-in dataset: feature width per modality.",
    "data.synthetic.seed": "Built-in dataset: the generator's seed.",
    "model.d_model": "Width every modality is projected to (docs/method.md §2).",
    "model.conv_kernel": "Kernel size of each modality's temporal projection ('default' for the rest).",
    "model.text_dropout": "Dropout on the text features during training.",
    "model.output_dropout": "Dropout before the prediction head and the distribution encoders.",
    "model.fusion.num_heads": "Attention heads of the cross-modal transformer (d_model must divide by it).",
    "model.fusion.num_layers": "Layers of the cross-modal transformer.",
    "model.fusion.attn_dropout": "Attention dropout per modality ('default' for the rest).",
    "model.fusion.relu_dropout": "Dropout after the feed-forward ReLU of each transformer layer.",
    "model.fusion.embed_dropout": "Dropout on the transformer's input sequences.",
    "model.fusion.res_dropout": "Dropout on each transformer layer's residual branches.",
    "model.fusion.attn_mask": "Causal mask in the transformer's attention (released: on).",
    "model.heterogeneity.num_prototypes": "Gaussian-mixture components (prototypes) per modality.",
    "model.heterogeneity.em_iters": "EM iterations fitting the prototypes on each batch.",
    "model.heterogeneity.var_floor": "Lower bound of every prototype variance.",
    "model.heterogeneity.ot_eps": "Entropic regularisation of the multi-marginal optimal transport.",
    "model.heterogeneity.ot_iters": "Sinkhorn iterations of the optimal transport.",
    "model.heterogeneity.cost_reduction": "Prototype costs averaged (mean, released) or summed over dimensions.",
    "model.homogeneity.enabled": "Ablation switch for the whole homogeneity loss (moments + MMD).",
    "model.homogeneity.pde_dim": "Width of the distribution encoders' output.",
    "model.homogeneity.mmd_bandwidth": "With mmd_kernel=fixed: the kernel's bandwidth h.",
    "model.homogeneity.mmd_bandwidths": "With mmd_kernel=multi: the bandwidths, times the median heuristic.",
    "model.text_encoder.kind": "features: the file's text features; bert: fine-tune a local BERT-family model.",
    "objective.task_loss": "The prediction loss: mse or l1 (regression), ce (classification).",
    "objective.w_dec": "Weight of the decoupling (orthogonality) loss.",
    "objective.alpha": "Weight of the heterogeneity loss (prototype OT + local term).",
    "objective.beta": "Weight of the homogeneity loss (moments + MMD).",
    "objective.w_ct": "Weight of the contrastive term.",
    "objective.ct_temperature": "Temperature of the contrastive term.",
    "objective.w_bin": "Weight of the sign (binary) term of regression (0: off, released).",
    "train.batch_size": "Training batch size (the global batch under torchrun).",
    "train.eval_batch_size": "Batch size of validation and test; null: the training batch size.",
    "train.lr": "Learning rate (AdamW).",
    "train.weight_decay": "AdamW weight decay.",
    "train.num_epochs": "Most epochs per seed.",
    "train.early_stop_patience": "Stop after this many epochs without a better validation selection metric.",
    "train.scheduler_patience": "ReduceLROnPlateau: epochs without improvement before the rate drops.",
    "train.scheduler_factor": "ReduceLROnPlateau: the factor the rate is multiplied by.",
    "train.grad_clip": "Gradient norm clipping; null: off.",
    "train.seeds": "Seeds, one full run each; tables give mean and std over them.",
    "train.device": "auto (CUDA, then Apple MPS, then the CPU), cpu, cuda or mps.",
    "preset": "The preset's name (set by --preset; labels the run).",
}
"""One-line meanings of the fields whose declaration in :mod:`decalign.config.schema` has no docstring."""


@dataclass(frozen=True)
class KeyHelp:
    key: str
    type: str
    default: str
    range: str
    meaning: str


def _field_docstrings() -> dict[str, dict[str, str]]:
    """Class name -> field -> the docstring under the field's declaration in the schema."""
    tree = ast.parse(inspect.getsource(schema))
    out: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs: dict[str, str] = {}
        body = node.body
        for stmt, nxt in zip(body, [*body[1:], None]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = nxt.value.value
        out[node.name] = docs
    return out


def _first_sentence(text: str, limit: int = 200) -> str:
    """The docstring's first sentence, on one line (cut at ``limit`` characters)."""
    flat = " ".join(re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "").split())
    cut = flat.find(". ")
    if 0 < cut < limit:
        return flat[: cut + 1]
    return flat if len(flat) <= limit else flat[: limit - 4].rsplit(" ", 1)[0] + " ..."


def _bounds(metadata: Any) -> list[str]:
    """Bounds of pydantic ``Field`` metadata / annotated-types constraints."""
    found = []
    for m in metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >=")):
            value = getattr(m, attr, None)
            if value is not None:
                found.append(f"{sym} {value:g}" if isinstance(value, (int, float)) else f"{sym} {value}")
        for inner in getattr(m, "metadata", ()) or ():  # FieldInfo holds its constraints in .metadata
            found.extend(_bounds([inner]))
    return found


def _describe(hint: Any) -> tuple[str, str]:
    """(type, range) of an annotation."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        base, *meta = get_args(hint)
        kind, rng = _describe(base)
        bounds = _bounds(meta)
        return kind, " and ".join(bounds) if bounds and rng == "any" else (rng if not bounds else
                                                                         f"{rng}, {' and '.join(bounds)}")
    if origin is Literal:
        return "choice", " | ".join(str(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        kind, rng = _describe(args[0]) if len(args) == 1 else (" or ".join(_describe(a)[0] for a in args), "any")
        return f"{kind} or null", rng
    if origin is tuple:
        args = get_args(hint)
        item = _describe(args[0]) if args else ("any", "any")
        return f"list of {item[0]}", item[1] if item[1] != "any" else "any"
    if origin is dict:
        value = _describe(get_args(hint)[1])
        return f"map modality -> {value[0]}", "any" if value[1] == "any" else f"each {value[1]}"
    names = {bool: "bool", int: "int", float: "float", str: "string"}
    return names.get(hint, getattr(hint, "__name__", str(hint))), "true | false" if hint is bool else "any"


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
        default_factory = getattr(value, "default_factory", None)  # pydantic Field(default_factory=...)
        if default_factory is not None:
            value = default_factory()
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def key_help(cls: type[DataclassInstance] = RunConfig, prefix: str = "",
             docs: dict[str, dict[str, str]] | None = None) -> Iterator[KeyHelp]:
    """Every settable key of ``cls`` with its type, default, range and meaning, in declaration order."""
    docs = docs if docs is not None else _field_docstrings()
    hints = get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from key_help(hint, f"{prefix}{f.name}.", docs)
            continue
        key = f"{prefix}{f.name}"
        kind, rng = _describe(hint)
        if kind.startswith("map") and "default" in _default(f):  # a per-modality mapping
            rng = "needs a 'default' entry" + ("" if rng == "any" else f"; {rng}")
        doc = docs.get(cls.__name__, {}).get(f.name)
        meaning = _first_sentence(doc) if doc else MEANINGS.get(key, "")
        yield KeyHelp(key, kind, _default(f), rng, meaning)


def keys_table() -> str:
    """``presets --keys``: one line per key, aligned columns, defaults of the config classes (a
    preset changes many of them: ``decalign presets NAME`` shows its values)."""
    rows = [("key", "type", "default", "range", "meaning"),
            *((k.key, k.type, k.default, k.range, k.meaning) for k in key_help())]
    widths = [min(max(len(r[i]) for r in rows), cap) for i, cap in enumerate((44, 24, 20, 28))]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:4], widths)]
        lines.append("  ".join([*cells, r[4]]).rstrip())
    return "\n".join(lines)

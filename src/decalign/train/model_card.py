"""``MODEL_CARD.md``: the card every run writes into its directory, so a model passed on (a
folder zipped, a checkpoint uploaded) says what it was trained on and how good it is.

The layout follows the Hugging Face model-card convention: YAML front matter (library, tags,
datasets, and a ``model-index`` with the test metrics, which the Hub and other tools read),
then sections for people: the data and its fingerprint, the splits, the preset and the settings
changed from it, the test metrics as mean ± std over seeds, the modalities the modality check
left out, intended use and limits, and how to load the model. Every number in it is read from
the run's own ``results.json`` payload and ``dataset.json`` description.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from decalign.config import RunConfig

__all__ = ["MODEL_CARD", "model_card", "write_model_card"]

MODEL_CARD = "MODEL_CARD.md"
"""The card's file name in a run directory."""


def _changed_settings(config: RunConfig, task: str) -> dict[str, Any]:
    """The settings that differ from the run's preset (data location and kind left out: the
    data section names them)."""
    from decalign.config.presets import PRESETS, custom_preset, get_preset
    from decalign.train.rundir import changed_settings

    return changed_settings(get_preset(config.preset) if config.preset in PRESETS else custom_preset(task), config)


def _metric_rows(payload: Mapping[str, Any], keys: list[str]) -> list[tuple[str, str, str]]:
    from decalign.metrics.display import PAPER_NAMES, format_value

    n = len(payload.get("seeds", {}))
    rows = []
    for k in keys:
        mean = payload["mean"][k]
        spread = "" if n < 2 else format_value(k, payload["std"][k])
        rows.append((PAPER_NAMES.get(k, k), format_value(k, mean), spread))
    return rows


def model_card(config: RunConfig, payload: Mapping[str, Any], description: Mapping[str, Any],
               fingerprint: Mapping[str, Any] | None) -> str:
    """The card's text for a run (``payload``: ``results.json``; ``description``: ``dataset.json``)."""
    import yaml

    from decalign import __version__
    from decalign.data.detect import report_columns

    task = description.get("task") or "regression"
    kind = description.get("kind", config.data.dataset)
    keys = report_columns(kind, task, payload.get("mean", {}))
    seeds = sorted(int(s) for s in payload.get("seeds", {}))
    n = len(seeds)
    data_name = Path(config.data.path).name if config.data.path else f"the built-in {kind} dataset"
    rows = _metric_rows(payload, keys)
    front = {
        "library_name": "decalign",
        "tags": ["decalign", "multimodal", "sentiment-analysis" if task == "regression" else "emotion-recognition"],
        "datasets": [kind],
        "metrics": [name for name, _, _ in rows],
        "model-index": [{
            "name": f"DecAlign ({config.model.architecture}) on {data_name}",
            "results": [{
                "task": {"type": "multimodal-" + ("regression" if task == "regression" else "classification")},
                "dataset": {"name": data_name, "type": kind, "split": "test"},
                "metrics": [{"type": name, "value": float(mean), **({"std": float(sd)} if sd else {})}
                            for name, mean, sd in rows],
            }],
        }],
    }
    splits = description.get("splits", {})
    split_line = ", ".join(f"{name} {sp.get('n')}" for name, sp in splits.items())
    mods = description.get("modalities", {})
    changed = _changed_settings(config, task)
    left_out = {s: r.get("modalities_left_out") for s, r in payload.get("seeds", {}).items()
                if r.get("modalities_left_out") is not None}
    spread_kind = "sample std, ddof=1"
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# DecAlign on {data_name}", "",
        f"Trained with decalign {__version__}; this card was written by the run itself from its `results.json` "
        "and `dataset.json`.", "",
        "## Data", "",
        f"- file: `{config.data.path}`" if config.data.path else "- the built-in generated dataset (no file)",
        f"- kind: {kind}, layout: {description.get('layout')}, task: {task}",
        "- modalities: " + ", ".join(f"{m} {v.get('dim')}-d x {v.get('seq_len')} steps" for m, v in mods.items()),
        f"- content fingerprint: `{(fingerprint or {}).get('sha256', 'not recorded')}` (the digest `decalign info` "
        "and `decalign datasets FILE` print for the same data)",
        "",
        "## Splits", "",
        f"{split_line} samples; the model of each seed is the epoch with the best validation "
        f"`{payload.get('selection_metric', config.train.selection_metric)}`, tested once.", "",
        "## Training", "",
        f"- preset: `{config.preset}`",
        "- settings changed from the preset: " + (", ".join(f"`{k}={v}`" for k, v in changed.items()) or "none"),
        f"- seeds: {', '.join(map(str, seeds))}; at most {config.train.num_epochs} "
        f"epoch{'' if config.train.num_epochs == 1 else 's'} each",
    ]
    threads = (payload.get("run_info") or {}).get("threads")
    if threads:
        lines.append(f"- CPU threads: {threads.get('line')}")
    lines += ["", f"## Test metrics ({n} seed{'' if n == 1 else 's'}; mean{' ± ' + spread_kind if n > 1 else ''})",
              "", "| metric | mean |" + (" std |" if n > 1 else ""), "|---|---:|" + ("---:|" if n > 1 else "")]
    lines += [f"| {name} | {mean} |" + (f" {sd} |" if n > 1 else "") for name, mean, sd in rows]
    lines += ["", "Accuracies and F1 are percentages (x 100), MAE and Corr plain numbers, as in the paper's tables.",
              "", "## Modalities left out", ""]
    if not left_out:
        lines.append("None: `train.modality_check` was off, every modality of the data is used." if not
                     config.train.modality_check else "None (the modality check kept every modality).")
    else:
        lines += [f"- seed {s}: {', '.join(m) if m else 'none'}" for s, m in left_out.items()]
        lines.append("A left-out modality is not read at prediction time; the checkpoint records it.")
    lines += [
        "", "## Intended use and limits", "",
        "A research model for multimodal sentiment or emotion analysis on features extracted exactly as the "
        "training data's were (same extractors, widths and lengths; a checkpoint refuses other widths). "
        "Numbers hold for this data and these splits only; on a few hundred test clips a difference of a point "
        "is often within what the choice of clips moves. Not for decisions about people: the benchmarks are "
        "small, English or Chinese online videos, and carry their annotators' and speakers' biases.",
        "", "## How to load", "",
        "```python",
        "import decalign",
        f"predictor = decalign.Predictor.from_checkpoint(\"seed_{seeds[0] if seeds else 1}/model.safetensors\")",
        "sample = {" + ", ".join(f'"{m}": {m}' for m in mods) + "}  # raw features, [T, D] each",
        "print(predictor.predict(sample).values)",
        "```", "",
        "```bash",
        "decalign eval --run .            # this table again, per seed",
        "decalign predict --checkpoint seed_<s>/model.safetensors --data FILE --out preds.csv",
        "```", "",
        "## Citation", "",
        "Qian et al., \"DecAlign: Hierarchical Cross-Modal Alignment for Decoupled Multimodal Representation "
        "Learning\", ICLR 2026, arXiv 2503.11892.", "",
    ]
    return "\n".join(lines)


def write_model_card(run_dir: str | Path, config: RunConfig, payload: Mapping[str, Any],
                     description: Mapping[str, Any], fingerprint: Mapping[str, Any] | None) -> Path:
    """Write ``MODEL_CARD.md`` into the run directory (replaced atomically with each update)."""
    from decalign.train.atomic import write_text

    return write_text(Path(run_dir) / MODEL_CARD, model_card(config, payload, description, fingerprint))

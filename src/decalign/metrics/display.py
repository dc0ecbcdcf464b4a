"""Aggregating metrics over seeds and printing them the way the paper's tables do.

numpy only, so that the CLI can import this for printing without paying for torch or sklearn.

Display conventions (``docs/method.md`` §14): accuracies and F1 scores (``acc*``,
``f1*``, ``wacc``, ``waf1``, per-class ``acc_<class>``/``f1_<class>``) are stored as fractions and
printed x 100 with two decimals (0.8575 -> ``85.75``); ``mae``, ``mse``, ``corr`` and losses are
printed with three decimals. :data:`PAPER_RESULTS` holds the paper's numbers in the same units and
keys as :mod:`decalign.metrics`, so they can be printed beside ours with the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

__all__ = [
    "MMSA_NAMES",
    "PAPER_NAMES",
    "PAPER_RESULTS",
    "STD_KINDS",
    "MetricNames",
    "ReportStyle",
    "TableStyle",
    "aggregate",
    "format_mean_std",
    "format_mmsa",
    "format_table",
    "format_value",
    "higher_is_better",
    "in_table_units",
    "is_percentage",
]

TableStyle = Literal["text", "markdown", "latex"]
"""How :func:`format_table` renders: aligned plain text, a markdown table or a LaTeX tabular."""
ReportStyle = Literal["text", "markdown", "latex", "mmsa"]
"""A :data:`TableStyle`, or ``mmsa``: MMSA's result CSV (:func:`format_mmsa`), which reports offer too."""
MetricNames = Literal["ours", "mmsa"]
"""Which names a table gives the metrics: ours, or MMSA's (:data:`MMSA_NAMES`)."""

_SPLIT_PREFIXES = ("train_", "valid_", "val_", "test_")
_THREE_DECIMALS = {"mae", "mse", "rmse", "corr"}
STD_KINDS: dict[str, str] = {
    "sample": "sample std",
    "population": "population std",
}
"""``--std`` choices and how table headers name them: ``sample`` (``ddof=1``, our default) or
``population`` (``ddof=0``, ``np.std``'s default, what MMSA and the authors' code report)."""

MMSA_NAMES: dict[str, str] = {
    "acc2_has0": "Has0_acc_2",
    "f1_has0": "Has0_F1_score",
    "acc2_non0": "Non0_acc_2",
    "f1_non0": "Non0_F1_score",
    "acc5": "Mult_acc_5",
    "acc7": "Mult_acc_7",
    "acc2": "Mult_acc_2",
    "acc3": "Mult_acc_3",
    "f1": "F1_score",
    "mae": "MAE",
    "corr": "Corr",
}
"""Our metric keys -> the names MMSA's ``eval_mosei_senti``/``eval_sims_regression`` report."""
PAPER_NAMES: dict[str, str] = {
    "acc2_has0": "Acc-2 (has 0)",
    "f1_has0": "F1 (has 0)",
    "acc2_non0": "Acc-2",
    "f1_non0": "F1",
    "acc7": "Acc-7",
    "acc5": "Acc-5",
    "acc3": "Acc-3",
    "acc2": "Acc-2",
    "f1": "F1",
    "mae": "MAE",
    "mse": "MSE",
    "corr": "Corr",
    "wacc": "WAcc",
    "waf1": "WAF1",
}
"""Our metric keys -> the column names papers print (the LaTeX table's header): Acc-2 and F1 of
CMU-MOSI/MOSEI are the non-zero variants, as in the DecAlign paper."""
MISSING = "–"
"""Printed where a row has no value for a column."""


def _base_key(key: str) -> str:
    """The metric name without a split prefix or namespace: ``test/acc7`` and ``test_acc7`` ->
    ``acc7``, so prefixed history keys format like the bare ones."""
    base = key.rsplit("/", 1)[-1]
    for prefix in _SPLIT_PREFIXES:
        if base.startswith(prefix):
            return base[len(prefix):]
    return base


def is_percentage(key: str) -> bool:
    """Whether ``key`` is an accuracy or F1 (stored as a fraction, shown x 100)."""
    base = _base_key(key)
    return base in ("wacc", "waf1") or base.startswith(("acc", "f1"))


def _is_three_decimals(key: str) -> bool:
    base = _base_key(key)
    return base in _THREE_DECIMALS or "loss" in base


def higher_is_better(key: str) -> bool | None:
    """Direction of a metric: ``False`` for errors and losses (``mae``, ``mse``, ``*loss*``),
    ``True`` for accuracies, F1 and ``corr``, ``None`` for keys without a known direction."""
    from decalign.metrics import higher_is_better as direction

    return direction(_base_key(key))


def _decimals_and_scale(key: str) -> tuple[int, float] | None:
    if is_percentage(key):
        return 2, 100.0
    if _is_three_decimals(key):
        return 3, 1.0
    return None


def format_value(key: str, value: float) -> str:
    """``value`` as the paper prints ``key``: x 100 with two decimals for accuracies and F1,
    three decimals for ``mae``/``mse``/``corr``/losses, four significant digits otherwise
    (e.g. an epoch count or learning rate)."""
    value = float(value)
    rule = _decimals_and_scale(key)
    if rule is None:
        return f"{value:.4g}"
    decimals, scale = rule
    return f"{value * scale:.{decimals}f}"


def in_table_units(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` in the units the tables print: accuracies and F1 x 100 (fractions are what
    the API and the JSON files hold), everything else unchanged and unrounded."""
    out = {}
    for key, value in metrics.items():
        rule = _decimals_and_scale(key)
        out[key] = float(value) * (rule[1] if rule is not None else 1.0)
    return out


def format_mean_std(key: str, mean: float, std: float | None = None) -> str:
    """``mean ± std`` in ``key``'s display units, e.g. ``85.75 ± 0.31``; just the mean when
    ``std`` is ``None`` (a single reported number such as the paper's)."""
    if std is None:
        return format_value(key, mean)
    return f"{format_value(key, mean)} ± {format_value(key, std)}"


def aggregate(per_seed: Sequence[Mapping[str, float]], std: str = "sample") -> dict[str, Any]:
    r"""Mean and standard deviation over seeds, per metric key.

    ``std="sample"`` (default) uses ``ddof=1``, :math:`s = \sqrt{\frac{1}{n-1}\sum_i (x_i -
    \bar x)^2}`, the unbiased estimate of the seed-to-seed spread; ``std="population"`` uses
    ``ddof=0`` (divide by :math:`n`), what MMSA and the authors' code report; with 5 seeds it is
    ``sqrt(4/5)`` = 0.894 times the sample std. A single seed has ``std`` 0.0 either way.

    Args:
        per_seed: one metrics dict per seed, all with the same keys.
        std: ``"sample"`` or ``"population"`` (:data:`STD_KINDS`).

    Returns:
        ``{"mean": {key: float}, "std": {key: float}, "n": number of seeds, "std_kind": std}``,
        keys in the first seed's order.

    Raises:
        ValueError: no seeds, a key missing from some seeds, or a non-numeric value.
    """
    if std not in STD_KINDS:
        raise ValueError(f"std must be one of {sorted(STD_KINDS)}, got {std!r}")
    ddof = 1 if std == "sample" else 0
    if len(per_seed) == 0:
        raise ValueError("aggregate needs at least one seed's metrics, got an empty list")
    keys = list(per_seed[0])
    all_keys = set(keys)
    for i, metrics in enumerate(per_seed):
        if set(metrics) != all_keys:
            missing = sorted(all_keys - set(metrics))
            extra = sorted(set(metrics) - all_keys)
            raise ValueError(
                f"seed #{i} has different metric keys from seed #0: missing {missing}, extra {extra}"
            )
    mean: dict[str, float] = {}
    spread: dict[str, float] = {}
    for key in keys:
        try:
            values = np.array([float(m[key]) for m in per_seed], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"aggregate: metric {key!r} has a non-numeric value ({err})") from err
        mean[key] = float(values.mean())
        spread[key] = float(values.std(ddof=ddof)) if values.size > 1 else 0.0
    return {"mean": mean, "std": spread, "n": len(per_seed), "std_kind": std}


def _is_aggregate(obj: Any) -> bool:
    return isinstance(obj, Mapping) and isinstance(obj.get("mean"), Mapping) and isinstance(
        obj.get("std"), Mapping
    )


def _row_values(row: Mapping[str, Any]) -> tuple[Mapping[str, float], Mapping[str, float] | None]:
    if _is_aggregate(row):
        return row["mean"], row["std"]
    return row, None


def _column_keys(rows: Iterable[Mapping[str, float]]) -> list[str]:
    keys: list[str] = []
    seen: set[str] = set()
    for means in rows:
        for k in means:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    return keys


def format_table(
    rows: Mapping[str, Mapping[str, Any]],
    keys: Sequence[str] | None = None,
    style: TableStyle = "text",
    bold_best: bool = False,
    row_header: str = "",
    std: str | None = "sample",
    names: MetricNames = "ours",
) -> str:
    """Render rows (models, ablations, seeds) x metric columns as ``mean ± std`` cells.

    Args:
        rows: row name -> either a plain metrics dict (one number per cell, e.g. a single run or a
            :data:`PAPER_RESULTS` row) or an :func:`aggregate` result (``mean ± std`` cells). A
            single :func:`aggregate` result may also be passed directly; it becomes one row.
        keys: the columns, in order; default every key seen, in first-seen order. A row without
            a key shows ``–``.
        style: ``"text"`` (aligned plain-text columns), ``"markdown"`` (a GitHub table) or
            ``"latex"`` (a booktabs ``tabular`` to paste into a paper).
        bold_best: mark the best mean of each column with a known direction (``mae``/``mse``/
            losses lowest, accuracies/F1/``corr`` highest; see :func:`higher_is_better`). Best is
            judged on the *displayed* value, so rows that print the same are all marked. Markdown
            uses ``**bold**``; text appends ``*``.
        row_header: header of the first (row name) column.
        std: which standard deviation the ``±`` cells hold (:data:`STD_KINDS`); when a row is an
            aggregate the header's first cell says it (``mean ± sample std``). ``None``: unnamed.
        names: column names: our metric keys, or MMSA's (:data:`MMSA_NAMES`, e.g. ``Non0_acc_2``).

    Returns:
        The table as a string, without a trailing newline.
    """
    if style not in ("text", "markdown", "latex"):
        raise ValueError(f"style must be 'text', 'markdown' or 'latex', got {style!r}")
    if _is_aggregate(rows):
        rows = {"result": rows}
    parsed = {name: _row_values(row) for name, row in rows.items()}
    columns = list(keys) if keys is not None else _column_keys(m for m, _ in parsed.values())

    best: dict[str, str] = {}
    if bold_best:
        for key in columns:
            direction = higher_is_better(key)
            present = [
                float(m[key]) for m, _ in parsed.values() if key in m and not math.isnan(float(m[key]))
            ]
            if direction is None or len(present) < 2:
                continue
            target = max(present) if direction else min(present)
            best[key] = format_value(key, target)

    if std is not None and any(stds is not None for _, stds in parsed.values()):
        what = f"mean ± {STD_KINDS.get(std, std)}"
        row_header = f"{row_header} ({what})" if row_header else what
    shown = [MMSA_NAMES.get(k, k) if names == "mmsa" else PAPER_NAMES.get(k, k) if style == "latex" else k
             for k in columns]
    header = [row_header, *shown]
    body: list[list[str]] = []
    for name, (means, stds) in parsed.items():
        cells = [str(name)]
        for key in columns:
            if key not in means:
                cells.append(MISSING)
                continue
            spread = None if stds is None or key not in stds else stds[key]
            cell = format_mean_std(key, means[key], spread)
            if key in best and format_value(key, means[key]) == best[key]:
                cell = {"markdown": f"**{cell}**", "latex": rf"\textbf{{{cell}}}"}.get(style, f"{cell} *")
            cells.append(cell)
        body.append(cells)

    if style == "latex":
        return _latex(header, body)

    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for cells in [header, *body]:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The paper's reported numbers (docs/method.md §15, from the paper's Tables 1-2 and the
# ablations), in our keys and units: the paper's Acc-2/F1 on MOSI and MOSEI are the non-zero
# variants (acc2_non0, f1_non0); CH-SIMS F1 is `f1`; IEMOCAP WAcc/WAF1 are wacc/waf1. Percentages
# are stored as fractions so format_value prints them exactly as the paper does.


def _frozen(table: dict[str, dict[str, dict[str, float]]]) -> Mapping[str, Mapping[str, Mapping[str, float]]]:
    return MappingProxyType(
        {
            bench: MappingProxyType({row: MappingProxyType(dict(vals)) for row, vals in rows.items()})
            for bench, rows in table.items()
        }
    )


def _mae_f1(mae: float, f1: float) -> dict[str, float]:
    return {"mae": mae, "f1_non0": f1}


PAPER_RESULTS: Mapping[str, Mapping[str, Mapping[str, float]]] = _frozen(
    {
        "mosi": {
            "DecAlign": {"mae": 0.735, "corr": 0.811, "acc2_non0": 0.8575, "acc7": 0.4507, "f1_non0": 0.8582},
            "CGGM": {"mae": 0.747, "corr": 0.798, "acc2_non0": 0.8443, "acc7": 0.4321, "f1_non0": 0.8413},
            "MulT": {"mae": 0.846, "corr": 0.725, "acc2_non0": 0.8170, "acc7": 0.4005, "f1_non0": 0.8166},
            "w/o homogeneity": _mae_f1(0.747, 0.8446),
            "w/o heterogeneity": _mae_f1(0.754, 0.8403),
            "decoupling only": _mae_f1(0.784, 0.8192),
            "w/o decoupling and alignment": _mae_f1(0.794, 0.8156),
            "w/o MMD": _mae_f1(0.741, 0.8461),
            "w/o moment matching (Sem)": _mae_f1(0.738, 0.8473),
            "w/o contrastive (CT)": _mae_f1(0.743, 0.8436),
            "w/o prototype OT": _mae_f1(0.748, 0.8417),
        },
        "mosei": {
            "DecAlign": {"mae": 0.543, "corr": 0.768, "acc2_non0": 0.8648, "acc7": 0.5502, "f1_non0": 0.8607},
            "w/o homogeneity": _mae_f1(0.562, 0.8474),
            "w/o heterogeneity": _mae_f1(0.588, 0.8437),
            "decoupling only": _mae_f1(0.632, 0.8222),
            "w/o decoupling and alignment": _mae_f1(0.624, 0.8187),
            "w/o MMD": _mae_f1(0.564, 0.8526),
            "w/o moment matching (Sem)": _mae_f1(0.553, 0.8533),
            "w/o contrastive (CT)": _mae_f1(0.619, 0.8521),
            "w/o prototype OT": _mae_f1(0.624, 0.8503),
        },
        "sims": {
            "DecAlign": {"mae": 0.403, "f1": 0.8185},
            "CGGM": {"mae": 0.417, "f1": 0.8012},
        },
        "iemocap": {
            "DecAlign": {"wacc": 0.7335, "waf1": 0.7343},
            "CGGM": {"wacc": 0.7225, "waf1": 0.7217},
        },
    }
)
"""benchmark (``mosi``, ``mosei``, ``sims``, ``iemocap``) -> row (``DecAlign``, a baseline, or an
ablation) -> metrics in our keys and units. Read-only. Ablation rows give only MAE and F1, as the
paper does; ``w/o decoupling and alignment`` is the paper's "none" row."""


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def _latex(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    r"""A booktabs ``tabular`` (needs ``\usepackage{booktabs}``); ``±`` becomes ``$\pm$``."""

    def cell(text: str) -> str:
        if text.startswith(r"\textbf{"):
            return r"\textbf{" + cell(text[len(r"\textbf{"):-1]) + "}"
        return _latex_escape(text).replace(" ± ", r" $\pm$ ").replace(MISSING, "--")

    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(cell(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}",
              r"% needs \usepackage{booktabs} in the preamble (\toprule, \midrule, \bottomrule)"]
    return "\n".join(lines)


def format_mmsa(rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str] | None = None) -> str:
    """Rows as MMSA's result CSV: a ``Model`` column, MMSA's metric names, and each cell a
    ``(mean, std)`` pair with *every* metric x 100 rounded to 2 decimals (MAE and Corr too), as
    MMSA's ``run.py`` writes them. Pass aggregates computed with ``std="population"`` to match
    MMSA's ``np.std``. Keys without an MMSA name keep ours.
    """
    import io

    from decalign.safety.cells import csv_writer

    if _is_aggregate(rows):
        rows = {"result": rows}
    parsed = {name: _row_values(row) for name, row in rows.items()}
    columns = list(keys) if keys is not None else _column_keys(m for m, _ in parsed.values())
    buf = io.StringIO()
    writer = csv_writer(buf, lineterminator="\n")
    writer.writerow(["Model", *[MMSA_NAMES.get(k, k) for k in columns]])
    for name, (means, stds) in parsed.items():
        cells = []
        for k in columns:
            if k not in means:
                cells.append("")
                continue
            mean = round(float(means[k]) * 100, 2)
            has_std = stds is not None and k in stds
            cells.append(f"({mean}, {round(float(stds[k]) * 100, 2)})" if has_std else f"{mean}")
        writer.writerow([name, *cells])
    return buf.getvalue().rstrip("\n")

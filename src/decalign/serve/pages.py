"""The HTML of the pages: plain server-rendered HTML with one small stylesheet and no scripts, so
a page works in any browser, prints, and needs nothing from the network. Every value that comes
from a run or a request is escaped here (:func:`esc`)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

__all__ = ["esc", "layout", "table", "url"]

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header{background:#24313f;color:#fff;padding:.6em 1.2em}header a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em 1.5em;max-width:1400px}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em;background:#fff}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:right}th{background:#eef1f4}
td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #d0d7de;background:#fff}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}.cols>div{min-width:0;overflow-x:auto}
.note{color:#57606a;font-size:.9em}
.err{color:#a40e26;font-weight:600}.pred{font-size:1.3em;font-weight:600}form{margin:.6em 0}
input,select,button{font-size:.95em;margin:.2em .4em .2em 0}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def url(path: str, **params: Any) -> str:
    """A link with its query string (``None`` values left out), escaped for an attribute."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return esc(f"{path}?{query}" if query else path)


def layout(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)} · decalign</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><header><a href='/'><b>decalign serve</b></a><a href='/'>Runs</a><a href='/try'>Try it</a>"
            f"<a href='/compare'>Compare</a></header><main>{body}</main></body></html>")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1, ident: str = "") -> str:
    """A table; the first ``left`` columns are left-aligned (names), cells are escaped."""
    head = "".join(f"<th class='{'l' if i < left else ''}'>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    attr = f" id='{esc(ident)}'" if ident else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(key: str, mean: float | None, std: float | None = None) -> str:
    """A metric in the units of the tables (accuracies x 100), ``mean ± std`` when a std is given."""
    from decalign.metrics.display import format_mean_std, format_value

    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None:
        return format_value(key, float(mean))
    return format_mean_std(key, float(mean), float(std))


def select(name: str, options: Sequence[tuple[str, str]], chosen: str | None) -> str:
    opts = "".join(f"<option value='{esc(v)}'{' selected' if v == chosen else ''}>{esc(label)}</option>"
                   for v, label in options)
    return f"<select name='{esc(name)}' id='{esc(name)}'>{opts}</select>"


def prediction_block(result: Mapping[str, Any], label: Any = None) -> str:
    """A prediction with its polarity/scale (regression) or class probabilities, the prediction
    with each modality left out, and each modality's contribution."""
    parts = []
    if result.get("task") == "regression":
        scale = result.get("scale") or {}
        parts.append(f"<p class='pred' id='prediction'>prediction {float(result['prediction']):+.3f}"
                     f" · {esc(result.get('polarity', ''))}"
                     + (f" · scale {esc(scale.get('value'))} ({esc(scale.get('name'))})" if scale else "")
                     + "</p>")
    else:
        parts.append(f"<p class='pred' id='prediction'>prediction {esc(result['prediction'])}</p>")
        probs = result.get("probabilities") or {}
        parts.append(table(["class", "probability"], [(k, f"{v:.3f}") for k, v in probs.items()]))
    if label is not None:
        parts.append(f"<p>label: <b id='label'>{esc(label)}</b></p>")
    rows = []
    for m in result.get("modalities", []):
        without = result.get("without", {}).get(m)
        contrib = result.get("contributions", {}).get(m)
        shown = "–" if without is None else (f"{without:+.3f}" if isinstance(without, float) else without)
        rows.append((m, shown, "–" if contrib is None else f"{contrib:+.3f}"))
    unit = "value" if result.get("task") == "regression" else "probability of the predicted class"
    parts.append("<h3>Each modality left out</h3>" + table(["modality", "prediction without it",
                                                            f"contribution ({unit})"], rows, ident="contributions"))
    parts.append("<p class='note'>contribution = prediction with every modality − prediction without this one "
                 "(the model treats a left-out modality as missing, its ablation rule).</p>")
    return "".join(parts)

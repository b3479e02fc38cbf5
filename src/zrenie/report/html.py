"""The run report: one self-contained `report.html` next to the PNGs of a run directory.

The page has inline CSS, no JavaScript and no external URLs, so it opens offline from a copied
run directory. Images are referenced by relative path. Every string that reaches the page
(titles, captions, table cells, file names) is HTML-escaped: class names and captions come from
datasets on disk and must not be able to inject markup.
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zrenie.config import atomic_path

REPORT_NAME = "report.html"
MISSING = "n/a"  # shown for None and for metrics that are undefined (a class with no samples)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .7em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.summary th { text-align: left; }
figure { margin: .8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: .85em; }
p.text { white-space: pre-wrap; }
p.missing { color: #a33; }
h3 { font-size: 1em; margin: .6em 0 .2em; }
details { margin: 1.5em 0; border: 1px solid #ddd; border-radius: 4px; padding: .4em .8em; }
details > summary { cursor: pointer; font-weight: 600; }
div.groups { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
"""


@dataclass
class Section:
    """One titled part of the report.

    Attributes:
        title: the section heading.
        images: PNG file names relative to the run directory, shown in order.
        table: a `{key: value}` dict (two columns) or a list of row dicts (one column per key).
        text: a paragraph shown under the heading; line breaks are kept.
    """

    title: str
    images: list[str] = field(default_factory=list)
    table: dict[str, Any] | list[dict[str, Any]] | None = None
    text: str | None = None


def format_value(value: Any) -> str:
    """Formats a table cell: floats to 4 significant digits, integers in full, None as "n/a".

    Zero-dimensional tensors and numpy scalars are read as Python numbers first.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return MISSING if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _cell(tag: str, value: Any) -> str:
    css = ' class="num"' if tag == "td" and _is_number(value) else ""
    return f"<{tag}{css}>{html.escape(format_value(value))}</{tag}>"


def render_table(table: Mapping[str, Any] | Sequence[Mapping[str, Any]], css_class: str = "") -> str:
    """Renders a dict as a key/value table, or a list of row dicts as a table with a header row.

    Columns of a row list are the union of the rows' keys in order of first appearance; a row
    without a key gets an empty cell.
    """
    attr = f' class="{html.escape(css_class)}"' if css_class else ""
    if isinstance(table, Mapping):
        rows = [f"<tr>{_cell('th', str(k))}{_cell('td', v)}</tr>" for k, v in table.items()]
        return f"<table{attr}>\n" + "\n".join(rows) + "\n</table>"
    columns: list[str] = []
    for row in table:
        columns.extend(k for k in row if k not in columns)
    header = "<tr>" + "".join(_cell("th", str(c)) for c in columns) + "</tr>"
    body = [
        "<tr>" + "".join(_cell("td", row[c]) if c in row else "<td></td>" for c in columns) + "</tr>"
        for row in table
    ]
    return f"<table{attr}>\n<thead>{header}</thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _render_image(run_dir: Path, name: str) -> str:
    if not (run_dir / name).is_file():
        return f'<p class="missing">image not found: {html.escape(name)}</p>'
    src = html.escape(quote(Path(name).as_posix()))
    return f'<figure><img src="{src}" alt="{html.escape(name)}"><figcaption>{html.escape(name)}</figcaption></figure>'


def render_section(run_dir: Path, section: Section) -> str:
    """Renders one section: heading, text, table, then images (a missing image gets a note)."""
    parts = [f"<section>\n<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(f'<p class="text">{html.escape(section.text)}</p>')
    if section.table is not None:
        parts.append(render_table(section.table))
    parts.extend(_render_image(run_dir, name) for name in section.images)
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, body: Sequence[str]) -> str:
    """Wraps already rendered (and escaped) HTML fragments into the self-contained page."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render_report(run_dir: Path, title: str, sections: list[Section], summary: dict[str, Any] | None = None) -> str:
    """Builds the report page as a string; `write_report` saves it."""
    run_dir = Path(run_dir)
    body = [render_table(summary, css_class="summary")] if summary else []
    body.extend(render_section(run_dir, s) for s in sections)
    return render_page(title, body)


def save_page(run_dir: Path, page: str) -> Path:
    """Writes a page as `run_dir/report.html` atomically (a temp file in run_dir, then a rename).

    Returns:
        The path of report.html; run_dir is created if missing.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / REPORT_NAME
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


def write_report(
    run_dir: Path, title: str, sections: list[Section], summary: dict[str, Any] | None = None
) -> Path:
    """Writes `run_dir/report.html` atomically (a temp file in run_dir, then a rename).

    Args:
        run_dir: the run directory; created if missing. Section images are looked up in it.
        title: the page title and top heading.
        sections: the report's sections, in order.
        summary: a small key/value table shown under the title (task, model, best metric, ...).

    Returns:
        The path of report.html.
    """
    return save_page(run_dir, render_report(run_dir, title, sections, summary))

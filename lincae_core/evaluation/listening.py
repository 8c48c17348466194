"""The listening page (``report.html``) written beside the Markdown of ``lincae eval`` and ``lincae demo``.

One self-contained HTML file: the tables, the figures, and for each example an audio player per
version side by side (input, reconstruction, latent-domain edit, audio-domain edit). Every link
is relative to the page, so the report folder can be copied or served as it is; the page loads
nothing from outside the folder (no script, font or style sheet from the network).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lincae_core.publish import write_text_atomic

__all__ = ["ListeningExample", "ListeningTable", "write_listening_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
audio{width:15em;display:block}figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}
.note{color:#555;font-size:.9em}
"""


@dataclass(frozen=True)
class ListeningTable:
    """A table of the page: a caption, column headers and rows of cells (numbers right-aligned)."""

    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str | float | int | None]]


@dataclass(frozen=True)
class ListeningExample:
    """One example: a row per comparison, a column per version, each cell an audio file.

    ``rows`` maps a row label (e.g. ``"remix"``) to ``{column: path relative to the page}``;
    a missing column is an empty cell. ``note`` is shown under the example's title.
    """

    title: str
    columns: Sequence[str]
    rows: Mapping[str, Mapping[str, str]]
    note: str = ""
    figures: Sequence[str] = field(default_factory=tuple)


def _cell(v: str | float | int | None) -> str:
    if v is None:
        return "<td></td>"
    if isinstance(v, float):
        return (
            f'<td class="num">{v:.3g}</td>'
            if abs(v) < 1e-2 or abs(v) >= 1e4
            else f'<td class="num">{v:.2f}</td>'
        )
    if isinstance(v, int):
        return f'<td class="num">{v}</td>'
    return f"<td>{html.escape(v)}</td>"


def _table(t: ListeningTable) -> list[str]:
    out = ["<table>", f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""]
    out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.headers) + "</tr>")
    out += ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows]
    return [*out, "</table>"]


def _href(path: str) -> str:
    if path.startswith(("/", "http:", "https:", "file:")) or ".." in Path(path).parts:
        raise ValueError(f"Expected a path relative to the report folder. Got {path!r} instead.")
    return html.escape(Path(path).as_posix(), quote=True)


def _example(e: ListeningExample) -> list[str]:
    out = [f"<h2>{html.escape(e.title)}</h2>"]
    if e.note:
        out.append(f'<p class="note">{html.escape(e.note)}</p>')
    out.append("<table>")
    out.append("<tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in e.columns) + "</tr>")
    for label, files in e.rows.items():
        cells = []
        for c in e.columns:
            f = files.get(c)
            cells.append(
                f'<td><audio controls preload="metadata" src="{_href(f)}"></audio>'
                f"<small>{html.escape(Path(f).name)}</small></td>"
                if f
                else "<td></td>"
            )
        out.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    out.append("</table>")
    out += [f'<figure><img src="{_href(f)}" alt="{html.escape(f)}"></figure>' for f in e.figures]
    return out


def write_listening_page(
    path: str | Path,
    title: str,
    *,
    intro: Sequence[str] = (),
    tables: Sequence[ListeningTable] = (),
    figures: Sequence[str] = (),
    examples: Sequence[ListeningExample] = (),
) -> Path:
    """Write ``report.html`` at ``path`` (atomically) and return its path.

    Args:
        path: The page; every file it links is given relative to its folder.
        title: The page title.
        intro: Paragraphs (plain text) under the title.
        tables: The result tables.
        figures: Images (PNG) relative to the page.
        examples: The listening examples, one section each.

    Raises:
        ValueError: A link is absolute or leaves the report folder.
        FileNotFoundError: A linked file does not exist.
    """
    path = Path(path)
    linked = [*figures, *(f for e in examples for files in e.rows.values() for f in files.values())]
    linked += [f for e in examples for f in e.figures]
    for f in linked:
        _href(f)
        if not (path.parent / f).is_file():
            raise FileNotFoundError(f"{path.parent / f}: linked from {path.name} but missing")
    body = [f"<h1>{html.escape(title)}</h1>", *(f"<p>{html.escape(p)}</p>" for p in intro)]
    for t in tables:
        body += _table(t)
    body += [f'<figure><img src="{_href(f)}" alt="{html.escape(f)}"></figure>' for f in figures]
    for e in examples:
        body += _example(e)
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        *body,
        "</body></html>",
        "",
    ]
    write_text_atomic(path, "\n".join(p for p in page if p))
    return path

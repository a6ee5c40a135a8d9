"""One self-contained HTML page of an inspection: every picture inlined as a ``data:`` URI.

The page loads nothing (no scripts, fonts, style sheets or images from elsewhere), so it opens
from a file, an e-mail or an archive the same. Sections, in order, each a ``<section>`` with an
``id`` and an ``<h2>`` (:data:`SECTIONS`): prediction, layer table, kernels, feature maps,
receptive fields, top-9 patches, saliency, learning curve, confusion matrix. A section with
nothing to show says why in a ``<p class="note">``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

#: (id, heading) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("prediction", "Prediction"),
    ("layers", "Layers and receptive fields"),
    ("kernels", "Kernels"),
    ("feature-maps", "Feature maps"),
    ("receptive-fields", "Receptive fields"),
    ("top-patches", "Top-9 test patches"),
    ("saliency", "Saliency"),
    ("learning-curve", "Learning curve"),
    ("confusion-matrix", "Confusion matrix"),
)
SECTION_IDS = tuple(section for section, _ in SECTIONS)

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1700px; padding: 0 1em;
       color: #222; }
nav a { margin-right: 1em; }
section { margin: 2em 0; border-top: 1px solid #ccc; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; image-rendering: pixelated; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:nth-child(2), td:nth-child(2) { text-align: left; }
.note { color: #8a5300; background: #fff6e5; padding: 0.5em 1em; }
"""


@dataclass(frozen=True)
class PagePicture:
    """A PNG of one section with its caption."""

    section: str
    caption: str
    png: bytes


@dataclass
class Page:
    """Everything the page shows. ``tables`` and ``notes`` are keyed by section id; a table is
    (header, rows) of plain strings (escaped when written)."""

    title: str
    subtitle: str
    pictures: list[PagePicture] = field(default_factory=list)
    tables: dict[str, tuple[Sequence[str], Sequence[Sequence[str]]]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_page(page: Page) -> str:
    """The page as one HTML document (UTF-8 text)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(page.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(page.title)}</h1><p>{e(page.subtitle)}</p>",
        "<nav>" + "".join(f'<a href="#{s}">{e(h)}</a>' for s, h in SECTIONS) + "</nav>",
    ]
    for section, heading in SECTIONS:
        parts.append(f'<section id="{section}"><h2>{e(heading)}</h2>')
        for text in page.notes.get(section, []):
            parts.append(f'<p class="note">{e(text)}</p>')
        if section in page.tables:
            parts.append(_table(*page.tables[section]))
        for picture in page.pictures:
            if picture.section == section:
                parts.append(
                    f'<figure><img src="{data_uri(picture.png)}" alt="{e(picture.caption)}">'
                    f"<figcaption>{e(picture.caption)}</figcaption></figure>"
                )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

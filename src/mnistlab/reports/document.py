"""A report as a list of blocks, rendered twice: GitHub Markdown and a self-contained HTML page.

Building the content once and rendering it twice keeps REPORT.md and index.html identical in
substance. Inline text uses a small Markdown subset (`code`, **bold**, [text](link)) that the
HTML renderer translates; everything else is escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Literal

Align = Literal["l", "r", "c"]


@dataclass
class Heading:
    level: int
    text: str

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.text.lower()).strip("-")


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Code:
    text: str


@dataclass
class Image:
    src: str  # relative to the report directory
    alt: str
    caption: str = ""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: list[Align] = field(default_factory=list)  # per column; default: left
    css: str = ""  # extra class for the HTML table

    def column(self, index: int) -> Align:
        return self.align[index] if index < len(self.align) else "l"


Block = Heading | Paragraph | Bullets | Code | Image | Table


# -- Markdown ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    # a pipe would end the cell; a newline would end the row
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
        "| " + " | ".join(marks[table.column(i)] for i in range(len(table.headers))) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(blocks: list[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Code):
            parts.append("```text\n" + block.text.rstrip("\n") + "\n```")
        elif isinstance(block, Image):
            image = f"![{block.alt}]({block.src})"
            parts.append(image + (f"\n\n_{block.caption}_" if block.caption else ""))
        else:
            parts.append(table_markdown(block))
    return "\n\n".join(parts) + "\n"


# -- HTML --------------------------------------------------------------------------------------

# no _italic_: config names are full of underscores
_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    """Escape `text`, translating the Markdown subset used by the report."""
    out: list[str] = []
    position = 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[position : match.start()]))
        code, bold, label, href = match.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline_html(bold)}</strong>")
        else:
            out.append(f'<a href="{html.escape(href)}">{inline_html(label)}</a>')
        position = match.end()
    out.append(html.escape(text[position:]))
    return "".join(out)


def table_html(table: Table) -> str:
    style = {"l": "left", "r": "right", "c": "center"}
    head = "".join(
        f'<th style="text-align:{style[table.column(i)]}">{inline_html(h)}</th>'
        for i, h in enumerate(table.headers)
    )
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td style="text-align:{style[table.column(i)]}">{inline_html(c)}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in table.rows
    )
    css = f' class="{table.css}"' if table.css else ""
    return (
        f'<div class="scroll"><table{css}>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       margin: 2rem auto; max-width: 1400px; padding: 0 1.5rem; color: #1b1f24; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
code { background: #f0f2f5; padding: .05rem .3rem; border-radius: 4px; font-size: 90%; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; border-radius: 6px; }
.scroll { overflow-x: auto; margin: .6rem 0 1rem; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; white-space: nowrap; }
thead th { background: #f0f2f5; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #f8f9fb; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: 13px; color: #57606a; }
nav ul { columns: 2; font-size: 14px; }
"""

# Marks the page once every image has loaded or failed, so a headless browser test can read
# from the DOM whether any image is broken (no network is involved: the images are local files).
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken-images", String(broken.length));
});
"""


def render_html(blocks: list[Block], title: str) -> str:
    headings = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    toc = "".join(f'<li><a href="#{h.anchor}">{html.escape(h.text)}</a></li>' for h in headings)
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(
                f'<h{block.level} id="{block.anchor}">{inline_html(block.text)}</h{block.level}>'
            )
            if block.level == 1 and toc:
                parts.append(f"<nav><ul>{toc}</ul></nav>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{inline_html(item)}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(block, Code):
            parts.append(f"<pre>{html.escape(block.text)}</pre>")
        elif isinstance(block, Image):
            caption = (
                f"<figcaption>{inline_html(block.caption)}</figcaption>" if block.caption else ""
            )
            parts.append(
                f'<figure><img src="{html.escape(block.src)}" alt="{html.escape(block.alt)}">'
                f"{caption}</figure>"
            )
        else:
            parts.append(table_html(block))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
        f"<script>{_SCRIPT}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )

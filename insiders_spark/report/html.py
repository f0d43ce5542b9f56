"""The report as one self-contained HTML page, for a person who opens it in a browser.

The page is rendered from the report's own Markdown (``report.md``), so both always hold the same
sections and numbers. Only the Markdown the report writes is understood: headings, paragraphs,
pipe tables with their column alignment, bullet lists, ``**bold**``, ``*emphasis*``, ``code``
and images on a line of their own. Images are embedded as base64 PNG: no external file, no
script, nothing fetched when the page opens.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator, Mapping, Sequence

HTML_FILE = "report.html"

IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.*)$")
BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
ALIGN = {"left": "", "right": ' class="num"', "center": ' class="mid"'}

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #222; max-width: 1200px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.7em; border-bottom: 3px solid #c0392b; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .15em; }
.table { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: .88em; }
th, td { border: 1px solid #ddd; padding: .3em .55em; vertical-align: top; }
th { background: #f4f4f4; vertical-align: bottom; }
td { min-width: 5em; }
tbody tr:nth-child(even) { background: #fafafa; }
.num { text-align: right; font-variant-numeric: tabular-nums; min-width: 0; }
td.num { white-space: nowrap; }
.mid { text-align: center; }
code { background: #f4f4f4; padding: 0 .25em; border-radius: 3px; font-size: .9em; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; }
@media print { body { max-width: none; } h2 { break-after: avoid; } tr, img { break-inside: avoid; } }
"""


def render_html(page: str, images: Mapping[str, bytes]) -> str:
    """``page`` (the report's Markdown) as a complete HTML document; every image it names that
    ``images`` holds (file name -> PNG bytes) is embedded, any other is replaced by its text."""
    lines = page.splitlines()
    title = next((m["text"] for m in map(HEADING.match, lines) if m and len(m["level"]) == 1), "Insiders report")
    body = "\n".join(_blocks(lines, images))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_inline(title, markup=False)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _blocks(lines: Sequence[str], images: Mapping[str, bytes]) -> Iterator[str]:
    """Each Markdown block (heading, image, table, list, paragraph) as HTML, in order."""
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
            continue
        if heading := HEADING.match(line):
            level = len(heading["level"])
            yield f"<h{level}>{_inline(heading['text'])}</h{level}>"
            i += 1
            continue
        if image := IMAGE.match(line):
            yield _figure(image["alt"], image["src"], images)
            i += 1
            continue
        kind = _kind(line)
        block = _take(lines, i, kind)
        i += len(block)
        if kind == "|":
            yield _table(block)
        elif kind == "-":
            items = "".join(f"<li>{_inline(item.strip()[2:])}</li>" for item in block)
            yield f"<ul>{items}</ul>"
        else:
            yield f"<p>{_inline(' '.join(text.strip() for text in block))}</p>"


def _kind(text: str) -> str:
    """What a line belongs to: a table ("|"), a list ("-") or a paragraph ("p")."""
    stripped = text.strip()
    if stripped.startswith("|"):
        return "|"
    if stripped.startswith("- "):
        return "-"
    return "p"


def _take(lines: Sequence[str], start: int, kind: str) -> list[str]:
    """The lines from ``start`` up to a blank line, a heading, an image or a line of another kind."""
    taken = []
    for text in lines[start:]:
        stripped = text.strip()
        if not stripped or HEADING.match(stripped) or IMAGE.match(stripped) or _kind(stripped) != kind:
            break
        taken.append(text)
    return taken


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _alignment(rule: str) -> str:
    rule = rule.strip()
    if rule.startswith(":") and rule.endswith(":"):
        return "center"
    return "right" if rule.endswith(":") else "left"


def _table(rows: Sequence[str]) -> str:
    """A pipe table: its header row, the rule row (which gives each column's alignment), the rows."""
    header = _cells(rows[0])
    has_rule = len(rows) > 1 and all(re.fullmatch(r":?-+:?", cell) for cell in _cells(rows[1]))
    aligns = [ALIGN[_alignment(cell)] for cell in _cells(rows[1])] if has_rule else []
    aligns += [""] * (len(header) - len(aligns))

    def row(cells: Sequence[str], tag: str) -> str:
        shown = list(cells) + [""] * (len(header) - len(cells))
        return "<tr>" + "".join(f"<{tag}{aligns[j]}>{_inline(c)}</{tag}>" for j, c in enumerate(shown)) + "</tr>"

    body = [row(_cells(text), "td") for text in rows[2 if has_rule else 1 :]]
    return (
        f'<div class="table"><table>\n<thead>{row(header, "th")}</thead>\n'
        f"<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table></div>"
    )


def _figure(alt: str, source: str, images: Mapping[str, bytes]) -> str:
    data = images.get(source)
    if data is None:
        return f"<p>[{_inline(alt, markup=False)}: {_inline(source, markup=False)} not embedded]</p>"
    encoded = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></figure>'


def _inline(text: str, *, markup: bool = True) -> str:
    """Escaped text with the report's inline Markdown: code spans first (taken literally), then
    bold and emphasis in what is left."""
    if not markup:
        return html.escape(text, quote=False)
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: nothing is code
        parts = [text]
    out = []
    for j, part in enumerate(parts):
        if j % 2:
            out.append(f"<code>{html.escape(part, quote=False)}</code>")
        else:
            escaped = html.escape(part, quote=False)
            out.append(EMPHASIS.sub(r"<em>\1</em>", BOLD.sub(r"<strong>\1</strong>", escaped)))
    return "".join(out)

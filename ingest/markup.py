"""Markup to document text: HTML pages (whatever their suffix), Word/Flash exports, markup inside text files.

What a reader of the page sees is kept, in reading order, one block per paragraph; what only a
browser or a server reads (scripts, styles, server-side code, comments) is not. Data tables
become rows that carry their headers (`ingest.tables`). Scraped pages
also carry the site around the document: navigation and listings are lines made of links, and
whatever stands above the page's own title (site name, menus, date widgets) is dropped, except
the metadata lines (索引号, 发布机构, 成文日期 …) some sites print there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.metadata import is_date_line, is_metadata_line
from ingest.tables import Cell, join_wrapped, render_rows

# Server-side code in .jsp/.php/.asp pages: JSP comments and scriptlets, ASP blocks, PHP blocks
# (a PHP block may run to the end of the file). Left in, `->` inside them ends tags early.
_SERVER_CODE = re.compile(r"<%--.*?--%>|<%.*?%>|<\?(?:php\b|=)?.*?(?:\?>|\Z)", re.DOTALL | re.IGNORECASE)

_DROP_TAGS = ["script", "style", "noscript", "head", "template", "iframe", "object", "svg", "xml", "select", "button"]
_BLOCK_TAGS = frozenset(
    "p div li h1 h2 h3 h4 h5 h6 tr section article table ul ol dl dt dd blockquote pre "
    "header footer nav aside main form hr address figure figcaption center caption title textformat".split()
)
_CELL_TAGS = frozenset(("td", "th"))
_PRE_TAGS = frozenset(("pre", "textarea", "listing", "plaintext"))
_HEADING_TAGS = frozenset(("h1", "h2"))
_LIST_TAGS = frozenset(("ul", "ol", "nav", "menu", "dl"))
# Only ASCII whitespace is layout in HTML; NBSP and U+3000 (full-width space used to indent
# Chinese paragraphs) are content and must survive.
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")

# A markup tag of any vocabulary (HTML, Word's o:p/w:…, Flash's TEXTFORMAT), or an entity.
_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")
_ENTITY = re.compile(r"&(?:[A-Za-z]{2,8}|#\d{2,7}|#x[0-9A-Fa-f]{2,6});")
_PAGE_START = re.compile(r"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title)\b", re.IGNORECASE | re.DOTALL)
# JSON-escaped line breaks left in scraped markup (`\r\n2.`).
_ESCAPED_BREAK = re.compile(r"\\r\\n|\\n|\\r")

# Above this share of link text a line is navigation, a listing item or a pager.
_LINK_SHARE = 0.5
_SENTENCE_END = re.compile(r"[。！？!?；;]")
_PROSE_END = re.compile(r"[。；;]")
_MIN_PROSE_CHARS = 15
_BREADCRUMB = re.compile(r"^(?:首页|主页|网站首页|当前位置|您的位置|您现在的位置)")
_MAX_COLUMN_NAME = 12
_ATTACHMENT = re.compile(r"^\s*附\s*件")
# Longest cell of a data table; longer cells hold page layout.
_MAX_CELL_CHARS = 300
_TITLE_SEPARATOR = re.compile(r"\s*(?:-{1,3}|_{1,2}|\|{1,2}|—{1,2}|–)\s*")
_SITE_NAME = re.compile(r"(?:网|网站|官网|系统|平台|门户|首页|主页|在线)$")
_MIN_TITLE_CHARS = 6
_FOOTER = re.compile(r"版权所有|ICP备|ICP证|公网安备|网站标识码|Copyright|©", re.IGNORECASE)


def strip_server_code(text: str) -> str:
    return _SERVER_CODE.sub("", text)


def looks_like_page(text: str) -> bool:
    """True for a whole HTML/XML page, whatever the file is called."""
    head = strip_server_code(text[:20000]).lstrip("\ufeff")
    return bool(_PAGE_START.match(head)) or len(_TAG.findall(head)) >= 20


def has_markup(text: str) -> bool:
    """Text that carries tags or entities (HTML, XML, Word or Flash exports pasted into a text file)."""
    if "<" not in text and "&" not in text:
        return False
    return len(_TAG.findall(text)) >= 3 or len(_ENTITY.findall(text)) >= 3


def text_file_to_text(text: str) -> str:
    """A text file's text with any markup in it read as markup (JSON-escaped breaks included).

    A whole page pasted into the file is read as a page; markup in some lines only is read line
    by line, so the file's own line breaks stay."""
    if not has_markup(text):
        return text
    text = _ESCAPED_BREAK.sub("<br>", text)
    if looks_like_page(text):
        return page_to_text(text)
    out = []
    for line in text.split("\n"):
        if "<" in line or "&" in line:
            line = page_to_text(line, anchor_title=False)
        out.append(line)
    return "\n".join(out)


@dataclass
class _Line:
    text: str
    link_chars: int = 0
    tag: str = ""  # h1/h2 when the line is a page heading
    broken: bool = False  # ended by <br>: the next line is the same block


def _joined(lines: list[_Line]) -> str:
    """Blocks are paragraphs, separated by a blank line, so cleaning never rejoins them as a
    hard-wrapped sentence; lines broken by <br> inside a block stay adjacent."""
    text = "".join(line.text + ("\n" if line.broken else "\n\n") for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def page_to_text(html: str, *, anchor_title: bool = True) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(strip_server_code(html))
    candidates = _title_candidates(tree) if anchor_title else []
    tree.strip_tags(_DROP_TAGS, recursive=True)
    root = tree.body or tree.root
    if root is None:
        return ""
    lines = _without_navigation(_Walker().walk(root))
    if candidates:
        lines = _from_title(lines, candidates)
    return _joined(_before_footer(lines))


def _is_navigation(line: _Line) -> bool:
    visible = len(line.text.replace(" ", ""))
    if not visible or line.link_chars / visible < _LINK_SHARE or _ATTACHMENT.match(line.text):
        return False
    # A sentence that links a cited document is text; a line that is one link is a menu or listing item.
    return line.link_chars >= visible or not _SENTENCE_END.search(line.text)


def _without_navigation(lines: list[_Line]) -> list[_Line]:
    out: list[_Line] = []
    in_body = after_link = False
    for line in lines:
        if is_date_line(line.text):
            # A date next to a listing's link is the item's date, not the page's.
            if not (in_body and after_link):
                out.append(line)
            continue
        after_link = _is_navigation(line)
        if not after_link:
            out.append(line)
            in_body = in_body or _is_prose(line.text)
        elif _BREADCRUMB.match(line.text) and out and out[-1].tag != "h1" and len(out[-1].text) <= _MAX_COLUMN_NAME:
            out.pop()  # the column's name printed over its breadcrumb (`学校简介` / `首页/招生专栏`)
    return out


def _is_prose(text: str) -> bool:
    """A line of the document's body: sentences, not a headline (which may end in ！)."""
    return len(text) >= _MIN_PROSE_CHARS and bool(_PROSE_END.search(text))


def _before_footer(lines: list[_Line]) -> list[_Line]:
    """Nothing after the site footer (版权所有, ICP备 …) belongs to the document."""
    body_start = next((i for i, line in enumerate(lines) if _is_prose(line.text)), None)
    if body_start is None:
        return lines
    for i in range(body_start + 1, len(lines)):
        if _FOOTER.search(lines[i].text) and not _SENTENCE_END.search(lines[i].text):
            return lines[:i]
    return lines


# ---------------------------------------------------------------- the page's own title


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _title_candidates(tree) -> list[str]:
    """What the page says its document is called, most trustworthy first."""
    found: list[str] = []
    for selector in ('meta[name="ArticleTitle"]', 'meta[property="og:title"]', 'meta[name="title"]'):
        for node in tree.css(selector):
            found.append(node.attributes.get("content") or "")
    for node in tree.css("h1"):
        found.append(node.text())
    for node in tree.css("title"):
        whole = node.text()
        found.extend(sorted(_TITLE_SEPARATOR.split(whole), key=len, reverse=True))
    out = []
    for text in found:
        text = _compact(text)
        if len(text) >= _MIN_TITLE_CHARS and not _SITE_NAME.search(text) and text not in out:
            out.append(text)
    return out


def _from_title(lines: list[_Line], candidates: list[str]) -> list[_Line]:
    """Start the text at the page's title line; above it keep only metadata lines (moved below it)."""
    compacts = [_compact(line.text) for line in lines]
    for candidate in candidates:
        if candidate in compacts:
            at = compacts.index(candidate)
            break
    else:
        return lines
    title = lines[at]
    rest = lines[at + 1 :]
    if title.tag == "h1" and rest and rest[0].tag == "h2":  # headline and subtitle
        title = _Line(f"{title.text}——{rest[0].text}")
        rest = rest[1:]
    above = [line for line in lines[:at] if is_metadata_line(line.text.strip())]
    # Some pages print `title---column---site` again at the bottom.
    echo = re.compile(re.escape(compacts[at]) + r"(?:-{1,3}|_|\|)")
    rest = [line for line in rest if not echo.match(_compact(line.text))]
    return [title] + above + rest


# ---------------------------------------------------------------- walking the tree


class _Walker:
    """Text of an element tree, one block per line, with how much of each line is link text."""

    def __init__(self) -> None:
        self.lines: list[_Line] = []
        self.parts: list[str] = []
        self.link_chars = 0
        self.tag = ""

    def newline(self, *, broken: bool = False) -> None:
        text = "".join(self.parts).strip(" \t")
        if text:
            self.lines.append(_Line(text, self.link_chars, self.tag, broken))
        elif broken:
            self.lines.append(_Line(""))  # <br><br> separates paragraphs
        self.parts, self.link_chars, self.tag = [], 0, ""

    def walk(self, root) -> list[_Line]:
        # Iterative walk (deeply nested pages would overflow recursion); each element is
        # visited on entry and again on exit.
        stack: list[tuple[object, bool]] = [(root, False)]
        pre_depth = link_depth = 0
        while stack:
            node, leaving = stack.pop()
            tag = node.tag  # type: ignore[attr-defined]
            if leaving:
                pre_depth -= tag in _PRE_TAGS
                link_depth -= tag == "a"
                if tag in _BLOCK_TAGS or tag in _CELL_TAGS:
                    self.newline()
                continue
            if node.is_text_node:  # type: ignore[attr-defined]
                text = node.text_content or ""  # type: ignore[attr-defined]
                if not pre_depth:
                    text = _HTML_SPACE.sub(" ", text)
                    if not self.parts:
                        text = text.lstrip(" ")
                if text:
                    self.parts.append(text)
                    if link_depth:
                        self.link_chars += len(text.replace(" ", ""))
                continue
            if node.is_comment_node:  # type: ignore[attr-defined]
                continue
            if tag == "br":
                self.newline(broken=True)  # an explicit break always counts, even repeated
                continue
            if tag == "table" and (rows := _data_table(node)) is not None:
                self.newline()
                self.lines.extend(rows)
                continue
            if tag in _LIST_TAGS and _is_link_list(node):
                self.newline()
                continue
            if tag in _BLOCK_TAGS or tag in _CELL_TAGS:
                self.newline()
                if tag in _HEADING_TAGS:
                    self.tag = tag
            pre_depth += tag in _PRE_TAGS
            link_depth += tag == "a"
            stack.append((node, True))
            children = list(node.iter(include_text=True))  # type: ignore[attr-defined]
            stack.extend((child, False) for child in reversed(children))
        self.newline()
        return _squeeze_blank(self.lines)


def _is_link_list(node) -> bool:
    """A menu or a listing: a list whose text is mostly links, with no sentence outside them."""
    text = _compact(node.text())
    if not text:
        return False
    links = [_compact(a.text()) for a in node.css("a")]
    rest = text
    for link in links:
        rest = rest.replace(link, "", 1)
    return sum(map(len, links)) / len(text) >= _LINK_SHARE and not _SENTENCE_END.search(rest)


def _squeeze_blank(lines: list[_Line]) -> list[_Line]:
    out: list[_Line] = []
    for line in lines:
        if line.text or (out and out[-1].text):
            out.append(line)
    while out and not out[-1].text:
        out.pop()
    return out


def _span(node, name: str) -> int:
    try:
        return max(1, min(int(node.attributes.get(name) or 1), 100))
    except ValueError:
        return 1


def _cell_text(node) -> tuple[str, int]:
    """A cell's text on one line, and how much of it is link text."""
    walker = _Walker()
    lines = walker.walk(node)
    text = join_wrapped([line.text for line in lines])
    return text, sum(line.link_chars for line in lines)


def _data_table(table) -> list[_Line] | None:
    """A table of data as rows with headers, or None for a table that lays out the page."""
    if len(table.css("table")) > 1:
        return None
    rows: list[list[Cell]] = []
    listing_rows: set[int] = set()
    for r, tr in enumerate(table.css("tr")):
        cells = []
        longest = ("", 0)
        for td in tr.iter():
            if td.tag not in _CELL_TAGS:
                continue
            text, link_chars = _cell_text(td)
            if len(text) > _MAX_CELL_CHARS:
                return None
            cells.append(Cell(text, _span(td, "rowspan"), _span(td, "colspan")))
            if len(text) > len(longest[0]):
                longest = (text, link_chars)
        rows.append(cells)
        # A row whose main cell is a link is an item of a listing, not data.
        if longest[0] and longest[1] >= len(longest[0].replace(" ", "")):
            listing_rows.add(r)
    if not rows:
        return None
    kept = [row for r, row in enumerate(rows) if r not in listing_rows]
    if len(kept) < len(rows) and len(kept) <= 1:
        return []  # a listing with its header row
    return [_Line(line) for line in render_rows(kept)]

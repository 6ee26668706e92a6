"""Building addressable clauses from a document's paragraphs.

A clause is the text under one heading (up to the next heading), with the path of
headings above it. Headings nest by family rank (see `ingest.headings`); list items
inside a law article stay in the article, and list items with no body are text too.
Clauses longer than the cap split at sentence boundaries and keep their heading path;
fragments too short to stand alone join a neighbour.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ingest.headings import FAMILY_RANK, Heading, match_heading
from ingest.normalize import normalize_for_matching
from ingest.schema import Clause

MAX_CLAUSE_CHARS = 500
MIN_CLAUSE_CHARS = 10
PREAMBLE_ADDRESS = "preamble"

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
_PHRASE_END = re.compile(r"(?<=[，,、：:])")


@dataclass
class _Section:
    path: tuple[Heading, ...]
    paragraphs: list[tuple[int, str]] = field(default_factory=list)  # (offset in document text, text)
    line: tuple[int, str] | None = None  # a heading line that is not body text (`1. 双语学科科学命题研究`)


def _is_list_item_in_article(heading: Heading, stack: list[Heading]) -> bool:
    """（一）/1. items inside a law article are its 项, not headings of their own."""
    return heading.rank > FAMILY_RANK["article"] and any(h.family == "article" for h in stack)


def group_sections(paragraphs: list[str]) -> list[_Section]:
    """Walk the paragraphs with a stack of open headings; each heading opens a section."""
    sections: list[_Section] = []
    stack: list[Heading] = []
    current: _Section | None = None
    offset = 0
    for text in paragraphs:
        heading = match_heading(text)
        if heading and _is_list_item_in_article(heading, stack):
            heading = None
        if heading:
            while stack and stack[-1].rank >= heading.rank:
                stack.pop()
            stack.append(heading)
            current = _Section(tuple(stack))
            sections.append(current)
            if heading.run_in:
                current.paragraphs.append((offset, text))
            else:
                current.line = (offset, text)
        else:
            if current is None:
                current = _Section(())
                sections.append(current)
            current.paragraphs.append((offset, text))
        offset += len(text) + 1
    return [s for s in _keep_bodiless_items(sections) if s.paragraphs]


def _keep_bodiless_items(sections: list[_Section]) -> list[_Section]:
    """A list item with no body and no items under it (`1. 双语学科科学命题研究` followed by `2. …`) is
    text, not only a heading: a run of them right under their parent becomes the parent's text; one
    after a sibling with a body is a clause of its own. A bare marker (`2.`) and a heading that items
    follow stay headings only."""
    out: list[_Section] = []
    for i, section in enumerate(sections):
        following = sections[i + 1].path if i + 1 < len(sections) else ()
        if (
            section.line
            and not section.paragraphs
            and section.path[-1].rank > FAMILY_RANK["article"]
            and section.path[-1].title != section.path[-1].label
            and following[: len(section.path)] != section.path
        ):
            section.paragraphs.append(section.line)
            if out and out[-1].path == section.path[:-1]:
                out[-1].paragraphs.extend(section.paragraphs)
                continue
        out.append(section)
    return out


def split_to_cap(text: str, cap: int = MAX_CLAUSE_CHARS) -> list[str]:
    """Split an over-long clause into near-equal parts at sentence (then phrase) boundaries."""
    if len(text) <= cap:
        return [text]
    pieces = _pieces(text, cap)
    target = len(text) / math.ceil(len(text) / cap)
    parts: list[str] = []
    current = ""
    for piece in pieces:
        if current and (len(current) + len(piece) > cap or len(current) >= target):
            parts.append(current)
            current = ""
        current += piece
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, cap: int) -> list[str]:
    """Sentences, with any sentence longer than the cap cut at phrases, then hard at the cap."""
    out: list[str] = []
    for sentence in (s for s in _SENTENCE_END.split(text) if s):
        if len(sentence) <= cap:
            out.append(sentence)
            continue
        for phrase in (p for p in _PHRASE_END.split(sentence) if p):
            out.extend(phrase[i : i + cap] for i in range(0, len(phrase), cap))
    return out


def section_address(path: tuple[Heading, ...]) -> str:
    """`二.(三).2` for policy headings; a law article is addressed by itself (`第十条`)."""
    if not path:
        return PREAMBLE_ADDRESS
    articles = [i for i, h in enumerate(path) if h.family == "article"]
    start = articles[-1] if articles else 0
    return ".".join(h.address for h in path[start:])


def readable_address(clause_id: str) -> str:
    """How a citation names a clause: `doc#二.(三).2~2` → `二(三)2`, `doc#preamble` → `正文开头`."""
    address = clause_id.partition("#")[2].split("~")[0]
    return "正文开头" if address in ("", PREAMBLE_ADDRESS) else address.replace(".", "")


def _merge_fragments(sections: list[_Section]) -> list[_Section]:
    """A fragment too short to read alone joins the previous section (or the next, at the start)."""
    out: list[_Section] = []
    for section in sections:
        length = sum(len(t) for _, t in section.paragraphs)
        is_article = any(h.family == "article" for h in section.path[-1:])
        if out and length < MIN_CLAUSE_CHARS and not is_article:
            out[-1].paragraphs.extend(section.paragraphs)
        else:
            out.append(section)
    if len(out) > 1 and sum(len(t) for _, t in out[0].paragraphs) < MIN_CLAUSE_CHARS:
        out[1].paragraphs[:0] = out[0].paragraphs
        out.pop(0)
    return out


def build_clauses(
    doc_id: str, doc_title: str, paragraphs: list[str], cap: int = MAX_CLAUSE_CHARS, limit: int | None = None
) -> list[Clause]:
    """The document's clauses in order; stops once it has `limit` of them."""
    clauses: list[Clause] = []
    used: set[str] = set()
    # Where each address's `~n` search resumes: restarting at 1 was quadratic in the parts of one
    # section (a 3 MB one-line file: 6,000 parts, 18 million lookups).
    next_n: dict[str, int] = {}
    for section in _merge_fragments(group_sections(paragraphs)):
        start = section.paragraphs[0][0]
        text = "\n".join(t for _, t in section.paragraphs)
        base = f"{doc_id}#{section_address(section.path)}"
        for part in split_to_cap(text, cap):
            lead = len(part) - len(part.lstrip())
            clause_text = part.strip()
            n = next_n.get(base, 1)
            clause_id = base if n == 1 else f"{base}~{n}"
            while clause_id in used:
                n += 1
                clause_id = f"{base}~{n}"
            next_n[base] = n
            used.add(clause_id)
            clauses.append(
                Clause(
                    id=clause_id,
                    doc_id=doc_id,
                    doc_title=doc_title,
                    heading_path=[h.title for h in section.path],
                    text=clause_text,
                    norm_text=normalize_for_matching(clause_text),
                    position=len(clauses),
                    char_start=start + lead,
                    char_end=start + lead + len(clause_text),
                )
            )
            start += len(part)
            if limit is not None and len(clauses) >= limit:
                return clauses
    return clauses

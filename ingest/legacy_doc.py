"""Legacy Word 97-2003 `.doc` files, read through Debian's `antiword` (installed by `make install`).

antiword's DocBook output keeps paragraphs and tables apart; a table's rows become readable rows
(`ingest.tables`), the column widths telling which header cell spans which columns.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

from ingest.errors import UnreadableFileError
from ingest.tables import Cell, join_wrapped, render_rows

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
TOOL = "antiword"
_TIMEOUT_S = 60
# Column edges closer than this (in points) are the same edge.
_EDGE_TOLERANCE = 1.0


def read_doc(path: Path) -> str:
    executable = shutil.which(TOOL)
    if executable is None:
        raise UnreadableFileError(
            str(path),
            "reading legacy Word .doc files needs 'antiword', which is not installed "
            "(run `make install`, or `apt-get install antiword`), or save the file as .docx",
        )
    try:
        done = subprocess.run(
            [executable, "-x", "db", "-m", "UTF-8.txt", str(path)],
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise UnreadableFileError(str(path), f"antiword took longer than {_TIMEOUT_S} s on this .doc file") from exc
    if done.returncode != 0 or not done.stdout.strip():
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UnreadableFileError(
            str(path),
            f"antiword cannot read this .doc file ({detail[-1] if detail else 'no output'}); "
            "it may be corrupt, password-protected or not a Word 97-2003 file: save it as .docx",
        )
    try:
        return docbook_to_text(done.stdout)
    except UnreadableFileError as exc:
        raise UnreadableFileError(str(path), exc.reason) from exc


def docbook_to_text(xml: bytes) -> str:
    """Paragraphs one per line and tables as rows, in document order (bookinfo is metadata only)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise UnreadableFileError("<bytes>", f"antiword's output is not readable XML ({exc})") from exc
    lines: list[str] = []

    def walk(node: ElementTree.Element) -> None:
        for child in node:
            if child.tag == "bookinfo":
                continue
            if child.tag == "informaltable":
                lines.extend(render_rows(_table_rows(child)))
            elif child.tag == "para" and child.find(".//informaltable") is None:
                lines.append(_text(child))
            else:
                walk(child)

    walk(root)
    return "\n".join(line for line in lines if line)


def _text(node: ElementTree.Element) -> str:
    """Lines of a cell or paragraph joined as wrapped text; spaces inside a line stay (one of them)."""
    return join_wrapped([" ".join(line.split()) for line in "".join(node.itertext()).split("\n")])


def _table_rows(table: ElementTree.Element) -> list[list[Cell]]:
    """Rows of every tgroup; a cell spans as many columns as the edges of all tgroups say it covers."""
    groups = []
    for tgroup in table.iter("tgroup"):
        widths = []
        for spec in tgroup.iter("colspec"):
            try:
                widths.append(float((spec.get("colwidth") or "0").removesuffix("pt")))
            except ValueError:
                widths.append(0.0)
        groups.append((tgroup, _edges(widths)))
    all_edges = sorted({round(e / _EDGE_TOLERANCE) for _, edges in groups for e in edges})
    rows: list[list[Cell]] = []
    for tgroup, edges in groups:
        for row in tgroup.iter("row"):
            cells = []
            for i, entry in enumerate(row.iter("entry")):
                span = 1
                if i + 1 < len(edges):
                    lo, hi = round(edges[i] / _EDGE_TOLERANCE), round(edges[i + 1] / _EDGE_TOLERANCE)
                    span = max(1, sum(lo < e <= hi for e in all_edges))
                cells.append(Cell(_text(entry), colspan=span))
            rows.append(cells)
    return rows


def _edges(widths: list[float]) -> list[float]:
    edges = [0.0]
    for width in widths:
        edges.append(edges[-1] + width)
    return edges

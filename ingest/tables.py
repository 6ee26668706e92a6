"""Tables as readable rows: each data row on one line, its cells named by their column headers.

`铜仁一中 · 统招生 337 · 配额生 120`: a question about one school's quota finds its row, and
the row can be quoted on its own. Three sources: HTML tables and Word tables (cells with row
and column spans) and tables flattened into text one cell per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.headings import match_heading

SEPARATOR = " · "

_NUMBER = re.compile(r"[-+]?\d[\d,.]*\s*(?:%|％|‰|元|万元|亿元|人|名|个|所|次|天|岁|册|份|项|班|间|台|套)?")
_HEADER_MAX_CHARS = 24
# A cell ending like a form label (`账号：`) is a field to fill in, not a column header.
_FIELD_LABEL = re.compile(r"[:：]$")
_SENTENCE = re.compile(r"[。；;！!？?]")


@dataclass(frozen=True)
class Cell:
    text: str
    rowspan: int = 1
    colspan: int = 1


def is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text.strip()))


def grid(rows: list[list[Cell]]) -> list[list[tuple[str, int]]]:
    """Expand row and column spans into a rectangle of (text, id of the cell it comes from)."""
    out: list[list[tuple[str, int] | None]] = []
    origin = 0
    for r, row in enumerate(rows):
        while len(out) <= r:
            out.append([])
        c = 0
        for cell in row:
            while c < len(out[r]) and out[r][c] is not None:
                c += 1
            origin += 1
            for dr in range(max(cell.rowspan, 1)):
                while len(out) <= r + dr:
                    out.append([])
                target = out[r + dr]
                for dc in range(max(cell.colspan, 1)):
                    while len(target) <= c + dc:
                        target.append(None)
                    target[c + dc] = (cell.text, origin)
            c += max(cell.colspan, 1)
    width = max((len(row) for row in out), default=0)
    return [[cell or ("", -1 - i) for i, cell in enumerate(row + [None] * (width - len(row)))] for row in out]


def _is_header(row: list[tuple[str, int]], body: list[list[tuple[str, int]]]) -> bool:
    texts = [t for t, _ in row]
    filled = [t for t in texts if t]
    if len(filled) < 2 or not body:
        return False
    return all(
        len(t) <= _HEADER_MAX_CHARS and not is_number(t) and not _FIELD_LABEL.search(t) and not _SENTENCE.search(t)
        for t in filled
    )


def _fill_down(rows: list[list[tuple[str, int]]]) -> None:
    """Word tables merge a label cell down its rows by leaving the cells below it empty."""
    for previous, row in zip(rows, rows[1:]):
        for c, (text, _) in enumerate(row):
            if text or not any(t for t, _ in row[c + 1 :]):
                break
            row[c] = previous[c]


def render_grid(rows: list[list[tuple[str, int]]], *, header_row: bool | None = None) -> list[str]:
    """One line per data row: the label cells as they are, then `header value` for each filled cell."""
    rows = [[(re.sub(r"\s+", " ", t).strip(), o) for t, o in row] for row in rows]
    rows = [row for row in rows if any(t for t, _ in row)]
    if not rows:
        return []
    has_header = _is_header(rows[0], rows[1:]) if header_row is None else header_row and len(rows) > 1
    if not has_header:
        return [_join(row) for row in rows]
    header, body = rows[0], rows[1:]
    _fill_down(body)
    # Columns under the first header (`预算科目` spanning two columns) name the row.
    label_origin = header[0][1]
    lines = [_join(header)]  # kept as a line too: an empty form is its headers
    for row in body:
        parts: list[str] = []
        last_origin = None
        for (name, h_origin), (text, origin) in zip(header, row):
            if not text or origin == last_origin:
                continue
            last_origin = origin
            is_label = h_origin == label_origin and not is_number(text)
            parts.append(text if is_label or not name or name == text else f"{name} {text}")
        if parts:
            lines.append(SEPARATOR.join(parts))
    return lines


def _join(row: list[tuple[str, int]]) -> str:
    parts: list[str] = []
    last_origin = None
    for text, origin in row:
        if text and origin != last_origin:
            parts.append(text)
        last_origin = origin
    return SEPARATOR.join(parts)


def join_wrapped(parts: list[str]) -> str:
    """Lines of one cell or paragraph joined: a space between words, none inside Chinese text."""
    out = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if out and not (_is_cjk(out[-1]) and _is_cjk(part[0])):
            out += " "
        out += part
    return out


def _is_cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef"


def render_rows(rows: list[list[Cell]]) -> list[str]:
    return render_grid(grid(rows))


# ---------------------------------------------------------------- tables flattened one cell per line

_MIN_CELLS = 6
_MAX_CELL_CHARS = 30
_MAX_COLUMNS = 10
_MAX_CAPTION_LINES = 5
_SERIAL_HEADER = re.compile(r"^(?:序号|编号|序|排序|名次|No\.?)$", re.IGNORECASE)


def _is_cell(line: str) -> bool:
    text = line.strip()
    return (
        0 < len(text) <= _MAX_CELL_CHARS
        and not _SENTENCE.search(text)
        and not text.endswith(("，", ",", "：", ":"))
        and (is_number(text) or not match_heading(text))
    )


def _serial_table(cells: list[str]) -> tuple[int, list[str], list[list[str]]] | None:
    """`序号 县区名称 名额数 备注 1 肥东 15 2 …`: rows start at 1, 2, 3 …; empty cells were dropped."""
    start = next((i for i, cell in enumerate(cells) if _SERIAL_HEADER.match(cell)), None)
    if start is None or "1" not in cells[start:]:
        return None
    first = cells.index("1", start)
    header = cells[start:first]
    if not 2 <= len(header) <= _MAX_COLUMNS or any(is_number(h) for h in header):
        return None
    rows: list[list[str]] = []
    for cell in cells[first:]:
        # An empty form has rows of serial numbers only; a filled row lacks at most its last cell
        # before the next serial (so `2` in `1 巢湖 2 …` is a count); a full row ends even when the
        # next serial is mistyped.
        next_serial = cell == str(len(rows) + 1) and (
            not rows or len(rows[-1]) >= len(header) - 1 or all(len(r) == 1 for r in rows)
        )
        if not rows or next_serial or len(rows[-1]) >= len(header):
            rows.append([cell])
        else:
            rows[-1].append(cell)
    # Rows of uneven length, or not led by their serial, mean cells spanning rows or holding several
    # lines: which header a cell belongs to is lost.
    if len(rows) < 2 or any(len(row) not in (1, len(header) - 1, len(header)) or not is_number(row[0]) for row in rows):
        return None
    return start, header, rows


def _periodic_rows(cells: list[str]) -> tuple[list[str] | None, list[list[str]]] | None:
    """A rectangle of k columns whose numeric columns stay numeric, with or without a header row."""
    for k in range(2, _MAX_COLUMNS + 1):
        if len(cells) % k:
            continue
        rows = [cells[i : i + k] for i in range(0, len(cells), k)]
        for header in (rows[0], None):
            body = rows[1:] if header else rows
            if len(body) < 2 or (header and any(is_number(h) for h in header)):
                continue
            kinds = [{is_number(row[j]) for row in body} for j in range(k)]
            if all(len(kind) == 1 for kind in kinds) and any(True in kind for kind in kinds) and False in kinds[0]:
                return header, body
    return None


def _table_of(cells: list[str]) -> list[str] | None:
    """The lines that replace a run of one-cell lines, or None when the run is no table."""
    if found := _serial_table(cells):
        start, header, rows = found
        filled = [row for row in rows if len(row) > 1]
        rendered = render_grid(_as_grid([header] + filled), header_row=True) if filled else []
        return cells[:start] + (rendered or [SEPARATOR.join(header)])
    # A caption or a trailing note may share the run: try a few starts and ends.
    for start in range(min(_MAX_CAPTION_LINES, len(cells)) + 1):
        for end in range(len(cells), max(start + _MIN_CELLS, len(cells) - 3) - 1, -1):
            if found := _periodic_rows(cells[start:end]):
                header, rows = found
                grid_rows = _as_grid(([header] if header else []) + rows)
                return cells[:start] + render_grid(grid_rows, header_row=header is not None) + cells[end:]
    return None


def unflatten(lines: list[str]) -> list[str]:
    """Rebuild rows from runs of one-cell lines that hold numbers (a flattened table)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and _is_cell(lines[j]):
            j += 1
        cells = [line.strip() for line in lines[i:j]]
        table = _table_of(cells) if len(cells) >= _MIN_CELLS and sum(map(is_number, cells)) >= 3 else None
        if table is None:
            out.extend(lines[i : max(j, i + 1)])
            i = max(j, i + 1)
            continue
        out.extend(table)
        i = j
    return out


def _as_grid(rows: list[list[str]]) -> list[list[tuple[str, int]]]:
    width = max(len(row) for row in rows)
    out = []
    n = 0
    for row in rows:
        cells = []
        for text in row + [""] * (width - len(row)):
            n += 1
            cells.append((text, n))
        out.append(cells)
    return out

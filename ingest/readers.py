"""Turn one input file (txt/md, HTML pages of any server suffix, docx, legacy doc, pdf) into its text.

Readers only extract text: they never normalise script (traditional stays
traditional) or width, and never drop or guess characters. Anything they cannot
read faithfully becomes an UnreadableFileError, so a batch can report the file
and move on instead of indexing mojibake. Markup is recognised by content: a page
saved as `.jsp` or `.php`, or pasted into a `.txt`, is read as markup.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path

from ingest.errors import UnreadableFileError
from ingest.legacy_doc import OLE2_MAGIC, read_doc
from ingest.markup import has_markup, looks_like_page, page_to_text, strip_server_code, text_file_to_text
from ingest.tables import join_wrapped, render_grid

# Pages saved from a web server keep the server's suffix.
SERVER_SUFFIXES: tuple[str, ...] = (".jsp", ".php", ".asp", ".aspx")
PAGE_SUFFIXES: tuple[str, ...] = (".html", ".htm", ".xhtml", ".shtml", *SERVER_SUFFIXES)
SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", *PAGE_SUFFIXES, ".docx", ".doc", ".pdf")

DEFAULT_MAX_BYTES = 20 * 1024 * 1024

_BYTES_PATH = "<bytes>"

# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Above this share of control/private-use/unassigned/U+FFFD characters a
# decoding is treated as garbage. Real text has almost none; Big5 read as GBK
# or binary read as a code page lands far above it.
_MAX_BAD_RATIO = 0.05


def read_text(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Return the text of one document file, or raise UnreadableFileError saying why not."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFileError(
            str(path),
            f"unsupported file type '{path.suffix or '(none)'}'; supported: {', '.join(SUPPORTED_SUFFIXES)}"
            " (convert .xls/.wps to .docx or .pdf first)",
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableFileError(str(path), f"cannot open file: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise UnreadableFileError(str(path), "not a regular file")
    # Checked before reading so a huge file never gets loaded into memory.
    if size > max_bytes:
        raise UnreadableFileError(
            str(path), f"file is too large: {_human_size(size)} exceeds the limit of {_human_size(max_bytes)}"
        )

    try:
        if suffix in (".txt", ".md"):
            return text_file_to_text(decode_bytes(path.read_bytes()))
        if suffix in PAGE_SUFFIXES:
            return _read_page(path.read_bytes(), suffix)
        if suffix == ".docx":
            return _read_docx(path)
        if suffix == ".doc":
            return _read_doc(path)
        return _read_pdf(path)
    except UnreadableFileError as exc:
        # decode_bytes only knows "<bytes>"; re-raise naming the real file.
        if exc.path == str(path):
            raise
        raise UnreadableFileError(str(path), exc.reason) from exc
    except OSError as exc:
        raise UnreadableFileError(str(path), f"cannot read file: {exc.strerror or exc}") from exc


def decode_bytes(data: bytes) -> str:
    """Decode text bytes of unknown encoding; newlines become '\\n', nothing else changes."""
    if not data:
        return ""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise UnreadableFileError(
                    _BYTES_PATH, f"file starts with a {encoding} byte-order mark but is not valid {encoding}"
                ) from exc
            return _checked(_normalise_newlines(text))

    for encoding in ("utf-8", "gb18030"):
        text = _try_decode(data, encoding)
        # NUL never occurs in real UTF-8/GBK text: NUL bytes mean UTF-16 or binary.
        if text is not None and "\x00" not in text and _bad_ratio(text) <= _MAX_BAD_RATIO:
            return _normalise_newlines(text)

    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return _normalise_newlines(utf16)

    # Last resort (Big5, Shift_JIS, code pages ...). charset-normalizer returns
    # None for binary, and its guess is still checked for garbage.
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        text = str(best)
        if "\x00" not in text and _bad_ratio(text) <= _MAX_BAD_RATIO:
            return _normalise_newlines(text)
    raise UnreadableFileError(
        _BYTES_PATH,
        "cannot decode the text: bytes are not UTF-8, GBK/GB18030, UTF-16 or another recognisable encoding "
        "(binary or corrupt file?); re-save it as UTF-8",
    )


# ---------------------------------------------------------------- decoding helpers


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 written without a BOM (e.g. some Windows exports), told apart by where its NULs fall."""
    if len(data) < 2 or len(data) % 2:
        return None
    even_nuls = data[0::2].count(0)
    odd_nuls = data[1::2].count(0)
    # ASCII, digits and newlines in UTF-16 put NULs on one side only; binary
    # scatters them on both sides.
    if odd_nuls >= 2 * max(even_nuls, 1) and odd_nuls >= 2:
        encodings = ("utf-16-le", "utf-16-be")
    elif even_nuls >= 2 * max(odd_nuls, 1) and even_nuls >= 2:
        encodings = ("utf-16-be", "utf-16-le")
    else:
        return None
    for encoding in encodings:
        text = _try_decode(data, encoding)
        if text is not None and "\x00" not in text and _bad_ratio(text) <= _MAX_BAD_RATIO:
            return text
    return None


def _bad_ratio(text: str) -> float:
    """Share of non-space characters that no readable document contains."""
    visible = 0
    bad = 0
    for ch in text:
        if ch.isspace():
            continue
        visible += 1
        if ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn"):
            bad += 1
    return bad / visible if visible else 0.0


def _checked(text: str) -> str:
    # Even a declared encoding (BOM, meta charset) can be wrong; do not pass garbage on.
    if _bad_ratio(text) > _MAX_BAD_RATIO:
        raise UnreadableFileError(
            _BYTES_PATH, "decoded text is mostly unreadable characters (wrong encoding or binary file)"
        )
    return text


_NEWLINES = re.compile(r"\r\n|\r|\u2028|\u2029")


def _normalise_newlines(text: str) -> str:
    return _NEWLINES.sub("\n", text)


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


# ---------------------------------------------------------------- HTML

_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)

# Browsers (WHATWG Encoding) read these labels with a superset decoder; so do we,
# otherwise a "gb2312" page using any GBK-only character would fail.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
}

def _decode_html(data: bytes) -> str:
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return decode_bytes(data)  # a BOM beats any declaration (HTML spec)
    # Valid non-ASCII UTF-8 is practically never GBK text by accident, while
    # pages converted to UTF-8 often keep a stale "gb2312" meta tag.
    if _try_decode(data, "utf-8") is not None:
        return decode_bytes(data)
    match = _META_CHARSET.search(data[:4096])
    if match:
        label = match.group(1).decode("ascii").lower()
        encoding = _CHARSET_ALIASES.get(label, label)
        text = _try_decode(data, encoding)
        if text is not None and "\x00" not in text and _bad_ratio(text) <= _MAX_BAD_RATIO:
            return _normalise_newlines(text)
    # No usable declaration (or a wrong one): detect like a text file.
    return decode_bytes(data)


def _read_page(data: bytes, suffix: str) -> str:
    text = _decode_html(data)
    # A .php/.jsp/.asp file may be a page or only server code: only a page is a document.
    if suffix in SERVER_SUFFIXES and not (looks_like_page(text) or has_markup(strip_server_code(text))):
        raise UnreadableFileError(
            _BYTES_PATH, f"this {suffix} file holds server code but no HTML page; save the page from a browser instead"
        )
    return page_to_text(text)


# ---------------------------------------------------------------- DOCX


def _read_docx(path: Path) -> str:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(str(path))
        lines: list[str] = []
        # iter_inner_content keeps paragraphs and tables in body order, so a
        # table stays between the paragraphs that introduce and follow it.
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(_docx_table_rows(block))
            else:
                lines.append(block.text)
    except Exception as exc:  # python-docx raises zip, XML and KeyError alike for a broken file
        raise UnreadableFileError(
            str(path),
            f"corrupt or not a Word .docx file ({type(exc).__name__}); "
            "if it is an old .doc or a .wps file, save it as .docx first",
        ) from exc
    return _normalise_newlines("\n".join(lines))


def _docx_table_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        # Merged cells come back once per grid column, as the same cell: its id marks the span.
        rows.append([(join_wrapped([p.text for p in cell.paragraphs]), id(cell._tc)) for cell in row.cells])
    return render_grid(rows)


def _read_doc(path: Path) -> str:
    head = path.read_bytes()[:4096]
    if head.startswith(OLE2_MAGIC):
        return read_doc(path)
    # Web pages and RTF are often saved with a .doc name.
    text = _decode_html(path.read_bytes())
    if looks_like_page(text):
        return page_to_text(text)
    raise UnreadableFileError(
        str(path), "not a Word 97-2003 .doc file (RTF or another format named .doc?); save it as .docx"
    )


# ---------------------------------------------------------------- PDF


def _read_pdf(path: Path) -> str:
    import logging

    from pypdf import PdfReader

    # pypdf logs every tolerated defect; the caller only needs the verdict.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError(str(path), "PDF is password-protected; remove the password and try again")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFileError:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise UnreadableFileError(
            str(path), f"corrupt or not a PDF file ({type(exc).__name__}: {exc})"
        ) from exc

    if not any(page.strip() for page in pages):
        raise UnreadableFileError(
            str(path), "PDF has no text layer (probably a scanned image); it needs OCR before it can be ingested"
        )
    # Sentences broken across lines are kept as is; cleaning rejoins them.
    text = _normalise_newlines("\n".join(pages))
    # Fonts without a Unicode map extract as private-use or control characters.
    if _bad_ratio(text) > _MAX_BAD_RATIO:
        raise UnreadableFileError(
            str(path), "PDF text layer is unreadable (fonts without a Unicode mapping); it needs OCR"
        )
    return text

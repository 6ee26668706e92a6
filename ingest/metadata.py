"""Policy metadata found in a document's header: 发文机关, 文号, date, region.

Only the header is read (title, the lines before the body, property blocks, a scraped page's
metadata lines), plus the signature block at the end: the body cites other documents' numbers
and issuers, which are not this document's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.gazetteer import gazetteer

HEADER_CHARS = 400
# A document's own 文号 stands right under or beside its title; later numbers are citations.
NUMBER_ZONE_CHARS = 120
# The signature (issuing body over the date) closes a notice.
CLOSING_CHARS = 200

_CN_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"○": 0, "零": 0}

# Lines that carry metadata only: read for the header, never shown as a clause. Scraped pages
# print them as `key：value` (索引号, 发布机构, 成文日期 …), sometimes several on one line.
_METADATA_KEYS = (
    "发布时间|发布日期|发表时间|成文日期|公布日期|印发日期|更新时间|来源|文章来源|信息来源|作者|索引号|发布机构|"
    "发文机关|发文单位|主题分类|主题词|分类|公开方式|公开范围|文件状态|时效性|文号|发文字号|浏览次数|点击数|阅读次数|"
    "责任编辑|日期"
)
_METADATA_LINE = re.compile(
    rf"^(?:(?:{_METADATA_KEYS})\s*[:：].{{0,120}}|名称\s*[:：].{{0,120}}"
    r"|[\u4e00-\u9fff]{1,10}\s*[〔\[【(（﹝［〖]?\d{4}[〕\]】)）﹞］〗]\s*第?\d{1,4}\s*号)$"
)

# 文号: issuer abbreviation, year in brackets (any bracket style, or one bracket lost), serial, 号.
_OPEN = "〔\\[【(（﹝［〖{"
_CLOSE = "〕\\]】)）﹞］〗}"
_DOC_NUMBER = re.compile(
    rf"([\u4e00-\u9fff]{{1,10}}?[发办字函令通]?)\s*[{_OPEN}]?\s*((?:19|20)\d{{2}})\s*[{_CLOSE}]\s*第?\s*(\d{{1,4}})\s*号"
)
# `《…》（穗教发〔2024〕8号）`: the number of a document the text cites.
_CITED_NUMBER = re.compile(r"[》>〉]\s*[（(]?\s*$")
_NO_NUMBER = re.compile(r"(?:文号|发文字号)\s*[:：]\s*(?:无|$)", re.MULTILINE)

_ORGAN_SUFFIX = (
    r"(?:人民代表大会常务委员会|人民政府办公厅|人民政府办公室|人民政府|教育厅|教育局|教育委员会|教育工作领导小组|"
    r"委员会|办公厅|办公室|领导小组|厅|局|部|委|中心)"
)
# Bodies that sign school and college notices.
_SCHOOL_SUFFIX = r"(?:幼儿园|小学|中学|学校|学院|大学|院长办公室|校长办公室|党政办公室)"
_ORGAN = rf"[\u4e00-\u9fff]{{2,20}}?(?:{_ORGAN_SUFFIX}|{_SCHOOL_SUFFIX})"
# Labels stand at a line start or after a space: `各中小学校:` is an address line, not `学校:`.
_PROPERTY_ISSUER = re.compile(
    r"(?:【制定机关】|(?<![\u4e00-\u9fff])(?:发布机关|发文机关|制定机关|发布机构|发文单位|学校)[:：])\s*([\u4e00-\u9fff]{2,30})"
)
_SOURCE_ISSUER = re.compile(rf"来源[:：]\s*([\u4e00-\u9fff]{{2,20}}(?:{_ORGAN_SUFFIX}|{_SCHOOL_SUFFIX}))(?![\u4e00-\u9fff])")
_AUTHOR_ISSUER = re.compile(rf"作者[:：]\s*([\u4e00-\u9fff]{{2,20}}(?:{_ORGAN_SUFFIX}|{_SCHOOL_SUFFIX}))(?![\u4e00-\u9fff])")
_TITLE_ISSUER = re.compile(rf"^([\u4e00-\u9fff]{{2,30}}?{_ORGAN_SUFFIX})(?:关于|转发|印发)")
# Ministries name themselves at the head of a title without 关于 (`教育部補助推動…要點`).
_MINISTRY_TITLE = re.compile(r"^(教育部|國務院|国务院|财政部|財政部|人力资源和社会保障部)")
# `X转发Y关于…`, `转发Y关于…`, `X转发Y转发Z关于…`: the last named body issued the document, the
# first (when named) forwards it.
_FORWARDER = re.compile(rf"^(?:({_ORGAN})(?:关于)?)?转发")
_FORWARDED = re.compile(rf"^(?!关于)({_ORGAN})(?=关于|《|“|的|印发|转发|$)")
# Prefixes that are not part of any issuer's name (`关于公布绍兴市…` is no issuer `关于公布绍兴市`).
_TITLE_PREFIX = re.compile(r"^(?:关于(?:公布|转发|印发|公示|做好|开展|进一步)?|转发|印发|公布)")
_SIGNATURE = re.compile(rf"(?:^|\n)\s*({_ORGAN})\s*\n\s*(?:\d{{4}}|[〇○零一二三四五六七八九]{{4}})\s*年")
# An unsigned-date closing line names an issuing organ; a school name there is usually a link list's last item.
# A signature: the issuing body on one line, the date on the next.
_WRITTEN_DATE_LINE = re.compile(r"^[ \t\u3000]*((?:\d{4}|[〇○零一二三四五六七八九]{4})\s*年[^\n]{1,10}?日)[ \t\u3000]*$", re.MULTILINE)
_ORGAN_LINE = re.compile(rf"[ \t\u3000]*{_ORGAN}[ \t\u3000]*")
_CLOSING_ORGAN = re.compile(rf"(?:^|\n)\s*([\u4e00-\u9fff]{{2,20}}?{_ORGAN_SUFFIX})\s*$")
_PEOPLES_CONGRESS = re.compile(r"([\u4e00-\u9fff]{2,12}?)第[一二三四五六七八九十]+届人民代表大会常务委员会")
_NATIONAL_CONGRESS = re.compile(r"第[一二三四五六七八九十]+届全国人民代表大会常务委员会|全国人民代表大会常务委员会")

_LABELLED_DATE = re.compile(
    r"(?:发布时间|发布日期|发表时间|公布日期|成文日期|印发日期|【公布日期】|【发布日期】|(?<![\u4e00-\u9fff])日期)[:：]?\s*"
    r"(\d{4})\s*[-年./]\s*(\d{1,2})\s*[-月./]\s*(\d{1,2})"
)
_DATE = re.compile(r"(\d{4})\s*[-年./]\s*(\d{1,2})\s*[-月./]\s*(\d{1,2})\s*日?")
_CN_DATE = re.compile(r"([〇○零一二三四五六七八九]{4})年([一二三四五六七八九十]{1,2})月([一二三四五六七八九十]{1,3})日")
# A date under another label (培训时间, 报名时间 …) is when something happens, not when the
# document was issued; so is a date that opens a range (`2012年9月1日—2013年8月31日`).
_EVENT_DATE_BEFORE = re.compile(r"时间\s*[:：]?\s*$")
_RANGE_AFTER = re.compile(r"^\s*[—–\-~～至到]")
_CLOSING_DATE = re.compile(
    r"(?:^|\n)\s*(?:(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日|(\d{4})-(\d{1,2})-(\d{1,2}))\s*$"
)


@dataclass(frozen=True)
class Metadata:
    issuer: str | None = None
    doc_number: str | None = None
    date: str | None = None
    region: str | None = None
    forwarded_by: str | None = None


# A date on a line of its own: under a title it is the page's date, under a signature the document's.
_DATE_LINE = re.compile(r"^\s*\d{4}\s*[-年./]\s*\d{1,2}\s*[-月./]\s*\d{1,2}\s*日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$")


def is_metadata_line(paragraph: str) -> bool:
    return bool(_METADATA_LINE.match(paragraph))


def is_date_line(paragraph: str) -> bool:
    return bool(_DATE_LINE.match(paragraph))


def _cn_number(text: str) -> int:
    """一 .. 三十一 as used in dates."""
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGIT.get(tens, 1) if tens else 1) * 10 + (_CN_DIGIT[ones] if ones else 0)
    return int("".join(str(_CN_DIGIT[c]) for c in text))


def _iso(year: int, month: int, day: int) -> str | None:
    if 1949 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31:
        return f"{year:04d}-{month:02d}-{day:02d}"
    return None


def find_doc_number(header: str) -> str | None:
    if _NO_NUMBER.search(header):  # the page's 文号 field is empty or says 无
        return None
    for m in _DOC_NUMBER.finditer(header):
        if _CITED_NUMBER.search(header[max(0, m.start() - 4) : m.start()]):
            continue
        # The lazy prefix may have swallowed the sentence before the number (`…法规及吉市教发`).
        prefix = re.split(r"[及和与的、据照按于为见根]", m.group(1))[-1]
        if len(prefix) >= 2:
            return f"{prefix}〔{m.group(2)}〕{int(m.group(3))}号"
    return None


def find_date(header: str, closing: str = "", text: str = "") -> str | None:
    """A labelled date, else the signature's date (issuer over date, or a date closing the text),
    else the earliest date of the header."""
    if m := _LABELLED_DATE.search(header):
        return _iso(*map(int, m.groups()))
    if (signed := _signed_date(text)) and (iso := _dates(signed)):
        return iso
    if m := _CLOSING_DATE.search(closing):
        numbers = [int(g) for g in m.groups() if g]
        if iso := _iso(*numbers):
            return iso
    return _dates(header)


def _signed_date(text: str) -> str | None:
    # Date lines are few: look at the line above each rather than for an organ line everywhere.
    for m in _WRITTEN_DATE_LINE.finditer(text):
        above_end = m.start() - 1
        above = text[text.rfind("\n", 0, max(above_end, 0)) + 1 : max(above_end, 0)]
        if _ORGAN_LINE.fullmatch(above):
            return m.group(1)
    return None


def _dates(header: str) -> str | None:
    """The earliest issue date written in `header` (event dates and date ranges are skipped)."""
    candidates = []
    for m in _DATE.finditer(header):
        if _EVENT_DATE_BEFORE.search(header[max(0, m.start() - 8) : m.start()]) or _RANGE_AFTER.match(header[m.end() :]):
            continue
        if iso := _iso(*map(int, m.groups())):
            candidates.append((m.start(), iso))
    for m in _CN_DATE.finditer(header):
        year = int("".join(str(_CN_DIGIT[c]) for c in m.group(1)))
        if iso := _iso(year, _cn_number(m.group(2)), _cn_number(m.group(3))):
            candidates.append((m.start(), iso))
    return min(candidates)[1] if candidates else None


def _qualified(name: str, by: str | None) -> str:
    """`市教育局` forwarded by 丹东市人民政府办公室 is 丹东市教育局."""
    if by and name[0] in "省市县区" and (place := gazetteer().place_at_start(by)) and place.endswith(name[0]):
        return place + name[1:]
    return name


def find_issuer(title: str, header: str, closing: str = "") -> tuple[str | None, str | None]:
    """(issuer, forwarded_by): who issued the document, and who forwards it when the page says so."""
    labelled = None
    for pattern in (_PROPERTY_ISSUER, _SOURCE_ISSUER, _AUTHOR_ISSUER):
        if m := pattern.search(header):
            labelled = m.group(1)
            break
    if forwarded := _forwarding(title):
        named_forwarder, original = forwarded
        forwarder = named_forwarder or (labelled if labelled != original else None) or _signature(closing, header)
        return _qualified(original, forwarder), forwarder
    if labelled:
        return labelled, None
    bare_title = _TITLE_PREFIX.sub("", title)
    for pattern in (_TITLE_ISSUER, _MINISTRY_TITLE):
        if m := pattern.match(bare_title):
            return m.group(1), None
    if signed := _signature(closing, header):
        return signed, None
    if m := _PEOPLES_CONGRESS.search(header):
        return f"{m.group(1)}人民代表大会常务委员会", None
    if _NATIONAL_CONGRESS.search(header):
        return "全国人民代表大会常务委员会", None
    return None, None


def _forwarding(title: str) -> tuple[str | None, str] | None:
    """(forwarding body or None, original issuer) of a `…转发…` title."""
    if not (m := _FORWARDER.match(title)):
        return None
    rest, original = title[m.end() :], None
    while found := _FORWARDED.match(rest):
        original, rest = found.group(1), rest[found.end() :]
        if not rest.startswith("转发"):
            break
        rest = rest[2:]
    return (m.group(1), original) if original else None


def _signature(closing: str, header: str) -> str | None:
    for text in (closing, header):
        if m := _SIGNATURE.search(text):
            return m.group(1)
    if m := _CLOSING_ORGAN.search(closing):
        return m.group(1)
    return None


def find_region(issuer: str | None, title: str, forwarded_by: str | None = None) -> str | None:
    """The place the issuer (or forwarding body) starts with, else the title's; only real place names."""
    places = gazetteer()
    organs = [organ for organ in (issuer, forwarded_by) if organ]
    for organ in organs:
        if place := places.place_at_start(organ, short_names=True):
            return place
    title = _TITLE_PREFIX.sub("", title)
    if place := places.place_at_start(title):
        return place
    # With a national issuer (教育部), a place inside the title is its subject, not its origin.
    return None if organs else places.first_place(title)


def extract_metadata(title: str, header_lines: str, text: str) -> Metadata:
    """`header_lines`: title lines, property blocks, metadata lines; `text`: the document's body."""
    header = header_lines + "\n" + text[:HEADER_CHARS]
    closing = text[-CLOSING_CHARS:] if len(text) > HEADER_CHARS else text
    issuer, forwarded_by = find_issuer(title, header, closing)
    return Metadata(
        issuer=issuer,
        doc_number=find_doc_number(f"{title}\n{header_lines}\n{text[:NUMBER_ZONE_CHARS]}"),
        date=find_date(header, closing, text),
        region=find_region(issuer, title, forwarded_by),
        forwarded_by=forwarded_by,
    )

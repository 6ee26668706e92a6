"""Extractive answers with citations: the clause sentences that answer a question, and their sources.

`compose_answer(index, messages)` retrieves clauses for the conversation's last user question
(with the previous question when the last one is elliptical, e.g. `那初中呢?`), scores every
quotable sentence of the best clauses by the encoder's cosine with the question, the question's
terms it contains, its clause's rank and whether it supplies what the question asks for (a
number, a date, a duration, a yes/no rule, a list), and quotes the best sentence (with up to two
nearly as good from the same clause) cited `[1]`, above its source. When the best sentence scores
too low it says 未找到相关条款 instead of citing noise.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from index.clause_index import MAX_QUERY_CHARS, ClauseIndex, Hit, QueryError
from index.tokenize import normalise_numbers, tokenize
from ingest.clauses import readable_address
from ingest.normalize import normalize_for_matching
from ingest.schema import Clause

HITS_QUOTED_FROM = 5
MAX_QUOTES = 3
MIN_QUOTE_CHARS = 8  # shorter "sentences" are list markers such as `一是区域交流。`
MAX_QUOTE_CHARS = 100  # longer sentences are cut to their phrases around the question's terms
MIN_CJK_SHARE = 0.3  # a "sentence" with fewer Chinese characters is markup, code or a row of numbers

# How a candidate sentence is scored (see `score_candidates`), fitted on the dev split of
# eval/sets/answers.jsonl by `bench/answer_decisions.py`; the held-out split was not looked at.
WEIGHTS = {"dense": 6.0, "coverage": 1.0, "rank": 0.2, "intent": 0.3}
# A further quote must score within this margin of the best one, from the same clause: fewer, better quotes.
QUOTE_MARGIN = 0.15
# The best candidate's score below which the answer is 未找到相关条款 (same bench script, dev split).
FOUND_MIN_SCORE = 5.6

NOT_FOUND = "未找到相关条款。知识库中没有与这个问题足够相关的规定；可以换用政策文件里的说法（具体名词、文件名称）再问。"

_SENTENCE = re.compile(r"[^。；;！!？?\n]+[。；;！!？?]*")
_PHRASE = re.compile(r"[^，,、：:]+[，,、：:]*")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Question words, particles and what any question may ask for (要求, 规定) carry no content:
# left in, they would dilute coverage.
_QUESTION_WORDS = re.compile(
    r"请问|那么|还有|另外|是多少|多少|什么时候|有什么|是什么|什么样|什么|有哪些|哪些|哪个|哪里|怎么样|怎么|怎样|如何|"
    r"是否|有没有|能不能|可不可以|有何|要求|规定|政策|措施|办法|问题|^(那|对于|对|关于)|[吗呢吧呀啊么嘛]|[?？!！。，,、\s]"
)
_ELLIPTICAL_START = re.compile(r"^(那|那么|还有|另外|此外|同样|如果是|要是)")
# What a question asks for, tried in this order (`多少天` asks for a duration, not a number), and what
# in a sentence supplies it.
INTENTS: dict[str, tuple[re.Pattern, re.Pattern]] = {
    "duration": (
        re.compile(r"多久|多长时间|多长|几年|几个月|几天|几周|几小时|几个小时|多少年|多少天|多少个月|多少小时|期限|年限|时长|有效期"),
        re.compile(r"\d+(\.\d+)?\s*(个)?(年|月|周|星期|天|日|小时|学时|课时|分钟|学年|学期)|"
                   r"[一二三四五六七八九十两半]+(个)?(年|月|周|天|日|小时|学年|学期|工作日)"),
    ),
    "date": (
        re.compile(r"什么时候|何时|哪天|哪一天|几月|几号|几日|截止|截至|日期|哪年|哪一年|时间节点|开始时间|之前完成"),
        re.compile(r"\d{4}\s*年|\d{1,2}\s*月|[一二三四五六七八九十]{1,3}月|之前|以前|前完成|截止|起|年底|年末|月底|每年"),
    ),
    "yes_no": (
        re.compile(r"是否|能不能|能否|可不可以|可否|允许|要不要|需不需要|用不用|算不算|会不会|有没有|可以.{0,12}[吗么]|"
                   r"能.{0,12}[吗么]|[吗么][?？]?$"),
        re.compile(r"不得|禁止|严禁|应当|必须|可以|不允许|允许|有权|不予|不能|无需|不需|须|不属于|属于"),
    ),
    "number": (
        re.compile(r"多少|几|标准|比例|上限|下限|最多|最少|至少|金额|额度|人数|数量|多大|多高|多重|多远|比率|占比|费用|钱"),
        re.compile(r"\d|[一二三四五六七八九十百千万两]+(人|元|名|所|个|倍|岁|班|次|分)|百分之"),
    ),
    "list": (
        re.compile(r"哪些|什么条件|条件|材料|程序|流程|步骤|包括|内容|怎么办|如何办理"),
        re.compile(r"[：:]|包括|下列|以下|（一）|\(一\)|①|一是"),
    ),
}
_LIST_ITEM = re.compile(r"^\s*([（(][一二三四五六七八九十\d]{1,3}[)）]|[一二三四五六七八九十]{1,3}、|\d{1,2}[.．、]|[①-⑳])")
FOLLOW_UP_MAX_CHARS = 8  # `高中呢?`, `那初中呢?`: short questions ending in 呢 lean on the previous one
PREVIOUS_QUESTION_WEIGHT = 0.5


class Message(BaseModel):
    role: str
    content: str


class Source(BaseModel):
    number: int
    clause_id: str
    address: str
    doc_id: str
    title: str
    heading_path: list[str]
    text: str
    quotes: list[str]


class Answer(BaseModel):
    text: str
    sources: list[Source]
    found: bool


class Question(BaseModel):
    """The last user question, and the previous one when the last one needs it to make sense."""

    current: str
    previous: str | None = None

    @property
    def search_text(self) -> str:
        if self.previous is None:
            return self.current
        room = MAX_QUERY_CHARS - len(self.current) - 1
        return f"{self.previous[-room:]} {self.current}" if room > 0 else self.current


def content_of(question: str) -> str:
    return _QUESTION_WORDS.sub(" ", normalize_for_matching(question)).strip()


def is_elliptical(question: str) -> bool:
    text = normalize_for_matching(question).strip().rstrip("?？。")
    return bool(_ELLIPTICAL_START.match(text)) or (len(text) <= FOLLOW_UP_MAX_CHARS and text.endswith("呢"))


def resolve_question(messages: list[Message]) -> Question:
    """The question to answer; raises QueryError when there is no usable user message."""
    users = [m.content.strip() for m in messages if m.role == "user"]
    if not users:
        raise QueryError("the conversation has no user message")
    current = users[-1]
    if not current:
        raise QueryError("the last user message is empty")
    for text in users:
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(f"a user message has {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
    previous = users[-2] if len(users) > 1 and is_elliptical(current) else None
    return Question(current=current, previous=previous)


def split_sentences(text: str) -> list[str]:
    """A clause's sentences, ending punctuation kept: split at 。；！？ (either width) and line breaks."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def coverage(question: str, sentence_norm: str) -> float:
    """Share of the question's content characters that the sentence contains, as the question's terms."""
    haystack = normalise_numbers(sentence_norm.lower())
    content = content_of(question)
    compact = "".join(normalise_numbers(content.lower()).split())
    if not compact:
        return 0.0
    covered = [False] * len(compact)
    for term in set(tokenize(content)):
        if term in haystack:
            start = compact.find(term)
            while start >= 0:
                covered[start : start + len(term)] = [True] * len(term)
                start = compact.find(term, start + 1)
    return sum(covered) / len(compact)


def question_coverage(question: Question, norm: str) -> float:
    """Coverage of the last question; of both, the previous one weighted less, after a follow-up."""
    covered = coverage(question.current, norm)
    if question.previous is None:
        return covered
    return (covered + PREVIOUS_QUESTION_WEIGHT * coverage(question.previous, norm)) / (1 + PREVIOUS_QUESTION_WEIGHT)


def question_intent(question: str) -> str | None:
    """What the question asks for: duration, date, yes_no, number, list; None for anything else."""
    norm = normalize_for_matching(question)
    return next((name for name, (asks, _) in INTENTS.items() if asks.search(norm)), None)


def supplies(intent: str | None, sentence_norm: str) -> bool:
    return intent is not None and bool(INTENTS[intent][1].search(normalise_numbers(sentence_norm)))


def is_heading(sentence: str, clause: Clause) -> bool:
    """A clause's run-in heading repeats its heading path: `4、開展“學校治理創新年”活動。`."""
    bare = sentence.rstrip("。；;！!？?")
    return any(bare == h or (h.endswith("…") and bare.startswith(h[:-1])) for h in clause.heading_path)


def is_prose(sentence: str) -> bool:
    """Enough Chinese text to quote: not a bare list marker, markup, code or a row of numbers."""
    body = _LIST_ITEM.sub("", sentence)
    cjk = len(_CJK.findall(body))
    return cjk >= MIN_QUOTE_CHARS - 2 and cjk >= MIN_CJK_SHARE * len(body)


def readable(sentence: str, clause: Clause) -> str:
    """A list item (`（二）每一万人口…`) is quoted with the heading it belongs to, so it reads on its own."""
    if not _LIST_ITEM.match(sentence) or len(clause.heading_path) < 2:
        return sentence
    parent = clause.heading_path[-2].rstrip("：:。")
    return f"{parent}：{sentence}"


def trim(sentence: str, question: Question) -> str:
    """A long sentence cut to the run of its phrases around the one that best covers the question."""
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence
    phrases = _PHRASE.findall(sentence)
    scores = [question_coverage(question, normalize_for_matching(p)) for p in phrases]
    start = end = scores.index(max(scores))
    length = len(phrases[start])
    while True:
        after = len(phrases[end + 1]) if end + 1 < len(phrases) else None
        before = len(phrases[start - 1]) if start > 0 else None
        if after is not None and length + after <= MAX_QUOTE_CHARS:
            end, length = end + 1, length + after
        elif before is not None and length + before <= MAX_QUOTE_CHARS:
            start, length = start - 1, length + before
        else:
            break
    text = "".join(phrases[start : end + 1])
    return ("…" if start > 0 else "") + (text if end == len(phrases) - 1 else text.rstrip("，,、：:") + "…")


class Candidate(BaseModel):
    """A sentence of a retrieved clause, with what decides whether it answers the question."""

    hit: int  # position in the hits, from 0
    sentence: str
    dense: float = 0.0  # cosine of question and sentence
    coverage: float = 0.0
    intent: bool = False  # it supplies what the question asks for (a number, a date, …)
    score: float = 0.0


def candidates(question: Question, hits: list[Hit]) -> list[Candidate]:
    """The quotable sentences of the hits (no headings, no markup), each once, with their lexical features."""
    intent = question_intent(question.current if question.previous is None else question.search_text)
    found: list[Candidate] = []
    seen: set[str] = set()
    for i, hit in enumerate(hits):
        for sentence in split_sentences(hit.clause.text):
            if sentence in seen or is_heading(sentence, hit.clause) or not is_prose(sentence):
                continue
            seen.add(sentence)
            norm = normalize_for_matching(sentence)
            found.append(Candidate(hit=i, sentence=sentence, coverage=question_coverage(question, norm),
                                   intent=supplies(intent, norm)))
    return found


def score_candidates(index: ClauseIndex, question: Question, found: list[Candidate]) -> list[Candidate]:
    """Each candidate scored by the encoder's cosine with the question, the terms it shares with it, its
    clause's rank and whether it supplies what the question asks for; best first."""
    if not found:
        return []
    dense = index.similarities(question.search_text, [c.sentence for c in found])
    for candidate, cosine in zip(found, dense, strict=True):
        candidate.dense = float(cosine)
        candidate.score = (WEIGHTS["dense"] * candidate.dense + WEIGHTS["coverage"] * candidate.coverage
                           + WEIGHTS["rank"] / (candidate.hit + 1) + WEIGHTS["intent"] * candidate.intent)
    return sorted(found, key=lambda c: -c.score)


def select_quotes(question: Question, hits: list[Hit], ranked: list[Candidate]) -> list[Candidate]:
    """The best sentence and, from the same clause, those nearly as good; none when the best is too weak."""
    if not ranked or ranked[0].score < FOUND_MIN_SCORE:
        return []
    best = ranked[0]
    chosen = [c for c in ranked if c.hit == best.hit and c.score >= best.score - QUOTE_MARGIN][:MAX_QUOTES]
    clause = hits[best.hit].clause
    return [c.model_copy(update={"sentence": readable(trim(c.sentence, question), clause)}) for c in chosen]


def make_source(number: int, hit: Hit, quotes: list[str]) -> Source:
    return Source(
        number=number,
        clause_id=hit.clause.id,
        address=readable_address(hit.clause.id),
        doc_id=hit.clause.doc_id,
        title=hit.document.title,
        heading_path=hit.clause.heading_path,
        text=hit.clause.text,
        quotes=quotes,
    )


def format_sources(sources: list[Source]) -> str:
    lines = [f"[{s.number}] 《{s.title}》 {s.address}（{s.clause_id}）" for s in sources]
    return "来源：\n" + "\n".join(lines)


def not_found() -> Answer:
    return Answer(text=NOT_FOUND, sources=[], found=False)


def retrieve(index: ClauseIndex, messages: list[Message]) -> tuple[Question, list[Hit]]:
    question = resolve_question(messages)
    return question, index.search(question.search_text, k=HITS_QUOTED_FROM)


def extractive_answer(index: ClauseIndex, question: Question, hits: list[Hit]) -> Answer:
    quotes = select_quotes(question, hits, score_candidates(index, question, candidates(question, hits)))
    if not quotes:
        return not_found()
    source = make_source(1, hits[quotes[0].hit], [q.sentence for q in quotes])
    lines = [f"{k}. {q.sentence}[1]" for k, q in enumerate(quotes, 1)]
    text = "根据检索到的条款：\n" + "\n".join(lines) + "\n\n" + format_sources([source])
    return Answer(text=text, sources=[source], found=True)


def compose_answer(index: ClauseIndex, messages: list[Message]) -> Answer:
    """The cited extractive answer to the conversation's last user question."""
    question, hits = retrieve(index, messages)
    return extractive_answer(index, question, hits)

"""Extractive answers with citations: the clause sentences that answer a question, and their sources.

`compose_answer(index, messages)` retrieves clauses for the conversation's last user question
(with the previous question when the last one is elliptical, e.g. `那初中呢?`), has the index's
reranker read each sentence of the best clauses (with its title and heading path) against the
question, and quotes the best one to three, each cited `[n]`, above a numbered source list; a list
head (`…应当符合下列条件：`) is quoted with its items. When even the best sentence is not relevant
enough it says so instead of citing noise.

Without a reranker (`POLICYQA_RERANKER=none`) sentences are scored by the question's terms, the
clause's rank and, for questions asking for a quantity or a date, the numbers and limits they
contain, and relevance is judged by the dense score and term coverage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from backends.base import SearchIndex
from index.clause_text import passage_text, question_text
from index.tokenize import normalise_numbers, tokenize
from index.types import MAX_QUERY_CHARS, Hit, QueryError
from ingest.clauses import readable_address
from ingest.normalize import normalize_for_matching
from ingest.schema import Clause
from rerank.reranker import Reranker

HITS_QUOTED_FROM = 5
MAX_QUOTES = 3
# A further quote must score at least this share of the best one: fewer, better quotes.
QUOTE_SCORE_SHARE = 0.85
MIN_QUOTE_CHARS = 8  # shorter "sentences" are list markers such as `一是区域交流。`
MAX_QUOTE_CHARS = 100  # longer sentences are cut to their phrases around the question's terms

# Relevance, calibrated on the demo index (132 clauses, multilingual-e5-small, hybrid top 5) with 52
# answerable and 40 unanswerable questions (off-topic ones, and education topics the corpus lacks).
# E5 cosines are compressed, so the best dense cosine alone cannot decide: unanswerable questions
# reach 0.8841 (教师资格证考试有什么要求; 0.8656 高校科研经费报销流程, 0.8562 医保报销比例,
# 0.8409 足球比赛规则, 0.7569 how to bake bread) while answerable ones start at 0.8516 (校园足球;
# 0.8629 课后服务, 0.8769 班额标准, 0.8861 小学一个班最多能有多少学生?). Below DENSE_SURE the quoted
# sentences must also cover COVERAGE_MIN of the question: unanswerable questions cover at most 0.67
# there, answerable ones 0.86 or more (but for 3 whose quotes are weak). Result: 49/52 answerable
# found; 2/40 unanswerable answered anyway (教师资格证考试有什么要求 0.8841, 幼儿园收费标准是多少 0.8832).
DENSE_SURE = 0.88
DENSE_FLOOR = 0.84
COVERAGE_MIN = 0.75

# With the reranker: the sentences of the best `hits_read` hits are read, each scored by the reranker less
# `rank_penalty` for every place its clause stands below the first; the best must reach `min_relevance`
# (below it: 未找到相关条款) and a further quote QUOTE_RELEVANCE_SHARE of the best's. The quotes are shown in
# the order of their clauses (the search's order, which blends fusion in, is surer than a sentence's score
# alone: see README, "Reranker"). Reading 3 clauses and a penalty of 0.05 were the best on dev
# (`--hits-read 1 2 3 --rank-penalties 0 0.05 0.1 0.2`: 70.0 % correct; 68.6 % without the penalty).
# The threshold is the highest that keeps answers correct within 0.05 of no threshold on the dev split of
# eval/sets/answers.jsonl (`bench/reranker_decisions.py --split dev`, each passage scored alone, swept by 0.01:
# 0.700 -> 0.657 correct, 0.300 -> 0.257 wrong-but-cited, 1 of 17 unanswerable refused; 0.60 would give 0.643).
# Our reranker, trained listwise, barely tells unanswerable questions apart by its score: a higher threshold
# refuses answerable ones first.
RERANKED_HITS_READ = 3
ANSWER_MIN_RELEVANCE = 0.59
RANK_PENALTY = 0.05
QUOTE_RELEVANCE_SHARE = 0.9
MAX_LIST_ITEMS = 8
_LIST_HEAD = re.compile(r"[：:]\s*$")

NOT_FOUND = "未找到相关条款。知识库中没有与这个问题足够相关的规定；可以换用政策文件里的说法（具体名词、文件名称）再问。"

_SENTENCE = re.compile(r"[^。；;！!？?\n]+[。；;！!？?]*")
_PHRASE = re.compile(r"[^，,、：:]+[，,、：:]*")
# Question words, particles and what any question may ask for (要求, 规定) carry no content:
# left in, they would dilute coverage.
_QUESTION_WORDS = re.compile(
    r"请问|那么|还有|另外|是多少|多少|什么时候|有什么|是什么|什么样|什么|有哪些|哪些|哪个|哪里|怎么样|怎么|怎样|如何|"
    r"是否|有没有|能不能|可不可以|有何|要求|规定|政策|措施|办法|问题|^(那|对于|对|关于)|[吗呢吧呀啊么嘛]|[?？!！。，,、\s]"
)
_ELLIPTICAL_START = re.compile(r"^(那|那么|还有|另外|此外|同样|如果是|要是)")
# What a question asks for when it wants a number, a limit or a date.
_ASPECTS = "标准|比例|时间|期限|年限|人数|数量|金额|额度|上限|下限|最多|最少|至少|多大|多长|多久|多高|多远|何时|哪年|几"
_QUANTITY_ASPECT = re.compile(_ASPECTS)
_QUANTITY_QUESTION = re.compile("多少|什么时候|" + _ASPECTS)
_NUMBER = re.compile(r"\d")
_LIMIT = re.compile(r"不超过|不得超过|不少于|不低于|不高于|以上|以下|以内|至少|最多|达到|控制在|低于|高于")
FOLLOW_UP_MAX_CHARS = 8  # `高中呢?`, `那初中呢?`: short questions ending in 呢 lean on the previous one
PREVIOUS_QUESTION_WEIGHT = 0.5
RANK_WEIGHT = 0.2
NUMBER_BONUS = 0.3
LIMIT_BONUS = 0.2


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
    # The reranker's relevance of the best sentence read (None without a reranker).
    relevance: float | None = None


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


@dataclass(frozen=True)
class PickingOptions:
    """How the chat picks its sentences with a reranker (see RERANKED_HITS_READ above)."""

    hits_read: int = RERANKED_HITS_READ
    rank_penalty: float = RANK_PENALTY
    min_relevance: float = ANSWER_MIN_RELEVANCE
    # False: the reranker orders the hits, term overlap picks the sentences (as without a reranker).
    sentences_by_reranker: bool = True


class Quote(BaseModel):
    hit: int  # position in the hits, from 0
    sentence: str
    score: float
    coverage: float = 0.0


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
    """Share of the question's content characters that the sentence contains, as the question's terms.

    The quantity a question asks for (`班额标准`, `…的比例`) counts as present in a sentence with a number.
    """
    haystack = normalise_numbers(sentence_norm.lower())
    content = content_of(question)
    if _NUMBER.search(haystack):
        content = _QUANTITY_ASPECT.sub(" ", content)
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


def score_sentence(question: Question, sentence: str, rank: int) -> tuple[float, float]:
    """(score, coverage) of one sentence of the clause at `rank` (from 1)."""
    norm = normalize_for_matching(sentence)
    covered = question_coverage(question, norm)
    score = covered + RANK_WEIGHT / rank
    if _QUANTITY_QUESTION.search(question.search_text) and _NUMBER.search(normalise_numbers(norm)):
        score += NUMBER_BONUS + (LIMIT_BONUS if _LIMIT.search(norm) else 0.0)
    return score, covered


def is_heading(sentence: str, clause: Clause) -> bool:
    """A clause's run-in heading repeats its heading path: `4、開展“學校治理創新年”活動。`."""
    bare = sentence.rstrip("。；;！!？?")
    return any(bare == h or (h.endswith("…") and bare.startswith(h[:-1])) for h in clause.heading_path)


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


def select_quotes(question: Question, hits: list[Hit]) -> list[Quote]:
    """The best sentences of the hits, best first: those sharing terms with the question."""
    candidates: list[Quote] = []
    seen: set[str] = set()
    for i, hit in enumerate(hits):
        for sentence in split_sentences(hit.clause.text):
            if len(sentence) < MIN_QUOTE_CHARS or sentence in seen or is_heading(sentence, hit.clause):
                continue
            seen.add(sentence)
            score, covered = score_sentence(question, sentence, i + 1)
            candidates.append(Quote(hit=i, sentence=sentence, score=score, coverage=covered))
    candidates.sort(key=lambda q: -q.score)
    if not candidates or candidates[0].coverage == 0:
        # A purely semantic match shares no term: quote the top clause's first sentence instead.
        return [q for q in candidates if q.hit == 0][:1]
    best = candidates[0]
    # Further quotes must be about as good and cover as much of the question: no padding.
    chosen = [q for q in candidates if q.score >= QUOTE_SCORE_SHARE * best.score and q.coverage >= best.coverage]
    return [q.model_copy(update={"sentence": trim(q.sentence, question)}) for q in chosen[:MAX_QUOTES]]


def list_end(sentences: list[str], at: int) -> int:
    """Where the quote starting at sentence `at` ends: after the items of a list head (`…应当符合下列条件：`)."""
    return at + 1 + (MAX_LIST_ITEMS if _LIST_HEAD.search(sentences[at]) else 0)


def reranked_quotes(question: Question, hits: list[Hit], reranker: Reranker,
                    options: PickingOptions = PickingOptions()) -> tuple[list[Quote], float]:
    """Every sentence of the best hits scored by the reranker (less the rank penalty), best first, a list head
    with its items; and the best sentence's own relevance."""
    read: list[tuple[int, list[str], int]] = []  # (hit, the clause's sentences, which one)
    seen: set[str] = set()
    for i, hit in enumerate(hits[:options.hits_read]):
        sentences = split_sentences(hit.clause.text)
        for j, sentence in enumerate(sentences):
            if len(sentence) < MIN_QUOTE_CHARS or sentence in seen or is_heading(sentence, hit.clause):
                continue
            seen.add(sentence)
            read.append((i, sentences, j))
    if not read:
        return [], 0.0
    scores = reranker.score(question_text(question.search_text), [passage_text(hits[i].clause, s[j]) for i, s, j in read])
    quotes = []
    for (i, sentences, j), score in zip(read, scores, strict=True):
        end = list_end(sentences, j)
        # A list is quoted whole; a long single sentence is cut to its phrases around the question's terms.
        text = "".join(sentences[j:end]) if end > j + 1 else trim(sentences[j], question)
        quotes.append(Quote(hit=i, sentence=text, score=float(score) - options.rank_penalty * i))
    return sorted(quotes, key=lambda q: -q.score), float(max(scores))


def chosen_quotes(ranked: list[Quote]) -> list[Quote]:
    """The best quote and up to two more about as relevant, none already inside another."""
    chosen: list[Quote] = []
    for quote in ranked:
        if chosen and quote.score < QUOTE_RELEVANCE_SHARE * ranked[0].score or len(chosen) == MAX_QUOTES:
            break
        if not any(quote.sentence in q.sentence or q.sentence in quote.sentence for q in chosen):
            chosen.append(quote)
    return chosen


def is_relevant(hits: list[Hit], quotes: list[Quote]) -> bool:
    top_dense = max((h.dense_score for h in hits if h.dense_score is not None), default=0.0)
    if top_dense >= DENSE_SURE:
        return True
    return top_dense >= DENSE_FLOOR and max((q.coverage for q in quotes), default=0.0) >= COVERAGE_MIN


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


def retrieve(index: SearchIndex, messages: list[Message]) -> tuple[Question, list[Hit]]:
    question = resolve_question(messages)
    return question, index.search(question.search_text, k=HITS_QUOTED_FROM)


def cited_answer(quotes: list[Quote], hits: list[Hit], relevance: float | None = None) -> Answer:
    numbers: dict[int, int] = {}  # hit position -> citation number, in order of first quote
    for quote in quotes:
        numbers.setdefault(quote.hit, len(numbers) + 1)
    sources = [make_source(n, hits[i], [q.sentence for q in quotes if q.hit == i]) for i, n in numbers.items()]
    lines = [f"{k}. {q.sentence}[{numbers[q.hit]}]" for k, q in enumerate(quotes, 1)]
    text = "根据检索到的条款：\n" + "\n".join(lines) + "\n\n" + format_sources(sources)
    return Answer(text=text, sources=sources, found=True, relevance=relevance)


def extractive_answer(question: Question, hits: list[Hit], reranker: Reranker | None = None,
                      options: PickingOptions = PickingOptions()) -> Answer:
    if reranker is None or not options.sentences_by_reranker:
        quotes = select_quotes(question, hits)
        return cited_answer(quotes, hits) if quotes and is_relevant(hits, quotes) else not_found()
    ranked, relevance = reranked_quotes(question, hits, reranker, options)
    if not ranked:
        return not_found()
    if relevance < options.min_relevance:
        return not_found().model_copy(update={"relevance": relevance})
    return cited_answer(sorted(chosen_quotes(ranked), key=lambda q: q.hit), hits, relevance)


def compose_answer(index: SearchIndex, messages: list[Message], options: PickingOptions = PickingOptions()) -> Answer:
    """The cited extractive answer to the conversation's last user question (`options`: how sentences are
    picked; the threshold's calibration asks for every answer with `min_relevance=0`)."""
    question, hits = retrieve(index, messages)
    return extractive_answer(question, hits, index.pipeline.reranker, options)

"""Answer quality: does the chat quote the sentence that answers, and does it refuse what it cannot answer?

Every labelled question is asked as a chat turn (a follow-up after its first question and the
chat's answer to it). The verdicts, by the phrase rule of the retrieval sets:
- `correct`: an answerable question whose quoted sentences contain a gold phrase;
- `wrong_cited`: quoted sentences with citations that do not contain the answer, whether or not
  the corpus has one (for an unanswerable question: an answer that should have been a refusal);
- `refused_answerable`: `未找到相关条款` although the corpus answers it;
- `refused_unanswerable`: `未找到相关条款` for a question the corpus cannot answer (right).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from answer.extractive import Message, compose_answer
from backends.base import SearchIndex
from eval.dataset import LabelledQuery
from ingest.normalize import compact

VERDICTS = ("correct", "wrong_cited", "refused_answerable", "refused_unanswerable")


@dataclass
class ChatReply:
    text: str  # the whole reply, as the conversation's next assistant turn
    quotes: list[str]  # the sentences it quotes (empty: it found nothing)
    seconds: float = 0.0


Chat = Callable[[list[Message]], ChatReply]


@dataclass
class AnswerOutcome:
    query: LabelledQuery
    reply: ChatReply
    verdict: str


@dataclass
class AnswerReport:
    set_name: str
    outcomes: list[AnswerOutcome]
    by_split: dict[str, dict[str, float]] = field(default_factory=dict)
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)


def local_chat(index: SearchIndex) -> Chat:
    def chat(messages: list[Message]) -> ChatReply:
        start = time.perf_counter()
        answer = compose_answer(index, messages)
        quotes = [q for source in answer.sources for q in source.quotes]
        return ChatReply(text=answer.text, quotes=quotes, seconds=time.perf_counter() - start)

    return chat


def http_chat(base_url: str, timeout: float = 60.0) -> Chat:
    """A running server's /v1/chat/completions, through the official openai client."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused", timeout=timeout)

    def chat(messages: list[Message]) -> ChatReply:
        start = time.perf_counter()
        reply = client.chat.completions.create(model="policyqa", messages=[m.model_dump() for m in messages])
        sources = (reply.model_extra or {}).get("sources") or []
        quotes = [q for source in sources for q in source.get("quotes", [])]
        return ChatReply(text=reply.choices[0].message.content or "", quotes=quotes,
                         seconds=time.perf_counter() - start)

    return chat


def judge(query: LabelledQuery, reply: ChatReply) -> str:
    if not reply.quotes:
        return "refused_answerable" if query.gold else "refused_unanswerable"
    quoted = compact("".join(reply.quotes))
    if query.gold and any(compact(phrase) in quoted for phrase in query.gold):
        return "correct"
    return "wrong_cited"


def conversation(query: LabelledQuery, asked: dict[str, tuple[LabelledQuery, ChatReply]]) -> list[Message]:
    """The messages a user sends: a follow-up comes after its first question and the chat's reply to it."""
    messages: list[Message] = []
    if query.follows:
        first, reply = asked[query.follows]
        messages = [Message(role="user", content=first.query), Message(role="assistant", content=reply.text)]
    return [*messages, Message(role="user", content=query.query)]


def rates(outcomes: list[AnswerOutcome]) -> dict[str, float]:
    """Shares of answerable questions (correct, wrong_cited, refused) and of unanswerable ones (refused, answered)."""
    answerable = [o for o in outcomes if o.query.gold]
    unanswerable = [o for o in outcomes if not o.query.gold]
    count = Counter(o.verdict for o in answerable)
    refused = sum(o.verdict == "refused_unanswerable" for o in unanswerable)
    return {
        "answerable": len(answerable),
        "correct": count["correct"] / len(answerable) if answerable else 0.0,
        "wrong_cited": count["wrong_cited"] / len(answerable) if answerable else 0.0,
        "refused_answerable": count["refused_answerable"] / len(answerable) if answerable else 0.0,
        "unanswerable": len(unanswerable),
        "unanswerable_refused": refused / len(unanswerable) if unanswerable else 0.0,
    }


def evaluate_answers(set_name: str, queries: list[LabelledQuery], chat: Chat) -> AnswerReport:
    asked: dict[str, tuple[LabelledQuery, ChatReply]] = {}
    outcomes = []
    for query in sorted(queries, key=lambda q: q.follows is not None):  # first questions before follow-ups
        reply = chat(conversation(query, asked))
        asked[query.id] = (query, reply)
        outcomes.append(AnswerOutcome(query=query, reply=reply, verdict=judge(query, reply)))
    outcomes.sort(key=lambda o: o.query.id)
    splits: dict[str, list[AnswerOutcome]] = defaultdict(list)
    kinds: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        splits[outcome.query.split or "all"].append(outcome)
        kinds[outcome.query.kind][outcome.verdict] += 1
    by_split = {name: rates(items) for name, items in sorted(splits.items())}
    if len(splits) > 1:
        by_split["all"] = rates(outcomes)
    seconds = sorted(o.reply.seconds for o in outcomes)
    latency = {"p50": statistics.median(seconds) * 1000,
               "p95": seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))] * 1000} if seconds else {}
    return AnswerReport(set_name, outcomes, by_split, {k: dict(v) for k, v in sorted(kinds.items())}, latency)

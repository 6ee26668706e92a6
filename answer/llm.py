"""Answers written by an OpenAI-compatible LLM from the retrieved clauses, cited like extractive ones.

Used only when `llm_base_url` and `llm_model` are configured. The model gets the question and the
numbered clauses and is told to answer from them alone, citing `[n]`; citations of numbers that
were not sent are dropped and our own source list replaces any it wrote. The extractive answer is
computed first: when it finds nothing relevant the model is not asked (it would have nothing to
answer from), and when the call fails it is the answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from openai import OpenAI

from answer.extractive import (
    Answer,
    Message,
    Question,
    extractive_answer,
    format_sources,
    make_source,
    not_found,
    retrieve,
)
from backends.base import SearchIndex
from index.types import Hit
from ingest.clauses import readable_address

log = logging.getLogger(__name__)

NO_ANSWER_MARK = "未找到相关条款"
SYSTEM_PROMPT = (
    "你是教育政策问答助手。只能依据用户消息中编号的政策条款回答，不得使用条款以外的知识。"
    "回答简洁，每句话后用方括号标注所依据条款的编号，例如[1]。"
    f"条款中没有答案时只回答“{NO_ANSWER_MARK}”。不要另列来源。"
)
_CITATION = re.compile(r"\[(\d+)\]")
# A source list the model adds anyway: ours replaces it.
_OWN_SOURCE_LIST = re.compile(r"\n\s*(来源|参考|出处|引用)\s*[:：].*\Z", re.DOTALL)


def build_prompt(question: Question, hits: list[Hit]) -> str:
    clauses = "\n\n".join(
        f"[{n}] 《{h.document.title}》 {readable_address(h.clause.id)}\n{h.clause.text}" for n, h in enumerate(hits, 1)
    )
    asked = question.current if question.previous is None else f"（接上一个问题：{question.previous}）{question.current}"
    return f"条款：\n{clauses}\n\n问题：{asked}"


def keep_valid_citations(text: str, count: int) -> tuple[str, list[int]]:
    """The text without citations of clauses 1..count did not include, and the cited numbers."""
    cited: list[int] = []

    def keep(match: re.Match) -> str:
        number = int(match.group(1))
        if not 1 <= number <= count:
            return ""
        if number not in cited:
            cited.append(number)
        return match.group(0)

    return _CITATION.sub(keep, text), sorted(cited)


@dataclass(frozen=True)
class LLMEndpoint:
    """An OpenAI-compatible chat endpoint (POLICYQA_LLM_* settings)."""

    base_url: str
    model: str
    api_key: str = "none"
    timeout_s: float = 60.0


def ask_llm(endpoint: LLMEndpoint, prompt: str) -> str:
    client = OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=endpoint.timeout_s, max_retries=0)
    response = client.chat.completions.create(
        model=endpoint.model,
        messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
        temperature=0,
    )
    content = response.choices[0].message.content
    if not content or not content.strip():
        raise ValueError("the model returned an empty answer")
    return content


def llm_answer(index: SearchIndex, messages: list[Message], endpoint: LLMEndpoint) -> Answer:
    question, hits = retrieve(index, messages)
    extractive = extractive_answer(question, hits, index.pipeline.reranker)
    if not extractive.found:
        return extractive
    try:
        reply = ask_llm(endpoint, build_prompt(question, hits))
    except Exception as exc:  # noqa: BLE001 - whatever the remote model does, the user gets an answer
        log.warning("LLM answer failed (%s: %s); falling back to the extractive answer", type(exc).__name__, exc)
        return extractive
    body, cited = keep_valid_citations(_OWN_SOURCE_LIST.sub("", reply).strip(), len(hits))
    if not cited and NO_ANSWER_MARK in body:
        return not_found()
    # An answer citing nothing still came from the clauses sent: list them all.
    sources = [make_source(n, hits[n - 1], quotes=[]) for n in cited or range(1, len(hits) + 1)]
    return Answer(text=f"{body}\n\n{format_sources(sources)}", sources=sources, found=True)

"""Chat answers with cited clauses, with the real model over the demo corpus.

The answering core directly, the OpenAI-compatible endpoint through the app, the official
`openai` client against a real server (plain and streamed), and the optional LLM path against a
local stub model that records what it was sent.
"""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from openai import OpenAI

from answer.extractive import MAX_QUOTE_CHARS, Message, compose_answer, resolve_question, split_sentences
from answer.llm import LLMEndpoint, keep_valid_citations, llm_answer
from api.app import create_app
from index.types import QueryError
from tests.conftest import HANG_S, serving

CLASS_SIZE_ID = "002_d6057a83cdbdb456#二.(三).2~2"
CLASS_SIZE_TITLE = "关于印发《大力提升义务教育工作质量实施意见》的通知"
# Known misses, kept visible (strict: each fails once it is refused). Our reranker scores a sentence on school
# sports contests (比赛) 0.62 for 足球比赛规则, and a sentence of a plan 0.69 for an English question, above the
# refusal threshold calibrated on the dev split (0.59). (Read in batches of 16 and in traditional script as
# written, the bread question had scored below the threshold.)
SPORTS_MISS = pytest.param("足球比赛规则", marks=pytest.mark.xfail(strict=True, reason="answered at relevance 0.62 > 0.59"))
BREAD_MISS = pytest.param("how to bake bread", marks=pytest.mark.xfail(strict=True, reason="answered at relevance 0.69 > 0.59"))
UNANSWERABLE = ["高校科研经费报销流程", "医保报销比例", SPORTS_MISS, BREAD_MISS]


def user(text: str) -> Message:
    return Message(role="user", content=text)


# --- the answering core -------------------------------------------------------------------


def test_sentences_split_at_either_width_of_punctuation_and_at_line_breaks():
    text = "一是区域交流。二是城乡交流;三是校际交流！\n四是跨县交流？五"
    assert split_sentences(text) == ["一是区域交流。", "二是城乡交流;", "三是校际交流！", "四是跨县交流？", "五"]


@pytest.mark.parametrize("question", ["班额标准", "小学一个班最多能有多少学生?"])
def test_class_size_questions_quote_the_limit_sentence_and_cite_its_clause(demo_index, question):
    answer = compose_answer(demo_index, [user(question)])
    assert answer.found
    first = answer.sources[0]
    assert (first.number, first.clause_id, first.address) == (1, CLASS_SIZE_ID, "二(三)2")
    assert first.title == CLASS_SIZE_TITLE and first.doc_id == "002_d6057a83cdbdb456"
    assert "小学班额不超过45人" in first.text
    quote = next(q for q in first.quotes if "小学班额不超过45人、初中班额不超过50人" in q)
    # A sentence of the clause, not the clause.
    assert quote in first.text and len(quote) < len(first.text) / 3 and len(quote) <= MAX_QUOTE_CHARS
    assert f"{quote}[1]" in answer.text
    assert answer.text.startswith("根据检索到的条款：\n1. ")
    assert f"\n\n来源：\n[1] 《{CLASS_SIZE_TITLE}》 二(三)2（{CLASS_SIZE_ID}）" in answer.text
    # Every citation in the text has its source, and every source is cited.
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text.split("来源：")[0])}
    assert cited == {s.number for s in answer.sources}


@pytest.mark.parametrize("question", ["农村寄宿生补助多少钱", "農村寄宿生補助多少錢"])
def test_a_question_in_either_script_quotes_the_allowance_written_in_traditional_script(demo_index, question):
    """The reranker reads question and clause in simplified script (as written, the clause scored 0.50 and
    was refused); the user sees the clause as written."""
    answer = compose_answer(demo_index, [user(question)])
    assert answer.found and answer.relevance > 0.75, answer
    assert "小學500元、初中750元" in answer.sources[0].quotes[0]


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_say_so_instead_of_citing_noise(demo_index, question):
    answer = compose_answer(demo_index, [user(question)])
    assert not answer.found and answer.sources == []
    assert answer.text.startswith("未找到相关条款") and "[1]" not in answer.text


def test_a_follow_up_is_read_with_the_previous_question(demo_index):
    first = compose_answer(demo_index, [user("小学班额是多少?")])
    assert "小学班额不超过45人" in first.text
    conversation = [user("小学班额是多少?"), Message(role="assistant", content=first.text), user("那初中呢?")]
    assert resolve_question(conversation).search_text == "小学班额是多少? 那初中呢?"
    answer = compose_answer(demo_index, conversation)
    assert answer.found and "初中班额不超过50人" in answer.text
    assert answer.sources[0].clause_id == CLASS_SIZE_ID


def test_a_new_question_after_an_answer_stands_alone():
    conversation = [user("小学班额是多少?"), Message(role="assistant", content="…"), user("有偿家教有什么规定?")]
    assert resolve_question(conversation).previous is None


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([Message(role="system", content="你是助手")], "no user message"),
        ([user("班额"), Message(role="assistant", content="…"), user("  ")], "empty"),
        ([user("班" * 5000)], "5000 characters"),
    ],
)
def test_unusable_conversations_raise_query_errors(demo_index, messages, fragment):
    with pytest.raises(QueryError, match=fragment):
        compose_answer(demo_index, messages)


# --- the HTTP endpoint --------------------------------------------------------------------


def test_chat_completion_shape_and_sources(api_client):
    response = api_client.post("/v1/chat/completions", json={"model": "policyqa", "messages": [
        {"role": "system", "content": "只根据条款回答。"}, {"role": "user", "content": "班额标准"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "policyqa"
    assert isinstance(body["created"], int) and len(body["choices"]) == 1
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    assert "小学班额不超过45人" in content and "[1]" in content and "\n来源：\n[1] 《" in content
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    source = body["sources"][0]
    assert source["number"] == 1 and source["clause_id"] == CLASS_SIZE_ID and source["address"] == "二(三)2"
    assert source["title"] == CLASS_SIZE_TITLE and source["heading_path"][0] == "二、具体措施"
    assert any("小学班额不超过45人" in q for q in source["quotes"])


def test_content_given_as_text_parts_reads_like_a_string(api_client):
    plain = api_client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "班额标准"}]})
    content = [{"type": "text", "text": "班额"}, {"type": "image_url", "image_url": {"url": "x"}},
               {"type": "text", "text": "标准"}]
    parts = api_client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}]})
    assert parts.status_code == 200
    assert parts.json()["choices"][0]["message"]["content"] == plain.json()["choices"][0]["message"]["content"]


def test_models_lists_the_one_model(api_client):
    body = api_client.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["policyqa"]


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"messages": [{"role": "system", "content": "hi"}]}, "invalid_messages", "no user message"),
        ({"messages": [{"role": "user", "content": ""}]}, "invalid_messages", "empty"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "invalid_messages", "empty"),
        ({"messages": [{"role": "user", "content": "班" * 5000}]}, "invalid_messages", "limit is 1000"),
        ({"messages": "班额标准"}, "invalid_request", "messages"),
        ({"messages": []}, "invalid_request", "messages"),
        ({"messages": [{"role": "wizard", "content": "班额"}]}, "invalid_request", "role"),
        ({"model": "policyqa"}, "invalid_request", "messages: Field required"),
    ],
)
def test_bad_requests_get_400s_in_openai_shape(api_client, body, code, fragment):
    response = api_client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and fragment in error["message"] and error["type"] == "invalid_request_error"


def test_a_body_that_is_not_json_is_a_400(api_client):
    response = api_client.post(
        "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error = response.json()["error"]
    assert response.status_code == 400 and error["code"] == "invalid_request" and error["param"] is None


def test_streamed_events_follow_the_openai_chunk_format(api_client):
    request = {"messages": [{"role": "user", "content": "班额标准"}], "stream": True,
               "stream_options": {"include_usage": True}}
    response = api_client.post("/v1/chat/completions", json=request)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    first, *deltas, stop, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant"} and first["sources"][0]["clause_id"] == CLASS_SIZE_ID
    assert len(deltas) > 3 and all(c["choices"][0]["finish_reason"] is None for c in deltas)
    assert stop["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    plain = api_client.post("/v1/chat/completions", json={"messages": request["messages"]}).json()
    assert "".join(c["choices"][0]["delta"]["content"] for c in deltas) == plain["choices"][0]["message"]["content"]


# --- the official openai client against a real server -------------------------------------


@pytest.fixture(scope="module")
def openai_client(live_server):
    return OpenAI(base_url=f"{live_server}/v1", api_key="x", max_retries=0)


def test_openai_client_plain_and_streamed(openai_client):
    assert [m.id for m in openai_client.models.list()] == ["policyqa"]
    messages = [{"role": "user", "content": "小学一个班最多能有多少学生?"}]
    response = openai_client.chat.completions.create(model="policyqa", messages=messages)
    content = response.choices[0].message.content
    assert "小学班额不超过45人" in content and "[1]" in content and "来源：" in content
    assert response.choices[0].finish_reason == "stop" and response.usage.total_tokens > 0
    sources = response.model_extra["sources"]
    assert sources[0]["clause_id"] == CLASS_SIZE_ID and response.to_dict()["sources"] == sources

    chunks = list(openai_client.chat.completions.create(model="policyqa", messages=messages, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].model_extra["sources"] == sources
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == content


def test_openai_client_follow_up_and_no_answer(openai_client):
    first = openai_client.chat.completions.create(model="policyqa", messages=[{"role": "user", "content": "小学班额是多少?"}])
    follow_up = openai_client.chat.completions.create(model="policyqa", messages=[
        {"role": "user", "content": "小学班额是多少?"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "那初中呢?"},
    ])
    assert "初中班额不超过50人" in follow_up.choices[0].message.content
    none = openai_client.chat.completions.create(model="policyqa", messages=[{"role": "user", "content": "医保报销比例"}])
    assert none.choices[0].message.content.startswith("未找到相关条款") and none.model_extra["sources"] == []


# --- the optional LLM path, against a local stub model -----------------------------------


STUB_REPLY = "小学班额不超过45人，初中不超过50人[1]。另有规定[7]。\n\n来源：\n[1] 模型自己写的来源"


@pytest.fixture(scope="module")
def stub_llm():
    """An OpenAI-compatible stub on a free port: records each request and answers STUB_REPLY (or fails)."""
    state = {"requests": [], "fail": False}
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        state["requests"].append(await request.json())
        if state["fail"]:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
        return {
            "id": "stub-1", "object": "chat.completion", "created": int(time.time()), "model": "stub-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": STUB_REPLY}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    with serving(app) as address:
        state["url"] = f"{address}/v1"
        yield state


@pytest.fixture()
def llm_settings(api_settings, stub_llm):
    stub_llm["requests"].clear()
    stub_llm["fail"] = False
    llm = {"llm_base_url": stub_llm["url"], "llm_model": "stub-model", "llm_timeout_s": HANG_S}
    return api_settings.model_copy(update=llm)


def _endpoint(settings) -> LLMEndpoint:
    return LLMEndpoint(settings.llm_base_url, settings.llm_model, timeout_s=settings.llm_timeout_s)


def test_llm_answer_through_the_endpoint_sends_the_clauses_and_keeps_our_sources(llm_settings, stub_llm, encoder):
    with TestClient(create_app(llm_settings, encoder)) as client:
        body = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "班额标准"}]}).json()
    [sent] = stub_llm["requests"]
    assert sent["model"] == "stub-model" and sent["messages"][0]["role"] == "system"
    assert "只能依据" in sent["messages"][0]["content"]
    prompt = sent["messages"][1]["content"]
    assert f"[1] 《{CLASS_SIZE_TITLE}》 二(三)2\n" in prompt and "小学班额不超过45人" in prompt
    assert prompt.endswith("问题：班额标准") and "[5] 《" in prompt

    content = body["choices"][0]["message"]["content"]
    assert content.startswith("小学班额不超过45人，初中不超过50人[1]。另有规定。")  # [7] was never sent
    assert "模型自己写的来源" not in content and content.count("来源：") == 1
    assert content.endswith(f"来源：\n[1] 《{CLASS_SIZE_TITLE}》 二(三)2（{CLASS_SIZE_ID}）")
    assert [s["clause_id"] for s in body["sources"]] == [CLASS_SIZE_ID]


def test_llm_failure_falls_back_to_the_extractive_answer(llm_settings, stub_llm, demo_index, caplog):
    stub_llm["fail"] = True
    messages = [user("班额标准")]
    with caplog.at_level(logging.WARNING, logger="answer.llm"):
        answer = llm_answer(demo_index, messages, _endpoint(llm_settings))
    assert len(stub_llm["requests"]) == 1
    assert answer == compose_answer(demo_index, messages)
    assert "falling back to the extractive answer" in caplog.text


def test_llm_is_not_asked_when_nothing_relevant_is_found(llm_settings, stub_llm, demo_index):
    answer = llm_answer(demo_index, [user("医保报销比例")], _endpoint(llm_settings))
    assert not answer.found and stub_llm["requests"] == []


def test_citations_of_clauses_not_sent_are_removed():
    assert keep_valid_citations("甲[2]乙[0]丙[6]丁[1][2]", 5) == ("甲[2]乙丙丁[1][2]", [1, 2])


# --- checked like OpenAI (issue #11 part 5) -------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", -1), ("max_tokens", 0), ("max_completion_tokens", 0), ("temperature", 99),
     ("temperature", -0.5), ("top_p", 1.5), ("n", 2)],
)
def test_sampling_parameters_out_of_openais_range_are_400s_naming_the_parameter(api_client, field, value):
    body = {"model": "policyqa", "messages": [{"role": "user", "content": "班额标准"}], field: value}
    response = api_client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error == {"message": error["message"], "type": "invalid_request_error", "param": field,
                     "code": "invalid_request"}
    assert error["message"].startswith(f"{field}: Input should be")


def test_parameters_within_openais_range_are_accepted(api_client):
    body = {"model": "policyqa", "messages": [{"role": "user", "content": "班额标准"}], "max_tokens": 1,
            "max_completion_tokens": 4096, "temperature": 2, "top_p": 0, "n": 1}
    assert api_client.post("/v1/chat/completions", json=body).status_code == 200


def test_an_unknown_model_is_a_404_model_not_found(api_client):
    response = api_client.post("/v1/chat/completions",
                               json={"model": "gpt-4o", "messages": [{"role": "user", "content": "班额标准"}]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "'gpt-4o'" in error["message"] and "policyqa" in error["message"]
    assert api_client.get("/v1/models/policyqa").json() == {"id": "policyqa", "object": "model", "created": 0,
                                                            "owned_by": "policyqa"}
    assert api_client.get("/v1/models/gpt-4o").json()["error"]["code"] == "model_not_found"


def test_the_openai_client_raises_the_exception_openai_would_cause(openai_client):
    import openai

    messages = [{"role": "user", "content": "班额标准"}]
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.chat.completions.create(model="policyqa", messages=messages, max_tokens=-1)
    assert bad.value.param == "max_tokens" and bad.value.code == "invalid_request"
    with pytest.raises(openai.BadRequestError) as hot:
        openai_client.chat.completions.create(model="policyqa", messages=messages, temperature=99)
    assert hot.value.param == "temperature" and "less than or equal to 2" in hot.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.chat.completions.create(model="gpt-4o", messages=messages)
    assert missing.value.code == "model_not_found" and "'gpt-4o' does not exist" in missing.value.message
    assert openai_client.models.retrieve("policyqa").id == "policyqa"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("gpt-4o")

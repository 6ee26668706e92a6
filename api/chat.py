"""OpenAI-compatible chat: `POST /v1/chat/completions` (plain or streamed) and `GET /v1/models`.

A thin layer over `answer.extractive` (and `answer.llm` when an LLM is configured): it reads
the OpenAI request shape, and returns the answer as a `chat.completion` or as
`chat.completion.chunk` server-sent events, with the cited clauses in an extra `sources` field.
Requests are checked as OpenAI checks them and errors take OpenAI's shape, so OpenAI clients
raise the exception they would raise against OpenAI (BadRequestError, NotFoundError, ...).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from answer.extractive import Answer, Message, Source, compose_answer
from answer.llm import LLMEndpoint, llm_answer
from api.deps import live_index, settings
from api.errors import ApiError
from api.openai_errors import OpenAIErrorBody, OpenAIRoute
from index.types import QueryError
from policyqa.settings import Settings
from writes.service import LiveIndex

MODEL_ID = "policyqa"
STREAM_PIECE_CHARS = 16  # content deltas: a line, or this many characters of a longer one

router = APIRouter(tags=["chat"], route_class=OpenAIRoute)


class ContentPart(BaseModel):
    type: str = Field(description="only `text` parts are read")
    text: str | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The OpenAI request; sampling fields are checked as OpenAI checks them, then ignored (answers are quoted)."""

    model: str = Field(default=MODEL_ID, description=f"`{MODEL_ID}`, the one model served (GET /v1/models)")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=1, description="only 1: there is one answer")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    sources: list[Source] = Field(description="the cited clauses, numbered as in the answer's [n]")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = MODEL_ID


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


_TOKEN = re.compile(r"[\u4e00-\u9fff]|[A-Za-z0-9_]+|[^\sA-Za-z0-9_\u4e00-\u9fff]")


def rough_tokens(text: str) -> int:
    """About what a tokenizer would count: one per Chinese character, word or symbol."""
    return len(_TOKEN.findall(text))


def stream_pieces(content: str) -> list[str]:
    """The content cut into deltas that join back to it exactly."""
    pieces = []
    for line in content.splitlines(keepends=True):
        pieces += [line[i : i + STREAM_PIECE_CHARS] for i in range(0, len(line), STREAM_PIECE_CHARS)]
    return pieces


def _usage(request: ChatRequest, answer: Answer) -> Usage:
    prompt = sum(rough_tokens(m.text()) for m in request.messages)
    completion = rough_tokens(answer.text)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _events(request: ChatRequest, answer: Answer, completion_id: str, created: int) -> Iterator[str]:
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID}

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
        return _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra})

    yield chunk({"role": "assistant"}, sources=[s.model_dump() for s in answer.sources])
    for piece in stream_pieces(answer.text):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if request.stream_options and request.stream_options.include_usage:
        yield _sse({**head, "choices": [], "usage": _usage(request, answer).model_dump()})
    yield "data: [DONE]\n\n"


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "a chat.completion, or with `stream` its chunks"},
        400: {"model": OpenAIErrorBody, "description": "an invalid request: a parameter out of range, no user "
              "message, an empty one, or one over 1000 characters; a malformed body; a Host header this server "
              "does not answer to (`bad_host`)"},
        403: {"model": OpenAIErrorBody, "description": "sent by a page on another site (`cross_site`)"},
        404: {"model": OpenAIErrorBody, "description": "an unknown model (`model_not_found`)"},
        413: {"model": OpenAIErrorBody, "description": "a body over POLICYQA_MAX_JSON_BYTES"},
        503: {"model": OpenAIErrorBody, "description": "no index yet"},
    },
)
def chat_completions(
    request: ChatRequest,
    live: Annotated[LiveIndex, Depends(live_index)],
    config: Annotated[Settings, Depends(settings)],
) -> ChatCompletion | StreamingResponse:
    """Answer the last user message from the clauses, quoting them with [n] citations and a source list.

    Short follow-ups (`那初中呢?`) are read with the previous user message.
    """
    served_model(request.model)
    messages = [Message(role=m.role, content=m.text()) for m in request.messages]
    try:
        if config.llm_base_url and config.llm_model:
            endpoint = LLMEndpoint(config.llm_base_url, config.llm_model, config.llm_api_key, config.llm_timeout_s)
            answer = llm_answer(live.index, messages, endpoint)
        else:
            answer = compose_answer(live.index, messages)
    except QueryError as exc:
        raise ApiError(400, "invalid_messages", str(exc)) from exc
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if request.stream:
        return StreamingResponse(_events(request, answer, completion_id, created), media_type="text/event-stream")
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=MODEL_ID,
        choices=[Choice(message=AssistantMessage(content=answer.text))],
        usage=_usage(request, answer),
        sources=answer.sources,
    )


@router.get("/v1/models", response_model=ModelList)
def list_models() -> ModelList:
    """The one model this server answers as, for clients that list models first."""
    return ModelList(data=[ModelCard(id=MODEL_ID)])


@router.get("/v1/models/{model}", response_model=ModelCard, responses={404: {"model": OpenAIErrorBody}})
def retrieve_model(model: str) -> ModelCard:
    """The served model by its name (404 `model_not_found` for any other)."""
    return served_model(model)


def served_model(model: str) -> ModelCard:
    if model != MODEL_ID:
        raise ApiError(404, "model_not_found", f"The model {model!r} does not exist: this server answers as "
                       f"{MODEL_ID!r} (GET /v1/models)")
    return ModelCard(id=MODEL_ID)

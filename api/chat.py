"""OpenAI-compatible chat completions (being written)."""

from fastapi import APIRouter

router = APIRouter(tags=["chat"])

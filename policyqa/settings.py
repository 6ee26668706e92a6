"""All settings in one place: environment variables `POLICYQA_*` or a `.env` file."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLICYQA_", env_file=".env", extra="ignore")

    index_dir: Path = Path("data/index")
    demo_corpus: Path = Path("data/demo")
    max_file_bytes: int = 20 * 1024 * 1024


def get_settings() -> Settings:
    return Settings()

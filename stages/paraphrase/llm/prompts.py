"""Prompt templates (versioned text files) and the validation of what models answer to them.

The template text itself goes into every cache key, so editing a prompt file can never serve
answers that were given to the old wording. A new wording gets a new file (`..._v2.txt`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator

from schemas.errors import UserError
from stages.paraphrase.slots import parse_request

PROMPT_DIR = Path(__file__).resolve().parents[1] / "prompts"
PROMPT_FILES = {"mt": "mt_paraphrase_v1.txt", "sql": "sql_paraphrase_v1.txt",
                "semparse": "semparse_paraphrase_v1.txt"}


class _Item(BaseModel):
    id: str  # a plain string in the schema sent to Gemini; numbers from lax models are accepted

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value).strip() if isinstance(value, (int, float, str)) else value


class MTItem(_Item):
    paraphrases: list[str]


class MTAnswer(BaseModel):
    items: list[MTItem]


class SQLPair(BaseModel):
    question: str
    sql: str


class SQLItem(_Item):
    paraphrases: list[SQLPair]


class SQLAnswer(BaseModel):
    items: list[SQLItem]


@dataclass(frozen=True)
class PromptTemplate:
    name: str  # "mt" | "sql" | "semparse"
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def answer_model(self) -> type[BaseModel]:
        return SQLAnswer if self.name == "sql" else MTAnswer

    def render(self, sources: list[str], n: int) -> str:
        """One prompt for several sources; ids are positions ("1", "2", ...) in this request."""
        rows = [{"id": str(i), **self._fields(source)} for i, source in enumerate(sources, start=1)]
        inputs = json.dumps(rows, ensure_ascii=False)
        return self.text.replace("{n}", str(n)).replace("{inputs}", inputs)

    def _fields(self, source: str) -> dict[str, Any]:
        if self.name == "sql":
            return parse_sql_source(source)
        if self.name == "semparse":
            utterance, keep = parse_request(source)
            return {"utterance": utterance, "keep": keep}
        return {"sentence": source}


def load_template(name: str) -> PromptTemplate:
    if name not in PROMPT_FILES:
        raise UserError(f"paraphraser option prompt={name!r} is unknown; use one of: {', '.join(PROMPT_FILES)}")
    return PromptTemplate(name, (PROMPT_DIR / PROMPT_FILES[name]).read_text(encoding="utf-8"))


def parse_sql_source(source: str) -> dict[str, str]:
    """SQL sources travel as JSON objects {"question": ..., "sql": ...} so one string holds the pair."""
    try:
        data = json.loads(source)
        return {"question": str(data["question"]), "sql": str(data["sql"])}
    except (ValueError, KeyError, TypeError):
        raise UserError(f"SQL paraphrase source {source[:60]!r}: expected a JSON object with 'question' and "
                        f"'sql'; encode each pair as json.dumps({{'question': q, 'sql': s}})") from None


def encode_sql_pair(question: str, sql: str) -> str:
    return json.dumps({"question": question, "sql": sql}, ensure_ascii=False, sort_keys=True)


def _unfenced(text: str) -> str:
    """The JSON inside a Markdown code fence (```json ... ```), which chat models like to add."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text[3:]
        text = text.rstrip()
        if text.endswith("```"):
            text = text[:-3]
    return text


class MalformedAnswer(ValueError):
    """The answer as a whole could not be read (not JSON, wrong shape)."""


def parse_answer(template: PromptTemplate, text: str, count: int, n: int) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Read an answer for `count` sources: (position -> n paraphrases, position -> why not).

    Items with fewer than n paraphrases, or missing, are reported per position so that only they
    are asked again; extra paraphrases are cut to n."""
    try:
        answer = template.answer_model.model_validate_json(_unfenced(text or ""))
    except ValidationError as exc:
        raise MalformedAnswer(f"answer does not match the expected JSON ({exc.error_count()} errors)") from None
    by_id: dict[str, list[str]] = {}
    for item in answer.items:
        by_id.setdefault(item.id, [_as_text(p) for p in item.paraphrases])
    found: dict[int, list[str]] = {}
    missing: dict[int, str] = {}
    for position in range(count):
        values = by_id.get(str(position + 1))
        if values is None:
            missing[position] = "missing from response"
        elif len(values) < n:
            missing[position] = "short response"
        else:
            found[position] = values[:n]
    return found, missing


def _as_text(paraphrase: str | SQLPair) -> str:
    if isinstance(paraphrase, SQLPair):
        return encode_sql_pair(paraphrase.question.strip(), paraphrase.sql.strip())
    return paraphrase.strip()

"""Prompt rendering from a task's template (the MT one follows the paper's appendix B.1, the SQL
one appendix C.3: instructions, the queried database's schema, the examples, the question)."""
from __future__ import annotations

from typing import Callable

from schemas.config import PromptTemplate, TaskConfig

# (db_id, source) -> the schema text a prompt shows for that question; SQL tasks only
SchemaText = Callable[[str, str], str]


class PromptRenderer:
    def __init__(self, task: TaskConfig, schema_text: SchemaText | None = None):
        self.template: PromptTemplate = task.prompt
        self.langs = {"src_lang": task.source_lang or "", "tgt_lang": task.target_lang or ""}
        self.schema_text = schema_text
        self._schemas: dict[tuple[str, str], str] = {}

    def _schema(self, db_id: str, source: str) -> str:
        if self.schema_text is None:
            return ""
        key = (db_id, source)
        if key not in self._schemas:  # a target is rendered in several tables: link it once
            self._schemas[key] = self.schema_text(db_id, source)
        return self._schemas[key]

    def prompt(self, examples: list[dict], source: str, db_id: str = "") -> str:
        """Templates may use {schema} and {db_id} (the query's database) besides {source}, {n} and
        the languages; an example template's {db_id} is the example's own database."""
        tpl = self.template
        fields = {**self.langs, "db_id": db_id, "schema": self._schema(db_id, source)}
        if not examples:
            return tpl.zero_query.format(source=source, **fields)
        parts = [tpl.header.format(n=len(examples), **fields)]
        parts += [tpl.example.format(i=i, source=ex["source"], target=ex["target"],
                                     **{**fields, "db_id": ex.get("db_id") or ""})
                  for i, ex in enumerate(examples, start=1)]
        parts.append(tpl.query.format(source=source, **fields))
        return tpl.joiner.join(parts)

    @staticmethod
    def completion(target: str) -> str:
        """The answer follows the prompt's final "Target:" after one space and ends the line."""
        return " " + target

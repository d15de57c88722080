"""Prompt rendering from a task's template (the MT one follows the paper's appendix B.1)."""
from __future__ import annotations

from schemas.config import PromptTemplate, TaskConfig


class PromptRenderer:
    def __init__(self, task: TaskConfig):
        self.template: PromptTemplate = task.prompt
        self.langs = {"src_lang": task.source_lang or "", "tgt_lang": task.target_lang or ""}

    def prompt(self, examples: list[dict], source: str) -> str:
        tpl = self.template
        if not examples:
            return tpl.zero_query.format(source=source, **self.langs)
        parts = [tpl.header.format(n=len(examples), **self.langs)]
        parts += [tpl.example.format(i=i, source=ex["source"], target=ex["target"], **self.langs)
                  for i, ex in enumerate(examples, start=1)]
        parts.append(tpl.query.format(source=source, **self.langs))
        return tpl.joiner.join(parts)

    @staticmethod
    def completion(target: str) -> str:
        """The answer follows the prompt's final "Target:" after one space and ends the line."""
        return " " + target

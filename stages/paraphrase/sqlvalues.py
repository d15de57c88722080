"""`sql-values`: offline, deterministic paraphrases of question/SQL pairs by literal swaps.

Each source is an SQL item (`stages.paraphrase.sql.encode_item`); each paraphrase is the same
query with literals replaced by other values of their columns, the question and evidence
rewritten to match (`stages.sql.swap`). The draws are seeded by the item itself (and the `seed`
option), so a rebuild gives the same paraphrases. Skipped items are counted by reason.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from schemas.errors import UserError
from stages.paraphrase.base import ParaphraseBackend, ParaphraseOutput, register

OPTIONS = ("seed", "tries_per_paraphrase")


@register
class SqlValues(ParaphraseBackend):
    name = "sql-values"

    def _option(self, name: str, default: int) -> int:
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:
            raise UserError(f"paraphraser 'sql-values' has no option {unknown[0]!r}; its options: {', '.join(OPTIONS)}")
        try:
            return int(self.options.get(name, default))
        except (TypeError, ValueError):
            raise UserError(f"paraphraser 'sql-values' option {name}: expected an integer") from None

    def identity(self) -> dict[str, Any]:
        from stages.sql.schema import SAMPLE_ROWS, VALUES_PER_COLUMN

        return {"backend": self.name, "version": 1, "seed": self._option("seed", 0),
                "tries_per_paraphrase": self._option("tries_per_paraphrase", 3),
                "values": {"sample_rows": SAMPLE_ROWS, "per_column": VALUES_PER_COLUMN}}

    def check_ready(self) -> None:
        self.identity()
        if self.context.task_kind != "sql" or self.context.sql is None:
            raise UserError("paraphraser 'sql-values' swaps SQL literals with values from the task's databases: "
                            "it works for SQL tasks only (e.g. --task bird with --db-dir)")

    def paraphrase(self, sources: list[str], n: int) -> ParaphraseOutput:
        from stages.sql.swap import literal_swaps

        self.check_ready()
        databases = self.context.sql
        seed, tries = self._option("seed", 0), self._option("tries_per_paraphrase", 3)
        out = ParaphraseOutput(paraphrases=[])
        for source in sources:
            item = json.loads(source)
            db_id = item["db_id"]
            digest = hashlib.sha256(source.encode("utf-8")).digest()
            rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])

            def accept(sql: str, db_id: str = db_id, original: str = item["sql"]) -> bool:
                return databases.validator.reason(db_id, original, sql) is None

            swaps, why = literal_swaps(item["question"], item.get("evidence", ""), item["sql"],
                                       databases.schema(db_id), n, rng, accept, tries)
            if why:
                out.failures[why] += 1
            out.paraphrases.append([json.dumps({"question": s.question, "evidence": s.evidence, "sql": s.sql},
                                               ensure_ascii=False, sort_keys=True) for s in swaps])
        out.counters["items_with_swaps"] = sum(1 for found in out.paraphrases if found)
        return out

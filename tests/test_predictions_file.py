"""Reading a --predictions file: lines end at "\n" only, and a byte-order mark is dropped."""
from __future__ import annotations

import json

from trainer.predictions_file import read_predictions


def test_unicode_line_separators_inside_a_prediction_stay_in_it(tmp_path):
    path = tmp_path / "preds.jsonl"
    records = [{"id": "a", "prediction": "SELECT 'x\u2028y\u0085z\x1c' -- \u2029"},
               {"id": "b", "prediction": "SELECT 1"}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_predictions(path) == {r["id"]: r["prediction"] for r in records}

"""The paraphrase check's execution step: an aggregate over no rows counts as an empty answer."""
from __future__ import annotations

try:
    import conftest_sql as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_sql as fixtures

from stages.sql.validate import SqlValidator


def test_an_aggregate_over_no_rows_is_no_answer(tmp_path):
    validator = SqlValidator({"shop": fixtures.make_database(tmp_path / "dbs")})
    for empty in ("SELECT count(*) FROM customers WHERE city = 'Nowhere'",
                  "SELECT sum(quantity), max(order_date) FROM orders WHERE id < 0",
                  "SELECT name FROM customers WHERE city = 'Nowhere'"):
        assert validator.execution_reason("shop", empty) == "no rows", empty
    for answered in ("SELECT count(*) FROM customers", "SELECT 0, 'x'", "SELECT name FROM customers"):
        assert validator.execution_reason("shop", answered) is None, answered

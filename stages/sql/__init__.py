"""SQL helpers shared by the text-to-SQL task: running model-written SQL safely on SQLite."""

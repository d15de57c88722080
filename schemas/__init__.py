"""Typed records and their pyarrow mirrors (`rows`), and the build configuration (`config`)."""

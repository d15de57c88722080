"""Arguments of `pipeline index create|add|query` and `pipeline serve` (see pipeline.index and
pipeline.serve)."""
from __future__ import annotations

import argparse

from pipeline.cli_args import COUNT, NONNEGATIVE, number


def add_serving_parsers(sub) -> None:
    _index_parsers(sub)
    _serve_parser(sub)


def _index_parsers(sub) -> None:
    p = sub.add_parser("index", help="an appendable example index from a build's pool: create, add, query")
    isub = p.add_subparsers(dest="index_command", required=True, metavar="{create,add,compact,query}",
                            help="create: from a version folder; add: append pairs; compact: fold the log into a "
                                 "new copy; query: one input")
    create = isub.add_parser("create", help="make an index from a version folder's pool and embeddings")
    create.add_argument("version_dir", help="a version folder, e.g. runs/en-lt/latest")
    create.add_argument("--out", required=True, help="new folder for the index (required)")
    create.add_argument("--cache-dir", help="the build's stage cache (default OUT/.cache of the version folder's OUT)")
    add = isub.add_parser("add", help="append labelled pairs, cleaned as the build cleans its pool")
    add.add_argument("index", help="an index folder")
    _add_embedder_options(add)
    add.add_argument("file", help="pairs in a .jsonl, .tsv, .csv or .parquet file with source and target columns "
                                  "(read as build reads --train)")
    compact = isub.add_parser("compact", help="write a copy of an index with its append log folded in")
    compact.add_argument("index", help="an index folder")
    compact.add_argument("--out", required=True, help="new folder for the compacted index (required)")
    query = isub.add_parser("query", help="print the examples and the rendered prompt for an input, as JSON")
    query.add_argument("index", help="an index folder")
    query.add_argument("text", help="the input")
    _add_context_choice(query)
    _add_embedder_options(query)
    query.add_argument("--prompt-only", action="store_true", help="print just the prompt")


def _add_context_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=COUNT, default=4, help="examples per prompt, >= 1 (default %(default)s)")
    p.add_argument("--policy", choices=("topk", "one_near"), default="topk",
                   help="topk: the k BM25-nearest examples; one_near: the nearest one among k-1 random ones, "
                        "as the eval set's contexts (default %(default)s)")


def _add_embedder_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", help="where a model embedder keeps the int8 encoder it exports once "
                   "(default: the index folder)")
    p.add_argument("--threads", type=COUNT, default=1, help="torch CPU threads of a model embedder, >= 1; one "
                   "each is fastest for short inputs embedded side by side (default %(default)s)")


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="HTTP service: retrieve examples, render the prompt, call an upstream "
                                     "OpenAI-compatible completions server; take feedback pairs")
    p.add_argument("--index", required=True, help="an index folder (see `pipeline index create`) (required)")
    p.add_argument("--upstream", required=True,
                   help="OpenAI-compatible server, e.g. http://127.0.0.1:8080 (llama.cpp, vLLM) (required)")
    p.add_argument("--model", default="default", help="model name sent upstream (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=NONNEGATIVE, default=8000, help="port, 0 = any free one (default %(default)s)")
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` on every request but the health "
                                     "check; it shows in the process list, see --api-key-file (default: no key)")
    p.add_argument("--api-key-file", help="read the API key from this file's first line instead (default: none)")
    _add_context_choice(p)
    _add_embedder_options(p)
    p.add_argument("--max-tokens", type=COUNT, default=256, help="completion length cap sent upstream, >= 1 "
                                                                  "(default %(default)s)")
    p.add_argument("--timeout", type=number(float, 0.0, low_open=True), default=60.0,
                   help="seconds to wait for the upstream, > 0 (default %(default)s)")
    p.add_argument("--max-body", type=COUNT, default=65536, help="largest request body in bytes (default %(default)s)")

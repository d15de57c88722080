"""`pipeline index create|add|query`: an example index made from a build's pool, and its use.

The pool and its embeddings are read from the build's stage caches (the manifest names them by
fingerprint), so the index holds exactly the rows and vectors the build sampled contexts from.
The embedder that embeds later inputs and appended pairs must be the build's: its identity is
checked against the embed stage's fingerprint when the index is created and recorded in it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.components import Components
from pipeline.store import read_manifest
from schemas.config import BuildConfig, RunOptions
from schemas.errors import UserError
from stages.base import DONE_MARKER, Artifacts, cache_folder
from stages.embed.stage import Embed
from stages.index.files import BaseRows, IndexMeta, read_meta, write_index
from stages.index.index import ExampleIndex
from stages.index.live_bm25 import LiveBM25
from stages.index.pairs import read_pair_file
from stages.retrieve.stage import retrieval_tokenizer


def _stage_artifacts(manifest: dict, stage: str, cache_root: Path, version_dir: Path) -> Artifacts:
    folder = cache_folder(cache_root, stage, manifest["stages"][stage]["fingerprint"])
    if not (folder / DONE_MARKER).is_file():
        raise UserError(f"{version_dir}: the {stage} stage cache is not in {cache_root}; pass the build's "
                        "--cache-dir, or rerun the same `pipeline build` to restore it")
    return Artifacts.load(folder)


def _matching_embedder(config: BuildConfig, manifest: dict, cache_root: Path) -> tuple[bool, dict]:
    """(exact_embeddings, identity) of the embedder whose vectors the build's embed stage holds:
    the embed fingerprint is recomputed for each precision this machine offers."""
    stages = manifest["stages"]
    upstream = {name: stages[name]["fingerprint"] for name in ("ingest", "paraphrase")}
    for exact in (False, True):
        identity = Components(config, RunOptions(exact_embeddings=exact), cache_root).embedder_identity
        if Embed(lambda: None, identity, config.task.kind).fingerprint(upstream) == stages["embed"]["fingerprint"]:
            return exact, identity
    raise UserError("the build's embeddings come from an embedder this machine cannot reproduce (another model "
                    "or device); create the index where the build ran, with the same embedder")


def create_index(version_dir: Path, out: Path, cache_dir: Path | None = None) -> Path:
    version_dir = Path(version_dir)
    manifest = read_manifest(version_dir)
    config = BuildConfig.model_validate(manifest["config"])
    if config.task.kind == "sql":
        raise UserError(f"{version_dir}: SQL tasks are not served yet (their prompts need the databases' "
                        "linked schemas); the index covers mt, synthetic and semparse tasks")
    cache_root = Path(cache_dir) if cache_dir else version_dir.resolve().parent.parent / ".cache"
    exact, identity = _matching_embedder(config, manifest, cache_root)
    pool = _stage_artifacts(manifest, "ingest", cache_root, version_dir)["pool"]
    embeddings = _stage_artifacts(manifest, "embed", cache_root, version_dir)["pool_emb"]
    sources = pool.column("source").to_pylist()
    tokenize = retrieval_tokenizer(config.task.retrieval_tokens, config.task.kind)
    rows = BaseRows(pool.column("id").to_pylist(), sources, pool.column("target").to_pylist(), embeddings,
                    LiveBM25.from_corpus(tokenize(sources)))
    meta = IndexMeta(task=config.task, seed=config.seed, embedder=identity, exact_embeddings=exact,
                     built_from={"task": manifest["task"], "version": manifest["version"]},
                     base_rows=len(sources), dim=int(embeddings.shape[1]) if embeddings.ndim == 2 else 0)
    return write_index(Path(out), meta, rows)


def index_embedder(meta: IndexMeta, cache_root: Path, threads: int = 1):
    """The build's embedder, refusing one whose identity differs from the index's. `cache_root`
    holds the int8 encoder the CPU fast path exports once (in `embeddings/`, as a build's cache
    does): never the current folder, which may be a repository or read-only. A model
    embedder runs on `threads` torch threads: a server embeds one short input per request, on
    several requests at once, where one thread each is fastest (on a loaded 2-core machine one
    MiniLM query took ~50 ms on 1 thread and ~500 ms on 2: bench/RESULTS.md, Serving)."""
    if meta.task.embedder.kind == "sentence-transformers":
        import torch

        torch.set_num_threads(threads)
    config = BuildConfig(task=meta.task, seed=meta.seed)
    parts = Components(config, RunOptions(exact_embeddings=meta.exact_embeddings, progress=False), Path(cache_root))
    if parts.embedder_identity != meta.embedder:
        raise UserError(f"this machine's embedder differs from the one the index was made with "
                        f"({identity_difference(meta.embedder, parts.embedder_identity)}); install the same "
                        "embedder model and runtime, or recreate the index here")
    embedder = parts.plain_embedder()
    return lambda texts: np.asarray(embedder.embed(texts), dtype=np.float32)


def identity_difference(made: dict, here: dict) -> str:
    """Which identity values differ, runtime packages and CPU instruction set named one by one
    (e.g. `runtime onnxruntime: 1.19.0 there, 1.20.1 here`), so a version skew reads as one."""
    made, here = _flat(made), _flat(here)
    keys = [key for key in dict.fromkeys([*made, *here]) if made.get(key) != here.get(key)]
    return "; ".join(f"{key}: {made.get(key)} there, {here.get(key)} here" for key in keys)


def _flat(identity: dict) -> dict:
    runtime = identity.get("runtime")
    if not isinstance(runtime, dict):
        return dict(identity)
    return {**{k: v for k, v in identity.items() if k != "runtime"}, **{f"runtime {k}": v for k, v in runtime.items()}}


def open_index(folder: Path, writable: bool = False, threads: int = 1, cache_dir: Path | None = None) -> ExampleIndex:
    """`cache_dir`: where the embedder keeps its exported model (default: the index folder itself)."""
    folder = Path(folder)
    embed = index_embedder(read_meta(folder), Path(cache_dir) if cache_dir else folder, threads)
    return ExampleIndex.open(folder, embed, writable=writable)


def add_file(index: ExampleIndex, path: Path) -> dict[str, Any]:
    """Append the pairs of a file (read and judged as ingest reads a build's --train file). Each
    rejected pair is reported with its file and line, as the build's rejects are."""
    rows = read_pair_file(path)
    report = index.add([(row.source, row.target) for row in rows])
    for reject in report["rejected"]:
        row = rows[reject.pop("item")]
        reject.update(file=row.file, line=row.line)
    return report


def cmd_index(args) -> int:
    if args.index_command == "create":
        print(create_index(Path(args.version_dir), Path(args.out), args.cache_dir))
        return 0
    if args.index_command == "add":
        index = open_index(Path(args.index), writable=True, threads=args.threads, cache_dir=args.cache_dir)
        try:
            report = add_file(index, Path(args.file))
        finally:
            index.close()
        print(json.dumps(report, ensure_ascii=False))
        return 0
    if args.index_command == "compact":
        print(open_index(Path(args.index)).write_compacted(Path(args.out)))
        return 0
    result = open_index(Path(args.index), threads=args.threads, cache_dir=args.cache_dir).query(args.text, args.k, args.policy)
    print(result["prompt"] if args.prompt_only else json.dumps(result, ensure_ascii=False, indent=2))
    return 0

"""`pipeline`: build, list and inspect IC-Train dataset versions.

    pipeline build --task align-synth --out runs          # the embedded default, offline
    pipeline build --task en-lt --train europarl.tsv --test flores.tsv --test-ood emea.tsv --paraphraser none
    pipeline versions --task align-synth --out runs
    pipeline show runs/align-synth/latest
    pipeline publish runs/en-lt/latest --repo-id your-name/ictrain-en-lt

`build` prints the version folder as the last line of standard output; progress and stage
reports go to standard error. Bad input exits with status 2 and one line saying what to fix.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from schemas.errors import UserError
from pipeline.tasks import DEFAULT_TASK, builtin_tasks, load_task
from schemas.config import DEFAULT_HUB_ENDPOINT, DEFAULT_OPUS_URL, BuildConfig, ContextWeights, RunOptions


def _build_parser(sub) -> None:
    p = sub.add_parser("build", help="build every training set, the eval set and the probe set for a task")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"built-in task or task YAML path (default {DEFAULT_TASK})")
    p.add_argument("--out", default="runs", help="output folder (default runs)")
    p.add_argument("--cache-dir", help="stage/embedding/paraphrase cache (default OUT/.cache)")
    p.add_argument("--train", help="local training pool file (TSV/CSV/JSONL/Parquet with source,target)")
    p.add_argument("--test", help="local in-domain test file")
    p.add_argument("--test-ood", help="local out-of-domain test file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=4, help="examples per context (default 4)")
    p.add_argument("--m", type=int, default=20, help="BM25 candidates the near kind samples from (default 20)")
    p.add_argument("--p", type=float, help="weight of the random and of the similar kind (default 0.2)")
    p.add_argument("--eps", type=float, help="weight of the paraphrase kind (default 0.1)")
    for kind in ("random", "similar", "near", "paraphrase"):
        p.add_argument(f"--w-{kind}", type=float, help=f"weight of the {kind} kind, overriding --p/--eps")
    p.add_argument("--tau", type=float, help="keep similar-regime targets with mean cosine >= tau")
    p.add_argument("--pool-size", type=int)
    p.add_argument("--test-size", type=int)
    p.add_argument("--ood-size", type=int)
    p.add_argument("--probe-size", type=int, default=200)
    p.add_argument("--n-paraphrases", type=int, default=5)
    p.add_argument("--paraphraser", help="none | file | align-synth | gemini | openai | hf-local (default: the task's)")
    p.add_argument("--paraphraser-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable (values parsed as JSON when they can be)")
    p.add_argument("--base-url", help="OpenAI-compatible server for --paraphraser openai")
    p.add_argument("--max-cost", type=float, help="stop paraphrasing once this many USD are spent")
    p.add_argument("--dry-run", action="store_true", help="print the paraphrase cost estimate and stop")
    p.add_argument("--embedder-model", help="sentence-transformers model path or id (default: MiniLM shipped offline)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=128, help="embedding batch size")
    p.add_argument("--exact-embeddings", action="store_true",
                   help="plain fp32 embeddings instead of the faster int8 (CPU) / fp16 (CUDA) path")
    p.add_argument("--threads", type=int, help="torch CPU threads (on a busy 2-core machine 1 is often faster)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when standard error is a terminal)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _build_parser(sub)
    v = sub.add_parser("versions", help="list the built versions of a task")
    v.add_argument("--task", default=DEFAULT_TASK)
    v.add_argument("--out", default="runs")
    s = sub.add_parser("show", help="counts and two rendered prompts per split of a version folder")
    s.add_argument("path")
    sub.add_parser("tasks", help="list the built-in tasks")
    src = sub.add_parser("sources", help="list a task's sources; --check probes them, --download fetches them")
    src.add_argument("--task", default=DEFAULT_TASK, help=f"built-in task or task YAML path (default {DEFAULT_TASK})")
    src.add_argument("--check", action="store_true",
                     help="probe each source (pinned revision, config, access) without downloading data; exit 1 on failure")
    src.add_argument("--download", action="store_true",
                     help="fetch every source into the cache, for building later without network")
    src.add_argument("--out", default="runs", help="output folder whose cache holds downloads (default runs)")
    src.add_argument("--cache-dir", help="cache folder (default OUT/.cache)")
    pub = sub.add_parser("publish", help="upload a version folder to a Hub dataset repository")
    pub.add_argument("path")
    pub.add_argument("--repo-id", required=True, help="e.g. your-name/ictrain-en-lt")
    pub.add_argument("--private", action="store_true")
    return parser.parse_args(argv)


def _option_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def resolve_config(args: argparse.Namespace) -> BuildConfig:
    task = load_task(args.task)
    updates = {name: getattr(args, name) for name in ("pool_size", "test_size", "ood_size")
               if getattr(args, name) is not None}
    if args.embedder_model:
        updates["embedder"] = task.embedder.model_copy(update={"model": args.embedder_model})
    task = task.model_copy(update=updates)
    options = dict(task.paraphraser_options)
    paraphraser = args.paraphraser or task.paraphraser
    if args.paraphraser and args.paraphraser != task.paraphraser:
        options = {}
    for item in args.paraphraser_option:
        if "=" not in item:
            raise UserError(f"--paraphraser-option {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        options[key.strip()] = _option_value(value)
    if args.base_url:
        options["base_url"] = args.base_url
    if args.max_cost is not None:
        options["max_cost"] = args.max_cost
    try:
        weights = ContextWeights.from_p_eps(0.2 if args.p is None else args.p, 0.1 if args.eps is None else args.eps) \
            if (args.p is not None or args.eps is not None) else ContextWeights()
        custom = {kind: getattr(args, f"w_{kind}") for kind in ("random", "similar", "near", "paraphrase")
                  if getattr(args, f"w_{kind}") is not None}
        if custom:
            weights = ContextWeights(**{**weights.model_dump(), **custom})
        return BuildConfig(task=task, seed=args.seed, k=args.k, m=args.m, weights=weights, tau=args.tau,
                           probe_size=args.probe_size, n_paraphrases=args.n_paraphrases,
                           paraphraser=paraphraser, paraphraser_options=options)
    except ValidationError as exc:
        message = exc.errors()[0].get("msg", str(exc)).removeprefix("Value error, ")
        raise UserError(f"invalid build settings: {message}")


def remote_settings() -> dict[str, str | None]:
    """Hub endpoint and token, OPUS base URL: read from the environment here, and only here."""
    from huggingface_hub import get_token

    return {"hub_endpoint": os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT, "hub_token": get_token(),
            "opus_url": os.environ.get("ICTRAIN_OPUS_URL") or DEFAULT_OPUS_URL}


def cmd_sources(args: argparse.Namespace) -> int:
    from pipeline.sources import cmd_sources as run

    options = RunOptions(out_dir=args.out, cache_dir=args.cache_dir, **remote_settings())
    cache_root = Path(args.cache_dir or Path(args.out) / ".cache")
    return run(args.task, options, cache_root, args.check, args.download)


def cmd_build(args: argparse.Namespace) -> int:
    from pipeline.build import build

    config = resolve_config(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options = RunOptions(out_dir=args.out, cache_dir=args.cache_dir, device=args.device, batch_size=args.batch_size,
                         exact_embeddings=args.exact_embeddings,
                         progress=sys.stderr.isatty() if args.progress is None else args.progress,
                         train_path=args.train, test_path=args.test, test_ood_path=args.test_ood,
                         **remote_settings())
    result = build(config, options, dry_run=args.dry_run)
    print(json.dumps(result, indent=2) if args.dry_run else str(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "build":
            return cmd_build(args)
        from pipeline import inspect

        if args.command == "versions":
            return inspect.cmd_versions(args.out, args.task)
        if args.command == "show":
            return inspect.cmd_show(Path(args.path))
        if args.command == "sources":
            return cmd_sources(args)
        if args.command == "publish":
            from pipeline.publish import publish_version_folder

            print(publish_version_folder(Path(args.path), args.repo_id, args.private))
            return 0
        print("\n".join(builtin_tasks()))
        return 0
    except UserError as exc:
        for line in str(exc).splitlines() or [""]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are cached; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pipeline show ... | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

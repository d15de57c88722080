"""`pipeline`: build, list, inspect, publish and prune IC-Train dataset versions.

    pipeline build --task align-synth --out runs          # the embedded default, offline
    pipeline build --task en-lt --train europarl.tsv --test flores.tsv --test-ood emea.tsv --paraphraser none
    pipeline versions --task align-synth --out runs
    pipeline show runs/align-synth/latest
    pipeline export runs/en-lt/latest --out hub/en-lt
    pipeline publish runs/en-lt/latest --repo-id your-name/ictrain-en-lt
    pipeline prune --task align-synth --out runs --keep 3 --dry-run
    pipeline sources --task en-lt --check                  # can this machine read the task's sources?
    pipeline index create runs/en-lt/latest --out idx/en-lt  # serve the pool: see `pipeline serve`
    pipeline index add idx/en-lt corrections.jsonl
    pipeline index query idx/en-lt "Where is the station?" --k 4 --policy one_near
    pipeline serve --index idx/en-lt --upstream http://127.0.0.1:8080 --port 8000

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
from pipeline.cli_args import COUNT, NONNEGATIVE, SHARE, OneLineParser, number
from pipeline.cli_engine import add_engine_options, engine_from_args
from pipeline.cli_serving import add_serving_parsers
from pipeline.paraphraser_settings import paraphraser_settings
from pipeline.tasks import DEFAULT_TASK, load_task
from schemas.config import DEFAULT_HUB_ENDPOINT, DEFAULT_OPUS_URL, BuildConfig, ContextWeights, RunOptions

KINDS = ("random", "similar", "near", "paraphrase")


def _add_task_and_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default=DEFAULT_TASK,
                   help="built-in task (see `pipeline tasks`) or task YAML path (default %(default)s)")
    p.add_argument("--out", default="runs", help="output folder (default %(default)s)")


def _add_cache_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", help="stage/embedding/paraphrase cache (default OUT/.cache)")


def _build_data_options(p: argparse.ArgumentParser) -> None:
    for flag, what in (("--train", "training pool"), ("--test", "in-domain test set"),
                       ("--test-ood", "out-of-domain test set")):
        p.add_argument(flag, help=f"local {what} file, TSV/CSV/JSONL/Parquet with source,target columns "
                                  f"(default: the task's declared source)")
    for flag, what in (("--pool-size", "training pool rows"), ("--test-size", "in-domain test rows"),
                       ("--ood-size", "out-of-domain test rows")):
        p.add_argument(flag, type=COUNT, help=f"{what} to keep, >= 1 (default: the task's {flag[2:].replace('-', '_')})")
    p.add_argument("--probe-size", type=COUNT, default=200, help="probe targets, >= 1 (default %(default)s)")
    p.add_argument("--db-dir", action="append", default=[], metavar="DIR",
                   help="SQL tasks: a folder holding <db_id>/<db_id>.sqlite, repeatable (BIRD: its train and its "
                        "dev database folders); searched in the order given (default: none)")


def _build_context_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=NONNEGATIVE, default=0,
                   help="seeds every draw (sampling, context kinds, examples), >= 0 (default %(default)s)")
    p.add_argument("--k", type=COUNT, default=4, help="examples per context, >= 1 (default %(default)s)")
    p.add_argument("--m", type=COUNT, help="BM25 candidates the near kind samples from, >= --k (default max(20, k))")
    p.add_argument("--p", type=SHARE, help="weight of the random and of the similar kind, in [0, 1] (default 0.2)")
    p.add_argument("--eps", type=SHARE, help="weight of the paraphrase kind, in [0, 1] (default 0.1)")
    defaults = ContextWeights()
    for kind in KINDS:
        p.add_argument(f"--w-{kind}", type=SHARE, help=f"weight of the {kind} kind, in [0, 1], overriding "
                                                       f"--p/--eps (default {getattr(defaults, kind)})")
    p.add_argument("--tau", type=number(float, -1.0),
                   help="keep similar-regime targets with mean cosine >= tau, >= -1; above 1 none passes and "
                        "train-similar is empty, with a warning (default: keep all)")


def _build_paraphrase_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-paraphrases", type=COUNT, default=5,
                   help="paraphrases asked per source, >= 1 (default %(default)s)")
    p.add_argument("--paraphraser", help="none | file | align-synth | sql-values | gemini | openai | hf-local "
                                         "(default: the task's; see `pipeline tasks`)")
    p.add_argument("--paraphraser-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable; values parsed as JSON when they can be "
                        "(default: the task's paraphraser_options)")
    p.add_argument("--base-url", help="OpenAI-compatible server for --paraphraser openai (default: OpenAI's)")
    p.add_argument("--max-cost", type=number(float, 0.0, low_open=True),
                   help="stop paraphrasing once this many USD are spent, > 0 (default: no limit)")
    p.add_argument("--dry-run", action="store_true", help="print the paraphrase cost estimate and stop")


def _build_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder-model", help="sentence-transformers model path or id (default: MiniLM shipped offline)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default %(default)s)")
    p.add_argument("--batch-size", type=COUNT, default=128, help="embedding batch size, >= 1 (default %(default)s)")
    p.add_argument("--exact-embeddings", action="store_true",
                   help="plain fp32 embeddings instead of the faster int8 (CPU) / fp16 (CUDA) path")
    p.add_argument("--threads", type=COUNT, help="torch CPU threads, >= 1; on a busy 2-core machine 1 is often "
                                                  "faster (default: torch's choice)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when standard error is a terminal)")
    add_engine_options(p)


def _build_parser(sub) -> None:
    p = sub.add_parser("build", help="build every training set, the eval set and the probe set for a task")
    _add_task_and_out(p)
    _add_cache_dir(p)
    _build_data_options(p)
    _build_context_options(p)
    _build_paraphrase_options(p)
    _build_run_options(p)


def _hub_parsers(sub) -> None:
    ex = sub.add_parser("export", help="write a version folder as a Hub dataset repository (Parquet configs, card)")
    pub = sub.add_parser("publish", help="export a version folder and commit it to a Hub dataset repository, "
                                         "tagged with the version")
    for p in (ex, pub):
        p.add_argument("path", help="a version folder, e.g. runs/en-lt/latest")
        p.add_argument("--license", help="Hub licence identifier for the card, e.g. cc-by-4.0 (default: from the "
                                         "task's sources; generated tasks cc0-1.0)")
    ex.add_argument("--out", required=True, help="folder to write the repository layout to, new or an earlier "
                                                 "export (required)")
    ex.add_argument("--repo-id", help="repository named in the card's loading examples (default OWNER/REPO)")
    pub.add_argument("--repo-id", required=True, help="dataset repository, e.g. your-name/ictrain-en-lt (required)")
    pub.add_argument("--private", action="store_true", help="create the repository private (default: public)")


def _other_parsers(sub) -> None:
    v = sub.add_parser("versions", help="list the built versions of a task")
    _add_task_and_out(v)
    s = sub.add_parser("show", help="counts and two rendered prompts per split of a version folder")
    s.add_argument("path", help="a version folder, e.g. runs/align-synth/latest")
    sub.add_parser("tasks", help="list the built-in tasks with a one-line description")
    src = sub.add_parser("sources", help="list a task's sources; --check probes them, --download fetches them")
    _add_task_and_out(src)
    _add_cache_dir(src)
    src.add_argument("--check", action="store_true", help="probe each source (pinned revision, config, access) "
                     "without downloading data; exit 1 on failure (default: off)")
    src.add_argument("--download", action="store_true",
                     help="fetch every source into the cache, for building later without network (default: off)")
    _hub_parsers(sub)
    pr = sub.add_parser("prune", help="delete old versions of a task and the stage caches no version uses")
    _add_task_and_out(pr)
    _add_cache_dir(pr)
    pr.add_argument("--keep", type=NONNEGATIVE, required=True,
                    help="newest versions to keep, >= 0; the one `latest` points to is always kept (required)")
    pr.add_argument("--dry-run", action="store_true", help="list what would be deleted, with sizes, and delete nothing")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pipeline", description=__doc__.split("\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _build_parser(sub)
    _other_parsers(sub)
    add_serving_parsers(sub)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return make_parser().parse_args(argv)


def _weights(args: argparse.Namespace) -> ContextWeights:
    weights = ContextWeights.from_p_eps(0.2 if args.p is None else args.p, 0.1 if args.eps is None else args.eps) \
        if (args.p is not None or args.eps is not None) else ContextWeights()
    custom = {kind: getattr(args, f"w_{kind}") for kind in KINDS if getattr(args, f"w_{kind}") is not None}
    return ContextWeights(**{**weights.model_dump(), **custom}) if custom else weights


def resolve_config(args: argparse.Namespace) -> BuildConfig:
    if args.m is not None and args.m < args.k:
        raise UserError(f"--m must be >= --k (got --m {args.m}, --k {args.k}): the near kind samples from the top m "
                        f"BM25 candidates; raise --m or leave it out (it defaults to max(20, k))")
    task = load_task(args.task)
    updates = {name: getattr(args, name) for name in ("pool_size", "test_size", "ood_size")
               if getattr(args, name) is not None}
    if args.embedder_model:
        updates["embedder"] = task.embedder.model_copy(update={"model": args.embedder_model})
    task = task.model_copy(update=updates)
    paraphraser, options = paraphraser_settings(args, task, os.environ,
                                                lambda line: print(line, file=sys.stderr))
    try:
        return BuildConfig(task=task, seed=args.seed, k=args.k, m=args.m, weights=_weights(args), tau=args.tau,
                           probe_size=args.probe_size, n_paraphrases=args.n_paraphrases,
                           paraphraser=paraphraser, paraphraser_options=options)
    except ValidationError as exc:
        message = exc.errors()[0].get("msg", str(exc)).removeprefix("Value error, ")
        raise UserError(f"invalid build settings: {message}")


def remote_settings() -> dict[str, str | None]:
    """Hub endpoint and token, OPUS base URL for builds and `sources`, read from the environment
    here (`publish` leaves its token to the Hub client, which reads the same places)."""
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
                         db_dirs=args.db_dir, **remote_settings())
    with engine_from_args(args, options.progress) as engine:
        result = build(config, options, dry_run=args.dry_run, engine=engine)
    print(json.dumps(result, indent=2) if args.dry_run else str(result))
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    """`export` and `publish`: progress lines on standard error, the result on standard output."""
    def log(line: str) -> None:
        print(line, file=sys.stderr)

    if args.command == "export":
        from pipeline.export import export_version

        print(export_version(Path(args.path), Path(args.out), args.license, args.repo_id, log))
        return 0
    from pipeline.publish import publish_version_folder

    print(publish_version_folder(Path(args.path), args.repo_id, args.private, license_override=args.license, log=log))
    return 0


def run_command(args: argparse.Namespace) -> int:
    if args.command == "build":
        return cmd_build(args)
    from pipeline import inspect

    if args.command == "versions":
        return inspect.cmd_versions(args.out, args.task)
    if args.command == "show":
        return inspect.cmd_show(Path(args.path))
    if args.command == "sources":
        return cmd_sources(args)
    if args.command in ("export", "publish"):
        return cmd_hub(args)
    if args.command == "index":
        from pipeline.index import cmd_index

        return cmd_index(args)
    if args.command == "serve":
        from pipeline.serve import cmd_serve

        return cmd_serve(args)
    if args.command == "prune":
        from pipeline.prune import cmd_prune

        return cmd_prune(args.out, args.task, args.keep, args.cache_dir, args.dry_run)
    return inspect.cmd_tasks()


def main(argv: list[str] | None = None) -> int:
    try:
        return run_command(parse_args(argv))
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

"""`pipeline build --engine {local,ray} --ray-address --workers`: where retrieve and embed run.

Kept apart from `pipeline.cli` (which is long enough). `RAY_ADDRESS` is read here, in the CLI layer,
and nowhere deeper: the engine is handed an explicit address or none.
"""
from __future__ import annotations

import argparse
import os

from pipeline.cli_args import COUNT
from schemas.errors import UserError
from stages.scale import ENGINES, make_engine


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="where BM25 retrieval and embedding run: this process, or Ray Data jobs on a local or "
                        "joined Ray cluster (needs `pip install 'ictrain[scale]'`); the bytes are the same "
                        "(default %(default)s)")
    p.add_argument("--ray-address", help="Ray cluster to join with --engine ray: auto on a cluster node, or "
                                         "HOST:PORT of its head (default: $RAY_ADDRESS, else a local Ray "
                                         "started for the build)")
    p.add_argument("--workers", type=COUNT, help="Ray actors per job, >= 1 (default: every CPU of the cluster, "
                                                 "with --device cuda every GPU)")


def engine_from_args(args: argparse.Namespace, progress: bool):
    """The engine a build runs with; a context manager that stops a Ray it started. The Ray options
    without `--engine ray` are refused rather than silently ignored ($RAY_ADDRESS alone is not:
    it is set for every program on a cluster node)."""
    given = [flag for flag, value in (("--workers", args.workers), ("--ray-address", args.ray_address))
             if value is not None]
    if given and args.engine != "ray":
        raise UserError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with --engine ray; "
                        "add --engine ray or drop them")
    address = args.ray_address or os.environ.get("RAY_ADDRESS") or None
    return make_engine(args.engine, workers=args.workers, address=address, progress=progress, device=args.device)

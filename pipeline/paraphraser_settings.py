"""Which paraphraser a build uses, and with which options: the task's, the command line's, or the
task's offline fallback when the task's backend needs an API key that is not set."""
from __future__ import annotations

import argparse
import json
from typing import Callable, Mapping

from schemas.config import TaskConfig
from schemas.errors import UserError


def _option_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def default_paraphraser(task: TaskConfig, environ: Mapping[str, str], log: Callable[[str], None]) -> str:
    """The task's paraphraser, or its `offline_paraphraser` when the former needs an API key that
    no variable of `environ` holds: a task like `bird` then builds offline by default, and with the
    key set uses the LLM. Logged, since it changes the version."""
    from stages.paraphrase.base import key_variables

    variables = key_variables(task.paraphraser, task.paraphraser_options)
    if not task.offline_paraphraser or not variables or any(environ.get(v, "").strip() for v in variables):
        return task.paraphraser
    log(f"paraphraser: {task.offline_paraphraser} ({' or '.join(variables)} is not set; pass --paraphraser "
        f"{task.paraphraser} with the key set to use {task.paraphraser})")
    return task.offline_paraphraser


def paraphraser_settings(args: argparse.Namespace, task: TaskConfig, environ: Mapping[str, str],
                         log: Callable[[str], None]) -> tuple[str, dict]:
    """(backend name, options): the task's options apply only to the task's own backend."""
    options = dict(task.paraphraser_options)
    paraphraser = args.paraphraser or default_paraphraser(task, environ, log)
    if paraphraser != task.paraphraser:
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
    return paraphraser, options

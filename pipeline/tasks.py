"""The task registry: one YAML file per task under `pipeline/tasks/`, or any YAML path."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from schemas.errors import UserError
from schemas.config import TaskConfig

DEFAULT_TASK = "align-synth"


def builtin_tasks() -> list[str]:
    folder = resources.files("pipeline") / "tasks"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_task(name_or_path: str) -> TaskConfig:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        folder = resources.files("pipeline") / "tasks"
        entry = folder / f"{name_or_path}.yaml"
        if not entry.is_file():
            raise UserError(f"unknown task {name_or_path!r}; built-in tasks: {', '.join(builtin_tasks())} "
                            f"(or give the path of a task YAML file)")
        text, origin = entry.read_text(encoding="utf-8"), f"pipeline/tasks/{name_or_path}.yaml"
    try:
        data = yaml.safe_load(text)
        return TaskConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"{origin}: invalid task declaration: {' '.join(first[:3])}")

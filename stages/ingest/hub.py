"""Hub datasets: a repo's metadata, its config/split -> data file resolution, and downloads.

Why not `datasets.load_dataset`: since `datasets` 4.0 it refuses loading-script repos, its errors
for gated repos and unknown configs are hard to act on, and it reads its endpoint from the
environment at import time. Here a repo's metadata (files, configs, gating) comes from one API
call, a config/split is resolved to Parquet files from the repo card's `configs`, each file is
downloaded once per commit into the build's source cache, and only the needed columns are read.
Every failure becomes one `UserError` line that says what to do.
"""
from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from schemas.config import HubSource
from schemas.errors import UserError
from stages.ingest.http import HTTPClient, HTTPFailure
from stages.ingest.access import SourceAccess

SHA = re.compile(r"^[0-9a-f]{40}$")
DATA_SUFFIXES = (".parquet", ".jsonl")
MAX_FILE_BYTES = 8 << 30
# loading-script repos whose data OPUS serves directly: the `opus` source to use instead
SCRIPT_REPLACEMENTS = {"Helsinki-NLP/emea": ("EMEA", "v3"), "Helsinki-NLP/tanzil": ("Tanzil", "v1")}


class HubRepo:
    """One dataset repo at one revision: metadata, file resolution, downloads."""

    def __init__(self, spec: HubSource, access: SourceAccess, http: HTTPClient | None = None):
        self.spec, self.access, self.http = spec, access, http or HTTPClient()
        self.page = f"{access.hub_endpoint.rstrip('/')}/datasets/{spec.path}"

    # ----- metadata -----
    @functools.cached_property
    def info(self) -> dict:
        revision = quote(self.spec.revision or "main", safe="")
        url = f"{self.access.hub_endpoint.rstrip('/')}/api/datasets/{self.spec.path}/revision/{revision}?blobs=true"
        try:
            data = self.http.get_json(url, self.access.hub_token)
        except HTTPFailure as err:
            raise self._metadata_error(err) from None
        if not isinstance(data, dict) or not SHA.match(str(data.get("sha", ""))):
            raise UserError(f"{self.spec.path}: the Hub answered without a commit id; retry later")
        return data

    def _metadata_error(self, err: HTTPFailure) -> UserError:
        where = f"{self.spec.path}@{self.spec.revision or 'main'}"
        if err.status == 0:
            return UserError(f"cannot reach the Hub at {self.access.hub_endpoint} for {self.spec.path} ({err.reason}); "
                             f"check the network or HF_ENDPOINT, or pass a local file instead")
        if err.status in (401, 403):
            return UserError(f"{self.spec.path}: the Hub refused access ({err.status}); the repo is private or does "
                             f"not exist: check the name, or set HF_TOKEN to a token that can read it")
        if err.status == 404:
            newest = self._newest_commit() if self.spec.revision else None
            hint = f"the newest commit of main is {newest}" if newest else f"see {self.page}/commits/main"
            return UserError(f"{where}: not found on the Hub; check the dataset name and its pinned revision ({hint})")
        return UserError(f"{where}: the Hub answered {err.status} ({err.reason}); retry later")

    def _newest_commit(self) -> str | None:
        url = f"{self.access.hub_endpoint.rstrip('/')}/api/datasets/{self.spec.path}/revision/main"
        try:
            sha = str(self.http.get_json(url, self.access.hub_token).get("sha", ""))
        except (HTTPFailure, AttributeError):
            return None
        return sha if SHA.match(sha) else None

    @property
    def commit(self) -> str:
        return self.info["sha"]

    def files(self) -> dict[str, int | None]:
        """Repo file name -> size; names are untrusted and only used after `safe_name`."""
        out = {}
        for sibling in self.info.get("siblings") or []:
            if isinstance(sibling, dict) and isinstance(sibling.get("rfilename"), str):
                size = sibling.get("size")
                out[sibling["rfilename"]] = size if isinstance(size, int) else None
        return out

    def configs(self) -> dict[str, list[dict]]:
        """Config name -> its data_files entries ({split, path}) from the repo card."""
        card = self.info.get("cardData") or {}
        out: dict[str, list[dict]] = {}
        for entry in card.get("configs") or []:
            if isinstance(entry, dict) and isinstance(entry.get("config_name"), str):
                entries = _data_file_entries(entry.get("data_files"))
                data_dir = entry.get("data_dir")
                if not entries and isinstance(data_dir, str):  # `data_dir: hi`: the default layout below it
                    entries = [{"split": "*", "path": data_dir.strip("/") + "/"}]
                out[entry["config_name"]] = entries
        return out

    # ----- resolution -----
    def data_files(self, config: str | None, split: str) -> list[str]:
        """The data files of one config and split, in repo order."""
        files = self.files()
        data = [name for name in files if name.endswith(DATA_SUFFIXES)]
        if not data:
            raise self._no_data_error(files)
        configs = self.configs()
        name = config or "default"
        if name not in configs:
            if configs:
                raise self._unknown_config_error(name, sorted(configs))
            if name != "default":
                raise UserError(f"{self.spec.path} declares no configs, so config {name!r} does not exist; "
                                "leave `name` out of the task YAML")
            patterns = default_split_patterns("", split)  # no card configs: the Hub's default layout
        else:
            entries = configs[name]
            patterns = [e["path"] for e in entries if e["split"] == split]
            patterns += [p for e in entries if e["split"] == "*" for p in default_split_patterns(e["path"], split)]
            if not patterns:
                splits = sorted({e["split"] for e in entries})
                raise UserError(f"{self.spec.path} config {name!r} has no split {split!r}; "
                                f"its splits: {', '.join(splits) or 'none declared'}")
        chosen = [f for f in data if any(fnmatch.fnmatchcase(f, p) for p in patterns)]
        if not chosen:
            raise UserError(f"{self.spec.path} config {name!r} split {split!r}: no data file matches "
                            f"{patterns}; the repo layout changed, pin an older revision")
        return chosen

    def _no_data_error(self, files: dict[str, int | None]) -> UserError:
        scripts = [f for f in files if f.endswith(".py") and "/" not in f]
        if not scripts:
            return UserError(f"{self.spec.path}: no Parquet data files at revision {self.commit[:12]}; "
                             "pass a local file instead")
        replacement = SCRIPT_REPLACEMENTS.get(self.spec.path)
        hint = (f"use `opus: {{corpus: {replacement[0]}, version: {replacement[1]}, source_lang: .., target_lang: ..}}` "
                "in the task YAML" if replacement else "use an opus source or a local file")
        return UserError(f"{self.spec.path} is a loading-script dataset ({scripts[0]}), which the datasets "
                         f"library no longer runs and ictrain does not execute; {hint}")

    def _unknown_config_error(self, name: str, valid: list[str]) -> UserError:
        swapped = "-".join(reversed(name.split("-"))) if name.count("-") == 1 else None
        hint = f" (did you mean {swapped!r}? pairs are named in alphabetical order)" if swapped in valid else ""
        shown = ", ".join(valid[:30]) + (f", ... ({len(valid)} in all)" if len(valid) > 30 else "")
        return UserError(f"{self.spec.path} has no config {name!r}{hint}; valid configs: {shown}")

    # ----- access and downloads -----
    def file_url(self, name: str) -> str:
        return (f"{self.access.hub_endpoint.rstrip('/')}/datasets/{self.spec.path}/resolve/"
                f"{self.commit}/{quote(safe_name(name))}")

    def check_access(self, name: str) -> int | None:
        """HEAD one data file: the gating check that downloads nothing. Returns its size."""
        gated = self.info.get("gated") not in (None, False, "false")
        if gated and not self.access.hub_token:
            raise UserError(f"{self.spec.path} is gated: accept its conditions at {self.page} (logged in), "
                            "then set HF_TOKEN to a token of that account (or run `hf auth login`)")
        try:
            return self.http.head(self.file_url(name), self.access.hub_token)
        except HTTPFailure as err:
            if err.status in (401, 403):
                raise UserError(f"{self.spec.path}: access denied ({err.status}); accept its conditions at "
                                f"{self.page} with the account whose token is in HF_TOKEN") from None
            raise UserError(f"{self.spec.path}: cannot fetch {name} ({err.summary}); retry later "
                            "or pass a local file instead") from None

    def local_file(self, name: str, progress=None) -> Path:
        """The file from the source cache, downloaded there first if missing."""
        target = self.access.download_dir / "hub" / self.spec.path.replace("/", "__") / self.commit / safe_name(name)
        if target.is_file():
            return target
        self.check_access(name)
        try:
            return self.http.download(self.file_url(name), target, MAX_FILE_BYTES, self.access.hub_token, progress,
                                      expected_size=self.files().get(name))
        except HTTPFailure as err:
            raise UserError(f"{self.spec.path}: download of {name} failed ({err.summary}); "
                            "rerun to retry (finished files are kept)") from None


def _data_file_entries(value) -> list[dict]:
    """Normalise a card's `data_files` (str, list of str, or list of {split, path})."""
    if isinstance(value, str):
        return [{"split": "train", "path": value}]
    out = []
    for item in value or []:
        if isinstance(item, str):
            out.append({"split": "train", "path": item})
        elif isinstance(item, dict) and isinstance(item.get("split"), str):
            paths = item.get("path")
            for path in [paths] if isinstance(paths, str) else paths or []:
                if isinstance(path, str):
                    out.append({"split": item["split"], "path": path})
    return out


def hub_label(spec: HubSource) -> str:
    """How a Hub source is named to the user and in the manifest: `hub:repo/config(s)/split`."""
    config = f"{spec.source.name}+{spec.target.name}" if spec.source and spec.target else spec.name or "default"
    return f"hub:{spec.path}/{config}/{spec.split}"


def default_split_patterns(prefix: str, split: str) -> list[str]:
    """File patterns of a split in the Hub's default layout (no explicit data_files): files named
    after the split, at the top or one folder down (`data/test-00000-of-00001.parquet`)."""
    return [f"{prefix}{split}-*", f"{prefix}{split}.*", f"{prefix}*/{split}-*", f"{prefix}*/{split}.*",
            f"{prefix}{split}/*"]


def safe_name(name: str) -> str:
    """A repo file name as a relative path that cannot leave the cache folder."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(p in ("..", ".", "") or "\\" in p for p in parts):
        raise UserError(f"refusing the repo file name {name!r}: not a plain relative path")
    return "/".join(parts)

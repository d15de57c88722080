"""`pipeline publish`: a version folder, exported (Parquet configs and card), as one commit to a
Hugging Face Hub dataset repository.

`main` holds the latest published version and each version is a tag named after it, so a
consumer pins one with `load_dataset(repo, config, revision=version)`. The token comes from the
Hub client's usual places (`HF_TOKEN` or `hf auth login`); without one, publish stops before it
touches the network.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from schemas.errors import UserError


def hub_token() -> str | None:
    """The token the Hub client would use (`HF_TOKEN`, then the `hf auth login` file); no network."""
    from huggingface_hub import get_token

    return get_token()


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the configured Hub endpoint: without it, an offline machine
    spends half a minute in the Hub client's retries before saying anything."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def default_api(repo_id: str):
    """The real Hub client, once a token is there and the Hub answers (checked in that order)."""
    if not hub_token():
        raise UserError(f"no Hugging Face token to publish to {repo_id}: set HF_TOKEN or run `hf auth login`")
    if not hub_reachable():
        raise UserError(f"cannot reach the Hub to publish to {repo_id}; check the network (or HF_ENDPOINT)")
    from huggingface_hub import HfApi

    return HfApi()


def commit_operations(export: Path, existing: list[str]) -> list:
    """Add every exported file; delete the data files `main` holds that the export does not (an
    earlier version's extra shards), so `main`'s configs are exactly this version's. Files outside
    `data/` that the owner added (a licence, images) stay."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from pipeline.export import exported_files

    files = exported_files(export)
    stale = sorted(name for name in set(existing) - set(files) if name.startswith("data/"))
    return ([CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(export / name)) for name in files]
            + [CommitOperationDelete(path_in_repo=name) for name in stale])


def _commit_version(api, repo_id: str, folder: Path, manifest: dict, license_override: str | None, log) -> None:
    from pipeline.export import export_version

    version = manifest["version"]
    with tempfile.TemporaryDirectory(prefix="ictrain-export-") as tmp:
        export = export_version(folder, Path(tmp) / "export", license_override, repo_id, log)
        existing = api.list_repo_files(repo_id, repo_type="dataset")
        operations = commit_operations(export, existing)
        log(f"uploading {len(operations)} file operation(s) to {repo_id} in one commit")
        commit = api.create_commit(repo_id, operations, commit_message=f"ictrain {manifest['task']} {version}",
                                   repo_type="dataset", revision="main")
        api.create_tag(repo_id, tag=version, revision=commit.oid, repo_type="dataset",
                       tag_message=f"ictrain {manifest['task']} {version}")


def gated_inputs(api, manifest: dict) -> list[str]:
    """The Hub repos this version was built from that are gated; a source the Hub cannot describe
    (offline test client, deleted repo) is simply not reported."""
    repos = sorted({used["hub"]["path"] for used in manifest.get("inputs", {}).values()
                    if isinstance(used, dict) and "hub" in used})
    gated = []
    for repo in repos:
        try:
            if getattr(api.dataset_info(repo), "gated", False) not in (False, None, "false"):
                gated.append(repo)
        except Exception:  # the warning is advice: never let it stop a publish
            continue
    return gated


def publish_version_folder(folder: Path, repo_id: str, private: bool = False, api=None,
                           license_override: str | None = None, log=None) -> str:
    """Export `folder` and commit it to `main` of `repo_id`, tagged with the version. A version
    whose tag is already there is left alone: no new commit."""
    from pipeline.store import read_manifest
    from pipeline.hub_card import card_license

    log = log or (lambda line: None)
    manifest = read_manifest(Path(folder))
    card_license(manifest, license_override)  # a bad --license fails before the network
    api = api or default_api(repo_id)
    version = manifest["version"]
    if not private:
        for source in gated_inputs(api, manifest):
            log(f"warning: {source} is gated (its users accepted its conditions); this public repository "
                "would show its rows to anyone: consider --private")
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        tags = {ref.name for ref in api.list_repo_refs(repo_id, repo_type="dataset").tags}
        if version in tags:
            log(f"{repo_id} already has version {version} (tag {version}); nothing uploaded")
            return f"{repo_id}@{version}"
        _commit_version(api, repo_id, Path(folder), manifest, license_override, log)
    except UserError:
        raise
    except Exception as exc:  # auth, permissions, network, conflicts: the client raises many types
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"publishing to {repo_id} failed ({exc.__class__.__name__}: {first}); check that you are "
                        f"logged in (HF_TOKEN or `hf auth login`) with write access to that repository")
    return f"{repo_id}@{version}"

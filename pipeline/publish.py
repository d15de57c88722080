"""`pipeline publish`: upload a built version folder to a Hugging Face Hub dataset repository.

The folder goes up as it is on disk (datasets, manifest, card, rejects) under `<task>/<version>/`,
so several versions live side by side in one repository and a download is byte-identical to the
build. The token comes from the Hub client's usual places (`HF_TOKEN` or `hf auth login`); without one,
publish stops before it touches the network.
"""
from __future__ import annotations

import json
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


def publish_version_folder(folder: Path, repo_id: str, private: bool = False, api=None) -> str:
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise UserError(f"{folder}: not a version folder (no manifest.json); give OUT/<task>/<version> or OUT/<task>/latest")
    manifest = json.loads(manifest_path.read_text())
    if api is None:
        if not hub_token():
            raise UserError(f"no Hugging Face token to publish to {repo_id}: set HF_TOKEN or run `hf auth login`")
        if not hub_reachable():
            raise UserError(f"cannot reach the Hub to publish to {repo_id}; check the network (or HF_ENDPOINT)")
        from huggingface_hub import HfApi

        api = HfApi()
    target = f"{manifest['task']}/{manifest['version']}"
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder.resolve()), repo_id=repo_id, repo_type="dataset",
                          path_in_repo=target, commit_message=f"ictrain {target}")
    except Exception as exc:  # auth, permissions, network: the client raises many types
        raise UserError(f"publishing to {repo_id} failed ({exc.__class__.__name__}); check that you are "
                        f"logged in (HF_TOKEN or `hf auth login`) with write access to that repository")
    return f"{repo_id}/{target}"

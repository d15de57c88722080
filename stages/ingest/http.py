"""The few HTTP calls ingest makes (Hub API, Hub file downloads, OPUS archives), with bounds.

Plain `urllib` rather than the Hub client: every URL is built from an explicit endpoint, so tests
point them at a local stand-in server, and each failure maps to one sentence the user can act on.
Bodies are untrusted: JSON is size-capped, downloads are size-capped and land in a temp file that
is renamed into the cache only once complete, and a token is never sent to another host after a
redirect (the Hub redirects downloads to a CDN).
"""
from __future__ import annotations

import http.client
import json
import os
import uuid
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_JSON_BYTES = 32 << 20
USER_AGENT = "ictrain-ingest"


class HTTPFailure(Exception):
    """A request that did not succeed: `status` is the HTTP code, or 0 when no answer came."""

    def __init__(self, url: str, status: int, reason: str):
        super().__init__(f"{status or 'no answer'} from {url}: {reason}")
        self.url, self.status, self.reason = url, status, reason

    @property
    def summary(self) -> str:
        """What went wrong, for a one-line message: the status when it says something, else why."""
        return self.reason if self.status in (0, 200) else f"{self.status} {self.reason}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """For HEAD probes: a redirect is the answer (urllib would turn HEAD into a full GET)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _SameHostAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, keeping the token on the same host (the Hub's 307 for a renamed repo)
    and dropping it on any other (its CDN); refuse https -> http and non-http targets."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if new.scheme not in ("http", "https") or (old.scheme == "https" and new.scheme != "https"):
            raise HTTPFailure(req.full_url, code, f"refusing a redirect to {new.scheme}://{new.netloc}")
        request = super().redirect_request(req, fp, code, msg, headers, newurl)
        if request is not None and new.netloc != old.netloc:
            request.remove_header("Authorization")
        return request


@dataclass(frozen=True)
class HTTPClient:
    timeout: float = 30.0

    def _open(self, url: str, token: str | None, method: str = "GET", follow: bool = True):
        if urlsplit(url).scheme not in ("http", "https"):
            raise HTTPFailure(url, 0, "not an http(s) URL")
        request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        opener = urllib.request.build_opener(_SameHostAuthRedirect() if follow else _NoRedirect())
        try:
            return opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if not follow and 300 <= err.code < 400:
                return err  # the redirect itself is the answer; its headers describe the file
            err.close()
            raise HTTPFailure(url, err.code, str(err.reason)) from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise HTTPFailure(url, 0, str(reason)) from None

    def get_json(self, url: str, token: str | None = None) -> Any:
        with self._open(url, token) as response:
            body = response.read(MAX_JSON_BYTES + 1)
        if len(body) > MAX_JSON_BYTES:
            raise HTTPFailure(url, 200, f"answer larger than {MAX_JSON_BYTES >> 20} MB")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise HTTPFailure(url, 200, "answer is not JSON") from None

    def head(self, url: str, token: str | None = None) -> int | None:
        """Whether the file may be fetched, without fetching it: returns the size the server
        declares (the Hub gives an LFS file's size as X-Linked-Size on its redirect), or None."""
        with self._open(url, token, method="HEAD", follow=False) as response:
            length = response.headers.get("X-Linked-Size") or response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def download(self, url: str, target: Path, max_bytes: int, token: str | None = None,
                 progress=None, expected_size: int | None = None) -> Path:
        """Stream `url` into `target` (temp file, then rename); refuse more than `max_bytes`, and
        keep nothing unless every declared byte arrived (a cut-off transfer is not cached)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self._open(url, token) as response, open(tmp, "wb") as handle:
                declared = response.headers.get("Content-Length")
                received = self._copy(url, response, handle, max_bytes, progress)
            for size in (expected_size, int(declared) if declared and declared.isdigit() else None):
                if size is not None and size != received:
                    raise HTTPFailure(url, 200, f"got {received} of {size} bytes; the transfer was cut")
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        return target

    @staticmethod
    def _copy(url: str, response, handle, max_bytes: int, progress) -> int:
        received = 0
        try:
            while block := response.read(1 << 20):
                received += len(block)
                if received > max_bytes:
                    raise HTTPFailure(url, 200, f"more than {max_bytes} bytes; refusing the rest")
                handle.write(block)
                if progress is not None:
                    progress(len(block))
        except (http.client.HTTPException, TimeoutError, ConnectionError) as err:
            raise HTTPFailure(url, 0, f"transfer broke off ({err.__class__.__name__})") from None
        return received

"""OPUS corpora read from their Moses-format archives.

Some Hub datasets (EMEA, Tanzil) are loading scripts that merely download these archives; the
`datasets` library no longer runs scripts, so ictrain fetches the archive itself:
`<base>/OPUS-<corpus>/<version>/moses/<pair>.txt.zip`, a zip holding `<corpus>.<pair>.<lang>` for
both languages, one sentence per line, aligned by line. OPUS names the pair in alphabetical order
(`de-en`, `en-lt`), whichever side is the source. Archives are cached by content: the file is
stored under its sha256, and a small index maps the URL to it.
"""
from __future__ import annotations

import io
import os
import re
import uuid
import zipfile
from pathlib import Path
from typing import Iterator

from schemas.config import OpusSource
from schemas.errors import UserError
from stages.base import write_text_atomically
from stages.ingest.access import SourceAccess
from stages.ingest.http import HTTPClient, HTTPFailure
from stages.ingest.readers import Invalid, RawRow, file_fingerprint

MAX_ARCHIVE_BYTES = 4 << 30
MAX_LINE_CHARS = 100_000


def opus_label(spec: OpusSource) -> str:
    """How an OPUS source is named to the user and in the manifest."""
    return f"opus:{spec.corpus}/{spec.version}/{spec.pair}"


def archive_url(spec: OpusSource, access: SourceAccess) -> str:
    return f"{access.opus_url.rstrip('/')}/OPUS-{spec.corpus}/{spec.version}/moses/{spec.pair}.txt.zip"


def _index_path(spec: OpusSource, access: SourceAccess) -> Path:
    """One small file per archive naming its sha256: keyed by corpus, version and pair (not the
    mirror's URL), written atomically, so concurrent builds never lose each other's entries."""
    return access.download_dir / "opus" / "index" / f"{spec.corpus}-{spec.version}-{spec.pair}.sha256"


def _by_digest(access: SourceAccess, digest: str) -> Path:
    return access.download_dir / "opus" / "by-sha256" / f"{digest}.zip"


def cached_archive(spec: OpusSource, access: SourceAccess) -> Path | None:
    digest = spec.sha256
    if digest is None:
        index = _index_path(spec, access)
        digest = index.read_text(encoding="ascii").strip() if index.is_file() else ""
    path = _by_digest(access, digest) if re.fullmatch(r"[0-9a-f]{64}", digest or "") else None
    return path if path is not None and path.is_file() else None


def fetch_archive(spec: OpusSource, access: SourceAccess, progress=None, http: HTTPClient | None = None) -> Path:
    """The archive from the cache, downloaded there first when missing (and checked against its
    pinned sha256 when the YAML gives one)."""
    found = cached_archive(spec, access)
    if found is not None:
        return found
    url = archive_url(spec, access)
    folder = access.download_dir / "opus"
    try:
        tmp = (http or HTTPClient()).download(url, folder / f"download-{uuid.uuid4().hex}.zip",
                                              MAX_ARCHIVE_BYTES, None, progress)
    except HTTPFailure as err:
        raise _fetch_error(spec, url, err) from None
    digest = file_fingerprint(tmp)
    if spec.sha256 and digest != spec.sha256:
        tmp.unlink()
        raise UserError(f"{url}: the archive's sha256 is {digest}, not the pinned {spec.sha256}; OPUS changed "
                        "it: check the data and update `sha256` in the task YAML")
    final = _by_digest(access, digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)  # same content, same name: a concurrent download of it is harmless
    write_text_atomically(_index_path(spec, access), digest + "\n", encoding="ascii")
    return final


def _fetch_error(spec: OpusSource, url: str, err: HTTPFailure) -> UserError:
    if err.status == 404:
        return UserError(f"OPUS has no {spec.corpus} {spec.version} archive for {spec.pair} ({url}); check the "
                         "corpus name, version and language codes on the OPUS site")
    if err.status == 0:
        return UserError(f"cannot reach OPUS at {url} ({err.reason}); check the network or ICTRAIN_OPUS_URL, "
                         "or pass a local file instead")
    return UserError(f"OPUS answered {err.status} for {url}; retry later or pass a local file instead")


def check_opus(spec: OpusSource, access: SourceAccess, http: HTTPClient | None = None) -> dict:
    """Probe the archive without downloading it (a cached archive needs no network)."""
    found = cached_archive(spec, access)
    if found is not None:
        return {"files": 1, "bytes": found.stat().st_size, "cached": True, "sha256": found.stem}  # stored under its digest
    url = archive_url(spec, access)
    try:
        size = (http or HTTPClient()).head(url)
    except HTTPFailure as err:
        raise _fetch_error(spec, url, err) from None
    return {"files": 1, "bytes": size or 0, "cached": False}


def opus_rows(spec: OpusSource, access: SourceAccess, progress=None) -> Iterator[RawRow]:
    """Aligned line pairs of the archive, source side first whatever the pair's order."""
    path = fetch_archive(spec, access, progress)
    name = opus_label(spec)
    members = {lang: f"{spec.corpus}.{spec.pair}.{lang}" for lang in (spec.source_lang, spec.target_lang)}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        path.unlink(missing_ok=True)
        raise UserError(f"{name}: the downloaded archive is not a zip file (deleted it); rerun to fetch it again")
    with archive:
        present = set(archive.namelist())
        absent = [m for m in members.values() if m not in present]
        if absent:
            raise UserError(f"{name}: the archive lacks {absent[0]}; it holds {sorted(present)[:6]}; check "
                            "source_lang/target_lang (OPUS language codes) in the task YAML")
        with archive.open(members[spec.source_lang]) as src, archive.open(members[spec.target_lang]) as tgt:
            yield from _aligned(name, io.TextIOWrapper(src, "utf-8", errors="surrogateescape"),
                                io.TextIOWrapper(tgt, "utf-8", errors="surrogateescape"))


def _read_line(handle) -> tuple[str, bool]:
    """(line without its newline, too long); a line past MAX_LINE_CHARS is consumed and flagged."""
    text = handle.readline(MAX_LINE_CHARS)
    if len(text) < MAX_LINE_CHARS or text.endswith("\n"):
        return text, False
    while True:
        rest = handle.readline(MAX_LINE_CHARS)
        if not rest or rest.endswith("\n"):
            return "x\n", True


def _aligned(name: str, sources, targets) -> Iterator[RawRow]:
    line = 0
    while True:
        (source, long_source), (target, long_target) = _read_line(sources), _read_line(targets)
        if not source and not target:
            return
        line += 1
        if not source or not target:
            raise UserError(f"{name}: the two sides have different line counts (one ends at line {line}); "
                            "the archive is damaged: delete it from the source cache and rerun")
        if long_source or long_target:
            yield RawRow(name, line, Invalid(f"line longer than {MAX_LINE_CHARS} characters"), None)
            continue
        yield RawRow(name, line, source.rstrip("\n"), target.rstrip("\n"))

"""A local stand-in for the Hub API, Hub file downloads (with a CDN redirect) and OPUS archives.

It serves small fake copies of every source the built-in task YAMLs declare, laid out as the real
repos are (Europarl: one Parquet folder per alphabetical pair with a `translation` struct; Flores+:
gated, `devtest/<lang>.jsonl` per language config; Samanantar: `hi/`, `ta/` shards with
idx/src/tgt; IITB: `data/<split>-*.parquet` with no card configs; EMEA and Tanzil: loading
scripts only; OPUS: Moses zips), at the commits the YAMLs pin. It counts requests and records
whether a token reached the CDN host.
"""
from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

GOOD_TOKEN = "hf_test_good_token"
FLORES_CODES = {"en": "eng_Latn", "lt": "lit_Latn", "de": "deu_Latn", "hi": "hin_Deva", "ta": "tam_Taml"}


@dataclass
class FakeRepo:
    sha: str
    files: dict[str, bytes]
    configs: list[dict] = field(default_factory=list)
    gated: str | bool = False
    license: str | None = None


def sentences(lang: str, prefix: str, n: int) -> list[str]:
    words = ["river", "market", "school", "bridge", "doctor", "garden", "station", "letter", "winter"]
    return [f"{lang}:{prefix} {i} the {words[i % 9]} and the {words[(i * 5) % 9]} {i % 7}" for i in range(n)]


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def europarl(sha: str, pairs: list[str], rows: int = 240) -> FakeRepo:
    files, configs = {"README.md": b"europarl"}, []
    for pair in pairs:
        a, b = pair.split("-")
        table = pa.table({"translation": pa.array([{a: x, b: y} for x, y in zip(
            sentences(a, f"ep-{pair}", rows), sentences(b, f"ep-{pair}", rows))])})
        half = rows // 2
        files[f"{pair}/train-00000-of-00002.parquet"] = parquet_bytes(table.slice(0, half))
        files[f"{pair}/train-00001-of-00002.parquet"] = parquet_bytes(table.slice(half))
        configs.append({"config_name": pair, "data_files": [{"split": "train", "path": f"{pair}/train-*"}]})
    return FakeRepo(sha, files, configs)


def flores(sha: str, rows: int = 60) -> FakeRepo:
    files = {"README.md": b"flores", "convert_parquet_to_jsonl.py": b"# a helper script in the real repo"}
    configs = []
    for lang, code in FLORES_CODES.items():
        data_files = []
        for split, n in (("dev", rows // 2), ("devtest", rows)):
            lines = [json.dumps({"id": i, "iso_639_3": code[:3], "text": t})
                     for i, t in enumerate(sentences(lang, f"fl-{split}", n))]
            files[f"{split}/{code}.jsonl"] = ("\n".join(lines) + "\n").encode()
            data_files.append({"split": split, "path": f"{split}/{code}.jsonl"})
        configs.append({"config_name": code, "data_files": data_files})
    return FakeRepo(sha, files, configs, gated="auto", license="cc-by-sa-4.0")


def samanantar(sha: str, rows: int = 240) -> FakeRepo:
    files, configs = {"README.md": b"samanantar"}, []
    for lang in ("hi", "ta"):
        table = pa.table({"idx": list(range(rows)), "src": sentences("en", f"sa-{lang}", rows),
                          "tgt": sentences(lang, f"sa-{lang}", rows)})
        files[f"{lang}/train-00000-of-00001.parquet"] = parquet_bytes(table)
        configs.append({"config_name": lang, "data_files": [{"split": "train", "path": f"{lang}/train-*"}]})
    return FakeRepo(sha, files, configs, license="cc-by-nc-4.0")


def iitb(sha: str) -> FakeRepo:
    files = {"README.md": b"iitb"}
    for split, n in (("train", 100), ("validation", 20), ("test", 50)):
        table = pa.table({"translation": pa.array([{"en": x, "hi": y} for x, y in zip(
            sentences("en", f"ii-{split}", n), sentences("hi", f"ii-{split}", n))])})
        files[f"data/{split}-00000-of-00001.parquet"] = parquet_bytes(table)
    return FakeRepo(sha, files)  # no card configs: the Hub's default layout


def script_repo(sha: str, script: str) -> FakeRepo:
    return FakeRepo(sha, {"README.md": b"script dataset", script: b"# a datasets loading script"})


def opus_zip(corpus: str, pair: str, rows: int = 80) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for lang in pair.split("-"):
            text = "\n".join(sentences(lang, f"op-{corpus}-{pair}", rows)) + "\n"
            archive.writestr(f"{corpus}.{pair}.{lang}", text)
        archive.writestr("README", "OPUS")
    return sink.getvalue()


class HubState:
    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.opus: dict[str, bytes] = {}  # "OPUS-EMEA/v3/moses/en-lt.txt.zip" -> zip bytes
        self.requests: Counter = Counter()  # (kind, path) -> count
        self.cdn_authorization: list[str] = []  # Authorization headers that reached the CDN host
        self.cdn_base = ""
        self.renamed: dict[str, str] = {}  # old repo name -> new: answered with a same-host 307
        self.advertised_size: dict[str, int] = {}  # file name -> the (wrong) size the API claims
        self.lock = threading.Lock()

    def count(self, kind: str, path: str) -> None:
        with self.lock:
            self.requests[(kind, path)] += 1

    def downloads(self) -> int:
        return sum(n for (kind, _), n in self.requests.items() if kind in ("cdn-get", "opus-get"))


def _api_answer(repo: FakeRepo, name: str, sizes: dict[str, int]) -> dict:
    card = {"configs": repo.configs} if repo.configs else {}
    if repo.license:
        card["license"] = repo.license
    return {"id": name, "sha": repo.sha, "gated": repo.gated, "private": False, "cardData": card,
            "siblings": [{"rfilename": f, "size": sizes.get(f, len(b))} for f, b in repo.files.items()]}


def make_handler(state: HubState, role: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = unquote(urlsplit(self.path).path)
            if role == "cdn":
                return self._cdn(path)
            for old, new in state.renamed.items():
                for prefix in ("/api/datasets/", "/datasets/"):
                    if path.startswith(f"{prefix}{old}/"):
                        return self._send(307, b"", {"Location": prefix + new + path[len(prefix + old):]})
            if match := re.match(r"^/api/datasets/([^/]+/[^/]+)/revision/([^/]+)$", path):
                return self._api(*match.groups())
            if match := re.match(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path):
                return self._resolve(*match.groups())
            if path.startswith("/OPUS-") and path.lstrip("/") in state.opus:
                state.count("opus-" + self.command.lower(), path)
                return self._send(200, state.opus[path.lstrip("/")])
            return self._send(404, b'{"error": "not found"}')

        def _api(self, name: str, revision: str):
            state.count("api", name)
            repo = state.repos.get(name)
            if repo is None:
                return self._send(401, b'{"error": "Repository not found"}')
            if revision not in ("main", repo.sha):
                return self._send(404, b'{"error": "Invalid rev id"}')
            return self._send(200, json.dumps(_api_answer(repo, name, state.advertised_size)).encode(),
                              {"Content-Type": "application/json"})

        def _resolve(self, name: str, revision: str, filename: str):
            state.count("resolve-" + self.command.lower(), f"{name}/{filename}")
            repo = state.repos.get(name)
            if repo is None or revision != repo.sha or filename not in repo.files:
                return self._send(404)
            if repo.gated:
                auth = self.headers.get("Authorization")
                if not auth:
                    return self._send(401, b'{"error": "Access restricted, log in"}')
                if auth != f"Bearer {GOOD_TOKEN}":
                    return self._send(403, b'{"error": "Access to this gated repo is restricted"}')
            return self._send(302, b"", {"Location": f"{state.cdn_base}/cdn/{name}/{revision}/{filename}"})

        def _cdn(self, path: str):
            state.count("cdn-" + self.command.lower(), path)
            if self.headers.get("Authorization"):
                state.cdn_authorization.append(self.headers["Authorization"])
            match = re.match(r"^/cdn/([^/]+/[^/]+)/([^/]+)/(.+)$", path)
            repo = state.repos.get(match.group(1)) if match else None
            if repo is None or match.group(3) not in repo.files:
                return self._send(404)
            return self._send(200, repo.files[match.group(3)])

    return Handler


class FakeHub:
    """Two servers on 127.0.0.1: the Hub (API, resolve, OPUS paths) and its CDN."""

    def __init__(self, state: HubState):
        self.state = state
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "cdn"))
        state.cdn_base = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.closed = False
        for server in (self.hub, self.cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()

"""`pipeline serve`: the trained model behind an HTTP service that builds its prompts from the
example index, with the build's own retrieval and template, and takes new labelled pairs.

    POST /v1/complete  {"input"}            -> {"output", "examples", "prompt"}
    POST /v1/feedback  {"source", "target"} -> {"added", "duplicates", "rows"}, once durable
                       ({"input", "output"} is accepted too)
    GET  /healthz (or /health)              -> {"status": "ok", "rows"}

The upstream is any OpenAI-compatible `/v1/completions` server (vLLM, llama.cpp, an API); its
reply is untrusted: read up to a bound, validated, and any failure or timeout is a 502 with one
line saying what went wrong. Index work runs on worker threads, so a slow fsync or embedding never
stalls the event loop; the index's snapshots keep concurrent queries consistent with appends.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import UserError
from stages.index.index import ExampleIndex

UPSTREAM_BODY_LIMIT = 1 << 20  # bytes of an upstream reply read at most
OPEN_PATHS = ("/healthz", "/health")  # answered without the API key (load balancers probe them)


@dataclass(frozen=True)
class ServeSettings:
    upstream: str
    model: str = "default"
    api_key: str | None = None
    k: int = 4
    policy: str = "topk"
    max_tokens: int = 256
    timeout: float = 60.0
    max_body: int = 65536


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str = Field(min_length=1)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(validation_alias=AliasChoices("source", "input"))
    target: str = Field(validation_alias=AliasChoices("target", "output"))


class _Choice(BaseModel):
    text: str


class _Completion(BaseModel):
    choices: list[_Choice] = Field(min_length=1)


class UpstreamError(Exception):
    """The upstream failed; the message says how, for the 502 body."""


def completions_url(upstream: str) -> str:
    """`http://host:port`, `.../v1` or the full `.../v1/completions` all name the same endpoint."""
    base = upstream.rstrip("/")
    if base.endswith("/completions"):
        return base
    return base + ("/completions" if base.endswith("/v1") else "/v1/completions")


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


async def _body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """The request body as `model`, or an HTTP error carrying a one-line message."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _HTTPError(413, f"request body larger than {request.app[SETTINGS].max_body} bytes")
    try:
        return model.model_validate(json.loads(raw))
    except RecursionError:
        raise _HTTPError(400, "body is not JSON we take: nested too deeply")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _HTTPError(400, f"{where}: {first['msg']}")
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _HTTPError(400, f"body is not JSON: {exc}")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@web.middleware
async def _guard(request: web.Request, handler) -> web.StreamResponse:
    """API key (constant-time compare), then every failure as JSON {"error"}: a one-line 4xx/502
    for what the client or upstream did wrong, a bare 500 "internal error" (details on stderr)
    for anything else, never a traceback to the client."""
    try:
        key = request.app[SETTINGS].api_key
        if key and request.path not in OPEN_PATHS and not _key_matches(request.headers.get("Authorization", ""), key):
            return _error(401, "missing or wrong API key: send `Authorization: Bearer KEY`",
                          **{"WWW-Authenticate": "Bearer"})
        return await handler(request)
    except _HTTPError as exc:
        return _error(exc.status, str(exc))
    except UserError as exc:
        return _error(400, str(exc))
    except UpstreamError as exc:
        return _error(502, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except Exception:  # a bug: the client gets a fixed line, the operator the traceback
        print(f"internal error on {request.method} {request.path}:\n{traceback.format_exc()}",
              file=sys.stderr, flush=True)
        return _error(500, "internal error")


def _key_matches(given: str, key: str) -> bool:
    """Constant-time compare of the Authorization header with `Bearer KEY`. A header that is not
    text (bytes aiohttp kept as surrogates) is a wrong key, not a crash."""
    try:
        return hmac.compare_digest(given.encode("utf-8"), f"Bearer {key}".encode("utf-8"))
    except UnicodeEncodeError:
        return False


async def _in_thread(function, *args) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "rows": len(request.app[INDEX])})


async def complete(request: web.Request) -> web.Response:
    body = await _body(request, CompleteRequest)
    settings = request.app[SETTINGS]
    result = await _in_thread(request.app[INDEX].query, body.input, settings.k, settings.policy)
    output = await call_upstream(request.app[CLIENT], settings, result["prompt"])
    return web.json_response({"output": output, "examples": result["examples"], "prompt": result["prompt"]})


async def feedback(request: web.Request) -> web.Response:
    body = await _body(request, FeedbackRequest)
    report = await _in_thread(request.app[INDEX].add, [(body.source, body.target)])
    if report["rejected"]:
        raise _HTTPError(400, f"pair rejected: {report['rejected'][0]['reason']}")
    return web.json_response({key: report[key] for key in ("added", "duplicates", "rows")})


async def call_upstream(session: ClientSession, settings: ServeSettings, prompt: str) -> str:
    """The completion text for `prompt` (greedy, one line), or UpstreamError. The client gets a
    generic line; what the upstream said (its error body, its address) goes to stderr only."""
    payload = {"model": settings.model, "prompt": prompt, "max_tokens": settings.max_tokens,
               "temperature": 0, "stop": ["\n"]}
    try:
        async with session.post(completions_url(settings.upstream), json=payload) as reply:
            raw = await read_bounded(reply.content, UPSTREAM_BODY_LIMIT)
            if len(raw) > UPSTREAM_BODY_LIMIT:
                raise UpstreamError(f"upstream reply larger than {UPSTREAM_BODY_LIMIT} bytes")
            if reply.status != 200:
                _upstream_detail(f"HTTP {reply.status}: {raw[:2000].decode('utf-8', 'replace')!r}")
                raise UpstreamError(f"upstream failed: HTTP {reply.status}")
        return _Completion.model_validate_json(raw).choices[0].text.strip()
    except asyncio.TimeoutError:
        raise UpstreamError(f"upstream did not answer within {settings.timeout:g} s") from None
    except ClientError as exc:
        _upstream_detail(f"{type(exc).__name__}: {exc}")
        raise UpstreamError("upstream unreachable") from None
    except ValidationError:
        raise UpstreamError("upstream reply is not an OpenAI completions response (no choices[0].text)") from None


async def read_bounded(content, limit: int) -> bytes:
    """The whole body up to EOF, or its first `limit + 1` bytes when it is longer. Why a loop:
    one `read(n)` returns what has arrived so far, so a reply sent in pieces would be cut."""
    chunks, size = [], 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _upstream_detail(detail: str) -> None:
    print(f"upstream error: {detail}", file=sys.stderr, flush=True)


INDEX = web.AppKey("index", ExampleIndex)
SETTINGS = web.AppKey("settings", ServeSettings)
CLIENT = web.AppKey("client", ClientSession)


def make_app(index: ExampleIndex, settings: ServeSettings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body, middlewares=[_guard])
    app[INDEX], app[SETTINGS] = index, settings

    async def client(app: web.Application):
        async with ClientSession(timeout=ClientTimeout(total=settings.timeout)) as session:
            app[CLIENT] = session
            yield

    app.cleanup_ctx.append(client)
    for path in OPEN_PATHS:
        app.router.add_get(path, health)
    app.router.add_post("/v1/complete", complete)
    app.router.add_post("/v1/feedback", feedback)
    return app


async def run_app(app: web.Application, host: str, port: int, banner: str) -> None:
    """Serve `app` until SIGTERM or SIGINT. Once listening, prints `banner` and the address with
    the bound port (`--port 0` takes any free one) as one line on standard output."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        print(f"{banner} on http://{host}:{runner.addresses[0][1]}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _api_key(args) -> str | None:
    if not args.api_key_file:
        return args.api_key
    if args.api_key:
        raise UserError("give --api-key or --api-key-file, not both")
    try:
        lines = Path(args.api_key_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--api-key-file {args.api_key_file}: cannot read a key from it ({exc})")
    if not lines:
        raise UserError(f"--api-key-file {args.api_key_file}: the file is empty; write the key on its first line")
    key = lines[0].strip()
    if not key:
        raise UserError(f"--api-key-file {args.api_key_file}: its first line is empty; write the key there")
    return key


def cmd_serve(args) -> int:
    from pipeline.index import open_index

    settings = ServeSettings(upstream=args.upstream, model=args.model, api_key=_api_key(args), k=args.k,
                             policy=args.policy, max_tokens=args.max_tokens, timeout=args.timeout,
                             max_body=args.max_body)
    if not settings.upstream.startswith(("http://", "https://")):
        raise UserError(f"--upstream {settings.upstream!r}: give an http:// or https:// URL")
    index = open_index(Path(args.index), writable=True, threads=args.threads, cache_dir=args.cache_dir)
    try:
        asyncio.run(run_app(make_app(index, settings), args.host, args.port, f"serving {len(index)} examples"))
    finally:
        index.close()
    print("stopped", file=sys.stderr)
    return 0

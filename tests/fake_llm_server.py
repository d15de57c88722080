"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI chat-completions API and the
Gemini generateContent API for the real SDKs, with fault injection, for tests and the bench.

It answers a paraphrase prompt deterministically (the same request always gets the same answer),
counts every request and every source it was asked about, and can misbehave on demand:
request-level faults are queued (`state.faults.append("429")`), item-level ones are markers inside
a source text ("[short]", "[missing]", "[same]", "[german]", "[empty]"). To an utterance of the
semantic-parsing prompt, the second paraphrase drops the first slot value to keep.
Run as a script (`python tests/fake_llm_server.py --latency 0.05`) it prints its port and serves
until killed; the bench uses it that way so the server does not share a process with the client.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
from collections import Counter, deque

PREFIXES = ["In other words, ", "Put differently, ", "That is to say, ", "To put it another way, ",
            "Stated otherwise, ", "Said another way, ", "Expressed differently, ", "Phrased otherwise, "]
FAULTS = {"429", "500", "400", "401", "slow", "truncated", "invalid", "short", "drop", "cut"}


class ServerState:
    def __init__(self, latency: float = 0.0, slow_seconds: float = 1.0, retry_after: str = "0"):
        self.lock = threading.Lock()
        self.latency, self.slow_seconds, self.retry_after = latency, slow_seconds, retry_after
        self.faults: deque[str] = deque()
        self.always: set[str] = set()  # faults applied to every request
        self.echo_key = False  # put the caller's credentials into error bodies (a leak test)
        self.requests = 0
        self.sources: Counter = Counter()  # source text -> how often it was asked for
        self.request_times: list[tuple[float, str]] = []  # (monotonic time, fault or "ok")
        self.bodies: deque[dict] = deque(maxlen=20)  # the latest request bodies

    def admit(self, sources: list[str], body: dict | None = None) -> str | None:
        with self.lock:
            self.bodies.append(body or {})
            fault = self.faults.popleft() if self.faults else next(iter(sorted(self.always)), None)
            self.requests += 1
            self.sources.update(sources)
            self.request_times.append((time.monotonic(), fault or "ok"))
            return fault


def parse_prompt(prompt: str) -> tuple[int, list[dict]]:
    match = re.search(r"exactly (\d+) ", prompt)
    n = int(match.group(1)) if match else 5
    return n, json.loads(prompt[prompt.rindex("\n[") + 1:])


def source_text(row: dict) -> str:
    if "sentence" in row:
        return row["sentence"]
    if "utterance" in row:
        return row["utterance"]
    return json.dumps({"question": row["question"], "sql": row["sql"]}, ensure_ascii=False, sort_keys=True)


def _variant(row: dict, i: int):
    if "sql" in row:
        bump = lambda m: str(int(m.group(0)) + i + 1)  # noqa: E731
        return {"question": PREFIXES[i % len(PREFIXES)] + re.sub(r"\d+", bump, row["question"]),
                "sql": re.sub(r"\d+", bump, row["sql"])}
    if "utterance" in row:  # semantic parsing: the second paraphrase loses the first slot value
        utterance = row["utterance"]
        if i == 1 and row["keep"]:
            return "Bitte: " + utterance.replace(row["keep"][0], "etwas", 1)
        return ["Bitte", "Hallo", "Also", "Jetzt", "Schnell"][i % 5] + f": {utterance}"
    sentence = row["sentence"]
    if i == 0 and "[same]" in sentence:
        return sentence
    if i == 0 and "[german]" in sentence:
        return "Das ist nicht der Fall, und wir sind auch dafür."
    if i == 0 and "[empty]" in sentence:
        return ""
    prefix = PREFIXES[i % len(PREFIXES)] + (f"(take {i // len(PREFIXES)}) " if i >= len(PREFIXES) else "")
    return prefix + sentence[:1].lower() + sentence[1:]


def answer(prompt: str, short: bool = False) -> str:
    n, rows = parse_prompt(prompt)
    items = []
    for row in rows:
        text = source_text(row)
        if "[missing]" in text:
            continue
        count = max(0, n - 2) if ("[short]" in text or short) else n
        items.append({"id": row["id"], "paraphrases": [_variant(row, i) for i in range(count)]})
    return json.dumps({"items": items}, ensure_ascii=False)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error"}


async def _serve_connection(state: ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 with keep-alive, just enough for httpx-based SDK clients (Content-Length bodies)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:  # no Nagle: no 40 ms delayed-ACK stalls between small writes
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if not await _respond(state, path, headers, body, writer):
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _respond(state: ServerState, path: str, headers: dict, body: bytes, writer: asyncio.StreamWriter) -> bool:
    """Answer one request; False when the connection must close afterwards."""
    request = json.loads(body or b"{}")
    api = "openai" if path.endswith("/chat/completions") else "gemini" if ":generateContent" in path else None
    if api is None:
        return await _send(writer, 404, {"error": {"code": 404, "message": f"no route {path}"}})
    prompt = request["messages"][-1]["content"] if api == "openai" else request["contents"][0]["parts"][0]["text"]
    fault = state.admit([source_text(r) for r in parse_prompt(prompt)[1]], request)
    if state.latency:
        await asyncio.sleep(state.latency)
    if fault in ("429", "500", "400", "401"):
        return await _send(writer, *_error(state, api, int(fault), headers))
    if fault == "drop":
        return False
    if fault == "slow":
        await asyncio.sleep(state.slow_seconds)
    content = answer(prompt, short=fault == "short")
    if fault == "truncated":
        content = content[: len(content) // 2]
    elif fault == "invalid":
        content = "Sure! Here are some paraphrases: one, two, three."
    model = request.get("model") or path.split("/models/")[-1].split(":")[0]
    return await _send(writer, 200, _wrap(api, model, prompt, content), cut=fault == "cut")


def _error(state: ServerState, api: str, status: int, headers: dict) -> tuple[int, dict, dict]:
    seen = (headers.get("authorization") or headers.get("x-goog-api-key") or "") if state.echo_key else ""
    message = f"fake error {status}" + (f"; credentials seen: {seen}" if seen else "")
    if api == "openai":
        payload = {"error": {"message": message, "type": "fake", "code": str(status)}}
    else:
        status_name = {429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED"}.get(status, "INTERNAL")
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{state.retry_after}s"}]
        payload = {"error": {"code": status, "message": message, "status": status_name,
                             **({"details": details} if status == 429 else {})}}
    return status, payload, ({"Retry-After": state.retry_after} if status == 429 else {})


async def _send(writer: asyncio.StreamWriter, status: int, payload: dict, extra: dict | None = None,
                cut: bool = False) -> bool:
    data = json.dumps(payload).encode("utf-8")
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/json",
             f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in (extra or {}).items())]
    message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
    try:
        writer.write(message[: len(message) - len(data) // 2] if cut else message)
        await writer.drain()
    except ConnectionError:
        return False
    return not cut


def _wrap(api: str, model: str, prompt: str, content: str) -> dict:
    tokens_in, tokens_out = len(prompt) // 4, max(1, len(content) // 4)
    if api == "openai":
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                          "total_tokens": tokens_in + tokens_out}}
    return {"candidates": [{"content": {"parts": [{"text": content}], "role": "model"}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                              "totalTokenCount": tokens_in + tokens_out}, "modelVersion": model}


async def _start(state: ServerState, port: int = 0) -> asyncio.base_events.Server:
    return await asyncio.start_server(lambda r, w: _serve_connection(state, r, w), "127.0.0.1", port, backlog=512)


class FakeLLMServer:
    """The server on its own event loop in a background thread:
    `with FakeLLMServer() as server: server.openai_url ...`."""

    def __init__(self, **state_args):
        self.state = ServerState(**state_args)
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(_start(self.state))
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="fake OpenAI/Gemini paraphrase server")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()

    async def serve() -> None:
        server = await _start(ServerState(latency=args.latency))
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()

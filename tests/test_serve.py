"""`pipeline serve` as a real process on a free localhost port, against a real local fake
upstream (a tiny OpenAI-compatible completions server in this process)."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from pipeline.index import create_index, open_index

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key"


class FakeUpstream(BaseHTTPRequestHandler):
    """/v1/completions: answers " <last input line reversed>"; `mode` misbehaves on demand."""

    mode = "ok"
    prompts: list[str] = []

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).prompts.append(body["prompt"])
        mode = type(self).mode
        if mode == "slow":
            time.sleep(3)
        if mode == "500":
            return self._send(500, b'{"error": "boom"}')
        if mode == "garbage":
            return self._send(200, b'{"choices": "nope"}')
        source = body["prompt"].rsplit("Input: ", 1)[-1].split("\n", 1)[0]
        assert body["temperature"] == 0 and body["stop"] == ["\n"] and self.path == "/v1/completions"
        self._send(200, json.dumps({"choices": [{"text": " " + source[::-1]}]}).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except BrokenPipeError:  # the slow mode's caller gave up, as it should
            pass

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def upstream():
    ThreadingHTTPServer.request_queue_size = 128  # the default 5 drops connections under 8 clients
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def index_copy(align_synth_version, tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp() / "serve-index"
    if not base.exists():
        create_index(align_synth_version, base)
    folder = tmp_path_factory.mktemp("served") / "idx"
    shutil.copytree(base, folder)
    return folder


def start_server(index: Path, upstream: str, *extra: str, timeout: str = "1") -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--index", str(index), "--upstream",
                             upstream, "--port", "0", "--timeout", timeout, "--max-body", "2000", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "serving" in line, proc.stderr.read()
    return proc, line.strip().rsplit(" ", 1)[-1]


@pytest.fixture
def server(index_copy, upstream):
    proc, url = start_server(index_copy, upstream, "--api-key", KEY)
    yield url, index_copy
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def call(url: str, path: str, body: bytes | dict | None = None, key: str | None = KEY) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_complete_renders_the_index_prompt_and_feedback_is_seen_next(server):
    url, folder = server
    status, answer = call(url, "/v1/complete", {"input": "A B C D E"})
    assert status == 200 and answer["output"] == "E D C B A"
    assert answer["prompt"] == open_index(folder).query("A B C D E")["prompt"] == FakeUpstream.prompts[-1]
    assert len(answer["examples"]) == 4
    status, ack = call(url, "/v1/feedback", {"source": "A B C D E F", "target": "fresh label"})
    assert status == 200 and ack["added"] == 1
    status, answer = call(url, "/v1/complete", {"input": "A B C D E"})
    assert "fresh label" in [e["target"] for e in answer["examples"]]
    assert call(url, "/v1/feedback", {"input": "A B C D E F", "output": "fresh label"})[1]["duplicates"] == 1


def test_bad_requests_get_a_status_and_a_message(server):
    url, _ = server
    assert call(url, "/healthz", key=None)[0] == 200
    assert call(url, "/v1/complete", {"input": "A B"}, key=None)[0] == 401
    assert call(url, "/v1/complete", {"input": "A B"}, key="wrong")[0] == 401
    status, answer = call(url, "/v1/complete", b"{not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = call(url, "/v1/feedback", {"source": "A B"})
    assert status == 400 and "target" in answer["error"]
    status, answer = call(url, "/v1/feedback", {"source": "A B", "target": "   "})
    assert status == 400 and "empty target" in answer["error"]
    status, answer = call(url, "/v1/complete", {"input": "A " * 2000})
    assert status == 413 and "larger than 2000 bytes" in answer["error"]


@pytest.mark.parametrize("mode, message", [("500", "HTTP 500"), ("garbage", "not an OpenAI completions"),
                                           ("slow", "within 1 s")])
def test_an_upstream_failure_is_a_502_never_a_hang(server, mode, message):
    url, _ = server
    FakeUpstream.mode = mode
    try:
        started = time.monotonic()
        status, answer = call(url, "/v1/complete", {"input": "A B C"})
    finally:
        FakeUpstream.mode = "ok"
    assert status == 502 and message in answer["error"] and time.monotonic() - started < 2.5


def test_the_api_key_can_come_from_a_file(index_copy, upstream, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    proc, url = start_server(index_copy, upstream, "--api-key-file", str(key_file))
    try:
        assert call(url, "/v1/complete", {"input": "A B C"}, key="from-a-file")[0] == 200
        assert call(url, "/v1/complete", {"input": "A B C"}, key=KEY)[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_acknowledged_feedback_survives_sigkill(index_copy, upstream):
    proc, url = start_server(index_copy, upstream)
    pairs = [(f"K L M {i}", f"label {i}") for i in range(20)]
    for source, target in pairs:
        assert call(url, "/v1/feedback", {"source": source, "target": target}, key=None)[0] == 200
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reopened = open_index(index_copy)
    assert all(reopened.contains(source, target) for source, target in pairs)


def test_eight_clients_thousand_mixed_requests(index_copy, upstream):
    proc, url = start_server(index_copy, upstream, timeout="20")  # a loaded machine must not fail it
    rng = np.random.default_rng(0)
    letters = list("ABCDEFGHIJKLMNOPQRSTUVWXY")
    jobs = [("feedback" if rng.random() < 0.3 else "complete", " ".join(rng.choice(letters, 6, replace=False)), i)
            for i in range(1000)]

    def run(job):
        kind, source, i = job
        body = {"source": source, "target": f"label {i}"} if kind == "feedback" else {"input": source}
        started = time.perf_counter()
        status, answer = call(url, f"/v1/{kind}", body, key=None)
        return kind, source, i, status, time.perf_counter() - started

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(run, jobs))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert [r for r in results if r[3] != 200] == []
    latency = np.array([r[4] for r in results]) * 1000
    print(f"\n1000 requests, 8 clients: p50 {np.percentile(latency, 50):.1f} ms, p99 {np.percentile(latency, 99):.1f} ms")
    reopened = open_index(index_copy)
    acked = [(source, f"label {i}") for kind, source, i, status, _ in results if kind == "feedback"]
    assert acked and all(reopened.contains(source, target) for source, target in acked)

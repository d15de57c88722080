"""`pipeline serve` against hostile clients and misbehaving upstreams, in process: every failure is
one JSON line with a 4xx/5xx status, internal details go to stderr only, and a valid reply that
arrives in pieces is read whole."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.index import create_index, open_index
from pipeline.serve import ServeSettings, make_app
from tests.conftest import run_pipeline

KEY = "guard-key"
SECRET = "db-7.internal:5432 stack trace"


class PieceUpstream(BaseHTTPRequestHandler):
    """`split`: a valid reply whose body comes in two writes 50 ms apart; `500`: an error whose
    body holds internal details."""

    mode = "split"

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = (500, json.dumps({"error": SECRET}).encode()) if self.mode == "500" else \
            (200, json.dumps({"choices": [{"text": " " + "x" * 3000 + " done"}]}).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:100])
        self.wfile.flush()
        time.sleep(0.05)
        self.wfile.write(body[100:])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PieceUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def index(align_synth_version, tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard") / "idx"
    shutil.copytree(create_index(align_synth_version, tmp_path_factory.mktemp("guard-base") / "idx"), folder)
    index = open_index(folder, writable=True)
    yield index
    index.close()


def ask(index, upstream: str, body: bytes, path: str = "/v1/complete", auth: bytes = b"Bearer " + KEY.encode()):
    """(status, JSON answer) of one raw HTTP/1.1 request to a fresh in-process server."""
    settings = ServeSettings(upstream=upstream, api_key=KEY, timeout=5, max_body=2000)

    async def run():
        async with TestClient(TestServer(make_app(index, settings))) as client:
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (path.encode(), auth, len(body), body))
            reply = await reader.read()
            writer.close()
            head, _, payload = reply.partition(b"\r\n\r\n")
            return int(head.split()[1]), json.loads(payload)

    return asyncio.run(run())


def test_an_upstream_reply_in_two_pieces_is_read_whole(index, upstream):
    PieceUpstream.mode = "split"
    status, answer = ask(index, upstream, b'{"input": "A B C"}')
    assert status == 200 and answer["output"].endswith(" done")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_upstream_failures_tell_the_client_little_and_stderr_all(index, upstream, capsys):
    PieceUpstream.mode = "500"
    try:
        status, answer = ask(index, upstream, b'{"input": "A B C"}')
    finally:
        PieceUpstream.mode = "split"
    assert (status, answer) == (502, {"error": "upstream failed: HTTP 500"})
    port = _closed_port()
    status, answer = ask(index, f"http://127.0.0.1:{port}", b'{"input": "A B C"}')
    assert (status, answer) == (502, {"error": "upstream unreachable"})
    err = capsys.readouterr().err
    assert SECRET in err and str(port) in err


@pytest.mark.parametrize("path, body, message", [
    ("/v1/complete", b'{"input": "A \\ud800 B"}', "unicode"),  # lone surrogates
    ("/v1/complete", b'{"input": "A \\udcff B"}', "unicode"),
    ("/v1/feedback", b'{"source": "A \\ud800", "target": "b"}', "undecodable"),  # ingest's reason
    ("/v1/feedback", b'{"source": "A", "target": "\\udfff"}', "undecodable"),
    ("/v1/complete", b"[" * 1990, "nested too deeply"),
])
def test_untrusted_bodies_get_a_one_line_400(index, upstream, path, body, message):
    status, answer = ask(index, upstream, body, path)
    assert status == 400 and message in answer["error"].lower() and "\n" not in answer["error"]


def test_a_non_utf8_authorization_header_is_a_wrong_key(index, upstream):
    assert ask(index, upstream, b'{"input": "A B C"}', auth=b"Bearer \xff\xfe")[0] == 401


class _BrokenIndex:
    def __len__(self) -> int:
        return 0

    def query(self, *args):
        raise RuntimeError(SECRET)


def test_a_bug_is_a_json_500_with_the_details_on_stderr(upstream, capsys):
    status, answer = ask(_BrokenIndex(), upstream, b'{"input": "A B C"}')
    assert (status, answer) == (500, {"error": "internal error"})
    assert SECRET in capsys.readouterr().err


def test_an_empty_api_key_file_says_so(tmp_path):
    empty = tmp_path / "key"
    empty.write_text("")
    code, _, err = run_pipeline("serve", "--index", str(tmp_path), "--upstream", "http://127.0.0.1:1",
                                "--api-key-file", str(empty))
    assert code == 2 and "the file is empty" in err and "index out of range" not in err

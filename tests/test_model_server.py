"""End to end with a real model upstream: trainer/model_server.py (a tiny random Llama) behind
`pipeline serve`, both real processes on free localhost ports."""
from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest_trainer import write_tiny_model
from tests.test_serve import ROOT, call, index_copy, start_server  # noqa: F401 (index_copy: a fixture)


def test_pipeline_serve_answers_from_the_model_server(index_copy, tmp_path):
    from pipeline.index import open_index

    prompts = [open_index(index_copy).query(source)["prompt"] for source in ("A B C D E", "F G H I J")]
    model = write_tiny_model(tmp_path / "model", prompts * 20)
    upstream = subprocess.Popen([sys.executable, "trainer/model_server.py", "--model", str(model), "--port", "0",
                                 "--device", "cpu", "--threads", "1", "--max-new-tokens", "8"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = upstream.stdout.readline()
        assert "serving ictrain" in line, upstream.stderr.read()
        model_url = line.strip().rsplit(" ", 1)[-1]
        status, reply = call(model_url, "/v1/completions", {"prompt": prompts[0], "max_tokens": 4}, key=None)
        assert status == 200 and reply["choices"][0]["text"].startswith(" ")
        assert call(model_url, "/v1/completions", {"max_tokens": 4}, key=None)[0] == 400
        proc, url = start_server(index_copy, model_url, timeout="60")
        try:
            status, answer = call(url, "/v1/complete", {"input": "A B C D E"}, key=None)
            assert status == 200 and answer["prompt"] == prompts[0] and isinstance(answer["output"], str)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(timeout=30)

"""LLM paraphrase backends against a real local HTTP server speaking the OpenAI and Gemini APIs
(tests/fake_llm_server.py), driven through the real SDKs, with injected faults."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import UserError
from stages.paraphrase.base import BackendContext, make_backend
from stages.paraphrase.llm.cache import AnswerCache
from stages.paraphrase.llm.prompts import MalformedAnswer, load_template, parse_answer
from stages.paraphrase.quality import filter_paraphrases

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_llm_server import FakeLLMServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-test-LEAKCHECK-8f3a9c2e71"
SOURCES = [f"The committee met on day {i} and discussed the budget at length." for i in range(12)]


@pytest.fixture(autouse=True)
def fake_keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)


@pytest.fixture
def server():
    # a slow response outlasts the client's timeout by a wide margin, and a normal one stays far
    # inside it even on a loaded machine
    with FakeLLMServer(slow_seconds=3.0) as running:
        yield running


def make(name, server, cache_dir, embed=None, task_kind="mt", **options):
    context = BackendContext(task_kind=task_kind, source_lang="English", target_lang="German",
                             cache_dir=Path(cache_dir), progress=False, embed=embed)
    base = server.openai_url if name == "openai" else server.url
    opts = {"model": "fake-model", "base_url": base, "timeout": 1.5, "backoff": 0.01, "backoff_max": 0.05,
            "max_retries": 4, "concurrency": 4, "batch_size": 3, **options}
    backend = make_backend(name, opts, context)
    backend.check_ready()
    return backend


def assert_accounted(out, sources):
    """Every item ends with paraphrases or a recorded failure, never both, never neither."""
    answered = sum(1 for p in out.paraphrases if p)
    assert len(out.paraphrases) == len(sources)
    assert answered + sum(out.failures.values()) == len(sources)
    assert out.counters["failures"] == sum(out.failures.values())


@pytest.mark.parametrize("name", ["openai", "gemini"])
def test_faults_end_in_paraphrases_or_recorded_failures(name, server, tmp_path):
    server.state.faults.extend(["429", "500", "slow", "truncated", "invalid", "drop", "cut", "short"])
    sources = SOURCES + ["A bird [short] sang.", "A cat [missing] slept."]
    out = make(name, server, tmp_path).paraphrase(sources, 5)
    assert_accounted(out, sources)
    assert all(len(p) == 5 for p in out.paraphrases[:len(SOURCES)])
    assert out.failures == {"short response": 1, "missing from response": 1}
    errors = out.counters["request_errors"]
    for reason in ("rate limited (429)", "server error (500)", "timeout", "malformed response", "connection error"):
        assert errors.get(reason), (reason, errors)
    assert out.counters["retries"] >= 8 and out.counters["tokens_in"] > 0 and out.counters["retryable_failures"] == 2


def test_rerun_requests_nothing_and_gives_the_same_output(server, tmp_path):
    first = make("openai", server, tmp_path).paraphrase(SOURCES, 3)
    requests = server.state.requests
    assert set(server.state.sources.values()) == {1}  # each source asked exactly once
    second = make("openai", server, tmp_path).paraphrase(SOURCES + SOURCES[:2], 3)  # duplicates too
    assert server.state.requests == requests
    assert second.paraphrases[:len(SOURCES)] == first.paraphrases
    assert second.counters["requests"] == 0 and second.counters["cache_hits"] == len(SOURCES) + 2


def test_retry_after_is_honoured_and_the_cooldown_holds_every_worker(server, tmp_path):
    server.state.retry_after = "0.4"
    server.state.faults.append("429")
    out = make("openai", server, tmp_path, batch_size=1, concurrency=4).paraphrase(SOURCES[:8], 2)
    assert_accounted(out, SOURCES[:8])
    assert out.failures == {}
    times = server.state.request_times
    limited = next(t for t, fault in times if fault == "429")
    assert not [t for t, _ in times if limited + 0.05 < t < limited + 0.38]  # nobody stormed in


def test_budget_stop_keeps_work_and_a_rerun_finishes_to_the_same_result(server, tmp_path):
    reference = make("openai", server, tmp_path / "reference").paraphrase(SOURCES, 3)
    server.state.sources.clear()
    priced = dict(price_in=1000.0, price_out=1000.0, concurrency=1, batch_size=2)  # ~$0.6 a request
    stopped = make("openai", server, tmp_path / "run", max_cost=2.0, **priced).paraphrase(SOURCES, 3)
    assert stopped.counters["budget_exhausted"] is True
    assert 0 < stopped.failures["budget"] < len(SOURCES)
    assert stopped.counters["cost_usd"] <= 2.0
    assert_accounted(stopped, SOURCES)
    resumed = make("openai", server, tmp_path / "run", max_cost=100.0, **priced).paraphrase(SOURCES, 3)
    assert resumed.counters["budget_exhausted"] is False
    assert resumed.paraphrases == reference.paraphrases
    assert set(server.state.sources.values()) == {1}  # nothing paid for twice


def test_a_killed_run_resumes_asking_only_for_what_is_missing(tmp_path):
    sources = [f"Item number {i} was approved by the board without a vote." for i in range(40)]
    with FakeLLMServer(latency=0.05) as server:
        reference = make("openai", server, tmp_path / "reference", batch_size=2).paraphrase(sources, 3)
        server.state.sources.clear()
        options = {"model": "fake-model", "base_url": server.openai_url, "concurrency": 2, "batch_size": 2}
        script = ("import json, sys; from pathlib import Path\n"
                  "from stages.paraphrase.base import BackendContext, make_backend\n"
                  "ctx = BackendContext('mt', 'English', 'German', Path(sys.argv[1]), progress=False)\n"
                  "b = make_backend('openai', json.loads(sys.argv[2]), ctx); b.check_ready()\n"
                  "b.paraphrase(json.loads(sys.argv[3]), 3)\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run"), json.dumps(options),
                                  json.dumps(sources)], env=env)
        # kill once a few answers are committed (not after N requests: under load the writer
        # thread may not have committed any yet), long before all 40 are done
        deadline, store = time.monotonic() + 60, tmp_path / "run" / "paraphrase" / "answers.sqlite"
        while child.poll() is None and time.monotonic() < deadline and _committed(store) < 4:
            time.sleep(0.005)
        child.kill()
        child.wait()
        with AnswerCache(tmp_path / "run" / "paraphrase") as cache:
            kept = cache.count()
        assert 0 < kept < len(sources)
        asked_before = sum(server.state.sources.values())
        resumed = make("openai", server, tmp_path / "run", batch_size=2).paraphrase(sources, 3)
        asked_after = sum(server.state.sources.values()) - asked_before
    assert resumed.paraphrases == reference.paraphrases
    assert resumed.counters["cache_hits"] == kept
    assert asked_after == len(sources) - kept


def _committed(store: Path) -> int:
    """Rows a running writer has committed, read without creating or locking the file."""
    if not store.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0.1)) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet, or briefly locked
        return 0


@pytest.mark.parametrize("name", ["openai", "gemini"])
def test_the_key_never_reaches_a_file_a_log_or_an_error(name, server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.state.echo_key = True  # the server puts the credentials it saw into its error bodies
    server.state.faults.extend(["500", "429"])
    backend = make(name, server, tmp_path)
    out = backend.paraphrase(SOURCES[:4], 2)
    server.state.always.add("400")
    with pytest.raises(UserError) as refused:
        backend.paraphrase(SOURCES[4:8], 2)
    assert "refused the request (400)" in str(refused.value)
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert written and FAKE_KEY.encode() not in written
    for text in (caplog.text, str(refused.value), json.dumps(backend.identity()), json.dumps(out.counters),
                 json.dumps(dict(out.failures)), json.dumps(backend.estimate(SOURCES, 2))):
        assert FAKE_KEY not in text


def test_quality_filter_counts_drop_reasons(server, tmp_path):
    sources = ["We [same] agreed to meet again on Monday.", "We [german] agreed to meet again on Monday.",
               "We [empty] agreed to meet again on Monday."] + SOURCES[:2]
    out = make("openai", server, tmp_path).paraphrase(sources, 3)
    assert out.dropped == {"identical to source": 1, "different language": 1, "empty": 1}
    assert [len(p) for p in out.paraphrases] == [2, 2, 2, 3, 3]

    def embed(texts):  # cosine 1 for the source itself, 0.8 for its first paraphrase, 0.4 after
        rows = []
        for text in texts:
            angle = 0.0 if text.startswith("Near") else 0.6435 if text.startswith("Close") else 1.1593
            rows.append([np.cos(angle), np.sin(angle)])
        return np.asarray(rows, dtype=np.float32)

    kept, dropped = filter_paraphrases(["Near source text here."], [["Close one here.", "Far one here."]], 5,
                                       embed=embed, cos_band=(0.5, 0.98))
    assert kept == [["Close one here."]] and dropped == {"cosine below band": 1}
    kept, dropped = filter_paraphrases(["Near source text here."], [["Close one here."]], 5,
                                       embed=embed, cos_band=(0.1, 0.7))
    assert kept == [[]] and dropped == {"cosine above band": 1}


def test_sql_prompt_changes_literals_and_keeps_the_query_shape(server, tmp_path):
    pair = json.dumps({"question": "How many orders did customer 42 place?",
                       "sql": "SELECT COUNT(*) FROM orders WHERE customer_id = 42"})
    out = make("openai", server, tmp_path, task_kind="sql").paraphrase([pair], 2)
    assert "Give exactly 2 new pairs" in server.state.bodies[-1]["messages"][0]["content"]
    first = json.loads(out.paraphrases[0][0])
    assert first["sql"] == "SELECT COUNT(*) FROM orders WHERE customer_id = 43" and "43" in first["question"]


def test_missing_key_or_unreachable_server_fails_before_any_work(server, tmp_path, monkeypatch):
    context = BackendContext("mt", "English", "German", tmp_path, progress=False)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        make_backend("openai", {}, context).check_ready()
    with pytest.raises(UserError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make_backend("gemini", {"base_url": server.url}, context).check_ready()
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    with pytest.raises(UserError, match="cannot reach http://127.0.0.1:9"):
        make_backend("openai", {"model": "m", "base_url": closed}, context).check_ready()
    with pytest.raises(UserError, match="reasoning model"):
        make_backend("openai", {"model": "o3-mini", "temperature": 0.7, "base_url": server.openai_url},
                     context).check_ready()
    with pytest.raises(UserError, match="price_in"):
        make_backend("openai", {"model": "local-qwen", "max_cost": 5, "base_url": server.openai_url},
                     context).check_ready()
    with pytest.raises(UserError, match="known options"):
        make_backend("openai", {"modle": "typo"}, context)
    assert server.state.requests == 0


def test_reasoning_model_gets_effort_and_no_temperature(server, tmp_path):
    make("openai", server, tmp_path, model="o3-mini", reasoning_effort="low").paraphrase(SOURCES[:2], 2)
    body = server.state.bodies[-1]
    assert body["reasoning_effort"] == "low" and "temperature" not in body
    assert body["response_format"] == {"type": "json_object"}


def test_dry_run_estimate_makes_no_request_and_counts_cached_items_free(server, tmp_path):
    backend = make("openai", server, tmp_path, model="o3-mini", batch_size=5)
    estimate = backend.estimate(SOURCES, 5)
    assert estimate["requests"] == 3 and estimate["cost_usd"] > 0 and estimate["tokens_out"] > estimate["items"]
    assert server.state.requests == 0
    backend.paraphrase(SOURCES[:5], 5)
    again = backend.estimate(SOURCES, 5)
    assert again["cached_items"] == 5 and again["requests"] == 2 and again["cost_usd"] < estimate["cost_usd"]


def test_parse_answer_reads_fenced_json_cuts_extras_and_reports_missing():
    template = load_template("mt")
    text = '```json\n{"items": [{"id": 1, "paraphrases": ["a", "b", "c"]}, {"id": "3", "paraphrases": ["x"]}]}\n```'
    found, missing = parse_answer(template, text, 3, 2)
    assert found == {0: ["a", "b"]} and missing == {1: "missing from response", 2: "short response"}
    with pytest.raises(MalformedAnswer):
        parse_answer(template, '{"items": [{"id": "1", "paraphrases": ["a"', 1, 1)


def test_cache_is_safe_under_concurrent_writers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def write(worker):
        with AnswerCache(tmp_path) as cache:  # a connection of its own, as another process would have
            for i in range(20):
                cache.put_many({f"{worker}-{i}": {"paraphrases": [str(i)]}})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    with AnswerCache(tmp_path) as cache:
        assert cache.count() == 80 and cache.get_many(["3-19"]) == {"3-19": {"paraphrases": ["19"]}}


def test_hf_local_tiny_llama_runs_batched_and_caches(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(["the vote was held on monday { } [ ] : , \" items paraphrases id"],
                              trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "[BOS]", "[EOS]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]",
                                        bos_token="[BOS]", eos_token="[EOS]")
    model_dir = tmp_path / "tiny-llama"
    tokenizer.save_pretrained(model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         pad_token_id=1, bos_token_id=2, eos_token_id=3)
    LlamaForCausalLM(config).save_pretrained(model_dir)
    context = BackendContext("mt", "English", "German", tmp_path / "cache", progress=False)
    sources = ["The vote was held on Monday.", "The vote was held.", "It was Monday."]

    def run():
        backend = make_backend("hf-local", {"model_path": str(model_dir), "batch_size": 2, "max_new_tokens": 6},
                               context)
        backend.check_ready()
        return backend.paraphrase(sources, 2)

    first, second = run(), run()
    assert first.counters["requests"] == 2 and first.counters["tokens_out"] > 0  # 3 prompts in 2 batches
    assert_accounted(first, sources)
    assert second.counters["requests"] == 0 and second.counters["cache_hits"] == 3
    assert second.paraphrases == first.paraphrases and second.failures == first.failures


def test_rate_limit_schedule_paces_after_a_burst_and_retry_after_parses():
    from stages.paraphrase.llm.limiter import _Schedule, backoff_seconds, parse_retry_after

    schedule = _Schedule(per_minute=120)  # one request every 0.5 s, one second of burst
    starts = [schedule.reserve(now=10.0, cost=1) for _ in range(6)]
    assert starts[:3] == [10.0, 10.0, 10.0] and starts[3:] == [10.5, 11.0, 11.5]
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None and parse_retry_after(None) is None
    rng = random.Random(0)  # jitter is deliberately unseeded in the engine; seeded here
    delays = [backoff_seconds(attempt, 1.0, 5.0, rng) for attempt in (1, 2, 3, 4, 5)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and all(2.5 <= d <= 5.0 for d in delays[3:])
    assert backoff_seconds(3, 1.0, 60.0, rng, retry_after=30.0) == 30.0

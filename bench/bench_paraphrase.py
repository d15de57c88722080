"""Paraphrase throughput against the local fake server (50 ms latency per request, its own process).

Measures items/s with the real OpenAI SDK at concurrency 1, 8 and 32 (fresh cache each), then the
time of a fully cached rerun over 50k items. Usage:

    python bench/bench_paraphrase.py [--requests-per-worker 20] [--repeats 3] [--cached-items 50000]

A short warm-up run first pays the one-off costs (SDK imports, HTTP transport set-up) so that the
figures are steady-state throughput; each measured run makes at least 40 requests, on a fresh
cache, and is repeated; the median and the best run are reported (the machine may be shared).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.paraphrase.base import BackendContext, make_backend  # noqa: E402

FAKE_KEY = "sk-bench-not-a-real-key"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_llm_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().strip())
    return proc, f"http://127.0.0.1:{port}"


def sources(count: int, tag: str) -> list[str]:
    return [f"Sentence {tag}-{i}: the committee discussed item {i} of the agenda at length." for i in range(count)]


def run(backend_name: str, url: str, cache_dir: Path, texts: list[str], concurrency: int, batch_size: int) -> dict:
    base = url + "/v1" if backend_name == "openai" else url
    context = BackendContext(task_kind="mt", source_lang="English", target_lang="German", cache_dir=cache_dir,
                             progress=False)
    backend = make_backend(backend_name, {"model": "bench-model", "base_url": base, "concurrency": concurrency,
                                          "batch_size": batch_size, "timeout": 30}, context)
    backend.check_ready()
    started = time.perf_counter()
    out = backend.paraphrase(texts, 5)
    seconds = time.perf_counter() - started
    assert out.counters["failures"] == 0, out.failures
    return {"items": len(texts), "seconds": round(seconds, 3), "items_per_s": round(len(texts) / seconds, 1),
            "requests": out.counters["requests"], "cache_hits": out.counters["cache_hits"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="openai", choices=["openai", "gemini"])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--requests-per-worker", type=int, default=20, help="requests per concurrent worker per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cached-items", type=int, default=50_000)
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = os.environ["GEMINI_API_KEY"] = FAKE_KEY
    proc, url = start_server(args.latency)
    results: dict = {"backend": args.backend, "latency_s": args.latency, "batch_size": args.batch_size,
                     "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "python": platform.python_version()}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(args.backend, url, Path(tmp) / "warm", sources(4 * args.batch_size, "warm"), 4, args.batch_size)
            for concurrency in (1, 8, 32):
                requests = max(40, args.requests_per_worker * concurrency)
                runs = [run(args.backend, url, Path(tmp) / f"c{concurrency}-{r}",
                            sources(requests * args.batch_size, f"c{concurrency}-{r}"), concurrency, args.batch_size)
                        for r in range(args.repeats)]
                rates = [r["items_per_s"] for r in runs]
                results[f"concurrency_{concurrency}"] = {
                    "items": runs[0]["items"], "requests": runs[0]["requests"], "items_per_s_all": rates,
                    "items_per_s_median": statistics.median(rates), "items_per_s_best": max(rates)}
                print(concurrency, results[f"concurrency_{concurrency}"], flush=True)
            big = sources(args.cached_items, "big")
            results["fill_50k"] = run(args.backend, url, Path(tmp) / "big", big, 32, args.batch_size)
            print("fill", results["fill_50k"], flush=True)
            results["cached_rerun"] = run(args.backend, url, Path(tmp) / "big", big, 32, args.batch_size)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for stat in ("median", "best"):
        c1 = results["concurrency_1"][f"items_per_s_{stat}"]
        results[f"speedup_32_vs_1_{stat}"] = round(results["concurrency_32"][f"items_per_s_{stat}"] / c1, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

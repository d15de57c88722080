r"""A local OpenAI-compatible completions server for a base model plus LoRA adapter: the upstream
of `pipeline serve` for a demo or a small deployment, where vLLM or llama.cpp are not at hand.

Usage:
    python trainer/model_server.py --adapter runs/train/contrastive --port 8080
    pipeline serve --index idx/align-synth --upstream http://127.0.0.1:8080 --port 8000

POST /v1/completions {"prompt": "...", "max_tokens": N} answers {"choices": [{"text": " ANSWER"}]}:
greedy, cut at the end of the first line, exactly as trainer/evaluate.py generates (sampling
fields such as temperature and stop are accepted and not needed). GET /v1/models lists the model.
One generation runs at a time, on a worker thread, so the server keeps answering health checks.
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python trainer/model_server.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncio
import threading

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.serve import run_app
from trainer.config import ModelServerConfig, run_cli
from trainer.generate import answer_one
from trainer.modeling import inference_paths, load_for_inference, set_threads

MAX_BODY = 1 << 20


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, stop, model...: OpenAI clients send them
    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)


def make_app(model, tokenizer, cfg: ModelServerConfig) -> web.Application:
    lock = threading.Lock()  # one generate() at a time: the model is not shared between threads

    def generate(prompt: str, max_tokens: int) -> str:
        with lock:
            return answer_one(model, tokenizer, prompt, max_tokens)

    async def completions(request: web.Request) -> web.Response:
        try:
            body = CompletionRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            return web.json_response({"error": f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"},
                                     status=400)
        max_tokens = min(body.max_tokens or cfg.max_new_tokens, cfg.max_new_tokens)
        text = await asyncio.get_running_loop().run_in_executor(None, generate, body.prompt, max_tokens)
        return web.json_response({"object": "text_completion", "model": cfg.name,
                                  "choices": [{"index": 0, "text": " " + text, "finish_reason": "stop"}]})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": cfg.name, "object": "model"}]})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


def main(cfg: ModelServerConfig) -> None:
    set_threads(cfg.threads)
    model_path, adapter = inference_paths(cfg.model, cfg.adapter)
    model, tokenizer = load_for_inference(model_path, adapter, cfg.device)
    asyncio.run(run_app(make_app(model, tokenizer, cfg), cfg.host, cfg.port, f"serving {cfg.name}"))


def cli(argv: list[str] | None = None) -> int:
    return run_cli(ModelServerConfig, main, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(cli())

"""`openai`: OpenAI's chat-completions API, or any OpenAI-compatible server (vLLM, Ollama,
llama.cpp serving e.g. Qwen2.5-7B-Instruct) through `--base-url`.

Reasoning models (o1/o3/o4 families, gpt-5) take `reasoning_effort` and refuse `temperature`; that
combination is rejected before any request.
"""
from __future__ import annotations

import re
from typing import Any

from schemas.errors import UserError
from stages.paraphrase.base import register
from stages.paraphrase.llm.api import APIBackend, classify_transport
from stages.paraphrase.llm.engine import CallFailed, Reply
from stages.paraphrase.llm.limiter import parse_retry_after

_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


@register
class OpenAIBackend(APIBackend):
    name = "openai"
    key_vars = ("OPENAI_API_KEY",)
    sdk_module = "openai"
    default_model = "gpt-4.1-mini"
    default_endpoint = "https://api.openai.com/v1"
    key_optional_with_base_url = True  # self-hosted servers usually need no key

    @property
    def is_reasoning_model(self) -> bool:
        return bool(_REASONING_MODEL.match(self.model.split("/")[-1]))

    def generation_params(self) -> dict[str, Any]:
        return {**super().generation_params(), "json_mode": self.opts.json_mode}

    def reasoning_effort_for_estimate(self) -> str | None:
        return self.opts.reasoning_effort or ("medium" if self.is_reasoning_model else None)

    def _check_params(self) -> None:
        if self.is_reasoning_model and self.opts.temperature is not None:
            raise UserError(f"model {self.model!r} is a reasoning model: it takes reasoning_effort, not temperature; "
                            f"remove the temperature option")

    def _make_client(self) -> Any:
        from openai import OpenAI

        return OpenAI(api_key=self._secret, base_url=self.opts.base_url or None, max_retries=0,
                      timeout=self.opts.timeout)

    def _call(self, client: Any, prompt: str) -> Reply:
        kwargs: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        if self.opts.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        if self.opts.temperature is not None:
            kwargs["temperature"] = self.opts.temperature
        if self.opts.reasoning_effort is not None:
            kwargs["reasoning_effort"] = self.opts.reasoning_effort
        if self.opts.max_output_tokens is not None:
            kwargs["max_completion_tokens"] = self.opts.max_output_tokens
        # The raw body is read as JSON directly: building the SDK's response models costs ~15% of
        # the client's CPU per request, which matters at high concurrency against fast servers.
        try:
            data = client.chat.completions.with_raw_response.create(**kwargs).http_response.json()
        except ValueError:  # a 200 whose body is not JSON at all
            raise CallFailed("malformed response", detail="the response body is not JSON") from None
        if not isinstance(data, dict):
            raise CallFailed("malformed response", detail="the response body is not a JSON object")
        choices = data.get("choices") or [{}]
        text = (choices[0].get("message") or {}).get("content")
        usage = data.get("usage") or {}
        return Reply(text if isinstance(text, str) else "", usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _classify(self, exc: Exception) -> CallFailed:
        import openai

        if isinstance(exc, openai.APIStatusError):
            headers = getattr(exc.response, "headers", None)
            return self.classify_status(exc.status_code, parse_retry_after(headers), str(exc))
        if isinstance(exc, openai.APIResponseValidationError):
            return CallFailed("malformed response", detail=self.scrub(str(exc))[:300])
        return classify_transport(exc)

"""`gemini`: Google's Gemini API through the google-genai SDK, with structured output (the answer
schema is sent, so the model is constrained to valid JSON of the right shape).

The key comes from GEMINI_API_KEY or GOOGLE_API_KEY and is handed to the client explicitly;
`base_url` points the client at a proxy or a compatible server.
"""
from __future__ import annotations

import re
from typing import Any

from stages.paraphrase.base import register
from stages.paraphrase.llm.api import APIBackend, classify_transport
from stages.paraphrase.llm.engine import CallFailed, Reply
from stages.paraphrase.llm.limiter import parse_retry_after

_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


@register
class GeminiBackend(APIBackend):
    name = "gemini"
    key_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    sdk_module = "google.genai"
    default_model = "gemini-2.5-flash-lite"
    default_endpoint = "https://generativelanguage.googleapis.com"

    def _make_client(self) -> Any:
        from google import genai
        from google.genai import types

        http_options = types.HttpOptions(base_url=self.opts.base_url or None, timeout=int(self.opts.timeout * 1000),
                                         retry_options=types.HttpRetryOptions(attempts=1))
        # Built once per run: converting the answer schema costs more CPU than the request itself.
        self._config = types.GenerateContentConfig(response_mime_type="application/json",
                                                   response_schema=self.template.answer_model,
                                                   temperature=self.opts.temperature,
                                                   max_output_tokens=self.opts.max_output_tokens)
        return genai.Client(api_key=self._secret, vertexai=False, http_options=http_options)

    def _call(self, client: Any, prompt: str) -> Reply:
        response = client.models.generate_content(model=self.model, contents=prompt, config=self._config)
        usage = response.usage_metadata
        tokens_out = None
        if usage is not None and usage.candidates_token_count is not None:
            tokens_out = usage.candidates_token_count + (usage.thoughts_token_count or 0)  # thinking is billed
        return Reply(_text_of(response), getattr(usage, "prompt_token_count", None), tokens_out)

    def _classify(self, exc: Exception) -> CallFailed:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            headers = getattr(getattr(exc, "response", None), "headers", None)
            retry_after = parse_retry_after(headers)
            if retry_after is None:
                retry_after = _retry_delay(getattr(exc, "details", None))
            return self.classify_status(int(exc.code or 0), retry_after, str(exc))
        return classify_transport(exc)


def _text_of(response: Any) -> str:
    """The answer text; empty (so: malformed, retried) when the model returned no candidate."""
    try:
        return response.text or ""
    except (ValueError, AttributeError):
        return ""


def _retry_delay(details: Any) -> float | None:
    """Gemini puts its wait in the error body: {"error": {"details": [{"retryDelay": "17s"}]}}."""
    error = details.get("error", details) if isinstance(details, dict) else None
    for entry in (error or {}).get("details", []) if isinstance(error, dict) else []:
        match = _DELAY.match(str(entry.get("retryDelay", ""))) if isinstance(entry, dict) else None
        if match:
            return float(match.group(1))
    return None

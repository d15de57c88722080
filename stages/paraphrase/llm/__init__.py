"""LLM paraphrase backends: `gemini`, `openai` (also any OpenAI-compatible server) and `hf-local`.

Importing this package registers them. The SDKs themselves are imported only when a backend runs,
so the package imports (and the offline backends work) without google-genai, openai or
transformers installed; a missing SDK is reported by `check_ready` with the package to install.
"""
from stages.paraphrase.llm.gemini import GeminiBackend
from stages.paraphrase.llm.hf_local import HFLocalBackend
from stages.paraphrase.llm.openai_chat import OpenAIBackend

__all__ = ["GeminiBackend", "HFLocalBackend", "OpenAIBackend"]

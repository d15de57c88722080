"""MTOP slot values and the paraphrase check that keeps them: the parser (nested slots, brackets
without spaces, malformed forms), the presence rule, the quality filter, the prompt and an LLM
backend that loses a slot value."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from schemas.errors import UserError
from stages.paraphrase.base import BackendContext, make_backend
from stages.paraphrase.llm.prompts import load_template
from stages.paraphrase.quality import filter_paraphrases, verdicts
from stages.paraphrase.slots import encode_request, missing_slot_values, parse_request, slot_values

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_llm_server import FakeLLMServer  # noqa: E402

WEATHER = "[IN:GET_WEATHER [SL:LOCATION New York ] [SL:DATE_TIME today ] ]"
NESTED = ("[IN:UPDATE_CALL [SL:CONTACT_ADDED [IN:GET_CONTACT [SL:CONTACT_RELATED my ] "
          "[SL:TYPE_RELATION aunties ] ] ] ]")


def test_slot_values_flat_and_nested():
    assert slot_values(WEATHER) == ["New York", "today"]
    # a slot holding an intent gives its children's runs, not one span across them
    assert slot_values(NESTED) == ["my", "aunties"]
    # words of a slot before and after a nested intent are two runs
    assert slot_values("[IN:CREATE_REMINDER [SL:TODO call [IN:GET_CONTACT [SL:TYPE_RELATION mom ] ] "
                       "tonight ] ]") == ["call", "mom", "tonight"]


def test_slot_values_need_no_spaces_around_brackets_and_skip_intent_text():
    assert slot_values("[IN:GET_WEATHER [SL:LOCATION Paris][SL:DATE_TIME tomorrow]]") == ["Paris", "tomorrow"]
    assert slot_values("[IN:GET_WEATHER weather in [SL:LOCATION Paris ] ]") == ["Paris"]
    assert slot_values("[IN:GET_WEATHER ]") == []


def test_malformed_logical_forms_are_read_leniently():
    assert slot_values("[IN:GET_WEATHER [SL:LOCATION Paris ] ] ] [SL:DATE_TIME now ]") == ["Paris", "now"]
    assert slot_values("[IN:GET_WEATHER [SL:LOCATION Paris") == ["Paris"]
    assert slot_values("just words") == []


def test_presence_is_by_token_case_sensitive_and_whole_words():
    values = ["Avery M .", "Whatsapp"]
    assert missing_slot_values("Ruf Avery M . per Whatsapp an", "Ruf bitte Avery M. über Whatsapp an", values) == []
    assert missing_slot_values("Ruf Avery M . per Whatsapp an", "Ruf Avery per WhatsApp an", values) == values
    assert missing_slot_values("weather in Paris", "weather for Parisian streets", ["Paris"]) == ["Paris"]
    assert missing_slot_values("at 5 pm", "at 15 pm", ["5"]) == ["5"]
    # contiguous in the source: must stay contiguous
    assert missing_slot_values("set it for 7 am tomorrow", "tomorrow set it for 7 , am", ["for 7 am"]) == ["for 7 am"]


def test_a_value_split_in_the_source_may_stay_split_but_in_order():
    source = "Stelle eine Erinnerung ein , Jody morgen Mittag zu treffen"
    assert missing_slot_values(source, "Erinnere mich , Jody morgen Mittag zu treffen", ["Jody treffen"]) == []
    assert missing_slot_values(source, "Erinnere mich , morgen Mittag Jody zu treffen", ["Jody treffen"]) == []
    assert missing_slot_values(source, "Treffen mit Jody morgen", ["Jody treffen"]) == ["Jody treffen"]


def test_requests_round_trip_and_merge_the_values_of_every_form():
    request = encode_request("call my aunties", [NESTED, "[IN:CREATE_CALL [SL:CONTACT my ] ]"])
    assert parse_request(request) == ("call my aunties", ["my", "aunties"])
    with pytest.raises(UserError, match="'utterance' and a 'keep' list"):
        parse_request("call my aunties")


def test_quality_filter_rejects_lost_slot_values_and_counts_them():
    request = encode_request("what is the weather in New York today ?", [WEATHER])
    candidates = ["tell me today 's weather in New York", "what is the weather in New York ?",
                  "how is the weather in new york today", "what is the weather in New York today ?",
                  "tell me today 's weather in New York"]
    assert verdicts(request, candidates, "semparse") == [
        None, "slot value missing", "slot value missing", "identical to source", "duplicate"]
    kept, dropped = filter_paraphrases([request], [candidates], 5, prompt="semparse")
    assert kept == [["tell me today 's weather in New York"]]
    assert dropped == {"slot value missing": 2, "identical to source": 1, "duplicate": 1}


def test_the_prompt_shows_each_utterance_with_the_values_to_keep():
    template = load_template("semparse")
    request = encode_request("Ruf meine Mutter an", [
        "[IN:CREATE_CALL [SL:CONTACT [IN:GET_CONTACT [SL:CONTACT_RELATED meine ] [SL:TYPE_RELATION Mutter ] ] ] ]"])
    prompt = template.render([request], 3)
    assert "exactly 3 paraphrases" in prompt and "in the same language as the utterance" in prompt
    inputs = json.loads(prompt[prompt.rindex("\n[") + 1:])
    assert inputs == [{"id": "1", "utterance": "Ruf meine Mutter an", "keep": ["meine", "Mutter"]}]
    assert template.answer_model.__name__ == "MTAnswer"  # plain paraphrases come back


def test_an_llm_backend_drops_paraphrases_that_lose_a_slot_value(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-semparse")
    requests = [encode_request("Wie ist das Wetter in Berlin morgen früh ?",
                               ["[IN:GET_WEATHER [SL:LOCATION Berlin ] [SL:DATE_TIME morgen früh ] ]"]),
                encode_request("Stell einen Wecker um 7 Uhr", ["[IN:CREATE_ALARM [SL:DATE_TIME um 7 Uhr ] ]"])]
    context = BackendContext(task_kind="semparse", source_lang="German", target_lang=None,
                             cache_dir=tmp_path, progress=False)
    with FakeLLMServer() as server:  # its second paraphrase of an utterance drops the first value to keep
        backend = make_backend("openai", {"model": "fake-model", "base_url": server.openai_url}, context)
        backend.check_ready()
        assert backend.template.name == "semparse"  # chosen by the task kind
        out = backend.paraphrase(requests, 3)
    assert out.dropped == {"slot value missing": 2}
    assert out.paraphrases == [["Bitte: Wie ist das Wetter in Berlin morgen früh ?",
                                "Also: Wie ist das Wetter in Berlin morgen früh ?"],
                               ["Bitte: Stell einen Wecker um 7 Uhr", "Also: Stell einen Wecker um 7 Uhr"]]

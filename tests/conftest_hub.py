"""The local Hub/OPUS stand-in, stocked from the built-in task YAMLs' own pins."""
from __future__ import annotations

import pytest

from pipeline.tasks import builtin_tasks, load_task
from tests.fake_hub import (FakeHub, HubState, europarl, flores, iitb, opus_zip, samanantar,
                            script_repo)

SCRIPT_SHA = "e" * 40


def pinned_revisions() -> dict[str, str]:
    """Hub repo -> the revision the built-in YAMLs pin (one per repo across tasks)."""
    pins = {}
    for name in builtin_tasks():
        task = load_task(name)
        for split in ("train", "test", "test_ood"):
            spec = getattr(task, split)
            if spec is not None and spec.hub is not None:
                pins.setdefault(spec.hub.path, spec.hub.revision)
    return pins


def stocked_state() -> HubState:
    pins = pinned_revisions()
    state = HubState()
    state.repos = {
        "Helsinki-NLP/europarl": europarl(pins["Helsinki-NLP/europarl"], ["bg-en", "de-en", "en-lt"]),
        "openlanguagedata/flores_plus": flores(pins["openlanguagedata/flores_plus"]),
        "ai4bharat/samanantar": samanantar(pins["ai4bharat/samanantar"]),
        "cfilt/iitb-english-hindi": iitb(pins["cfilt/iitb-english-hindi"]),
        "Helsinki-NLP/emea": script_repo(SCRIPT_SHA, "emea.py"),
        "Helsinki-NLP/tanzil": script_repo(SCRIPT_SHA, "tanzil.py"),
    }
    state.opus = {f"OPUS-{corpus}/{version}/moses/{pair}.txt.zip": opus_zip(corpus, pair)
                  for corpus, version, pair in (("EMEA", "v3", "en-lt"), ("EMEA", "v3", "de-en"),
                                                ("Tanzil", "v1", "en-ta"))}
    return state


@pytest.fixture
def fake_hub(monkeypatch):
    """A running stand-in; HF_ENDPOINT and ICTRAIN_OPUS_URL point at it, HF_TOKEN can read it."""
    hub = FakeHub(stocked_state())
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("ICTRAIN_OPUS_URL", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_good_token")
    yield hub
    hub.close()

"""Remote sources against a local stand-in for the Hub and OPUS: every built-in task resolves,
and every way a source can fail ends in one line that says what to do."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.tasks import builtin_tasks, load_task
from tests.conftest import run_pipeline
from tests.conftest_hub import fake_hub  # noqa: F401  (fixture)

MT_TASKS = [name for name in builtin_tasks() if load_task(name).kind == "mt"]
ISO_639_1 = {"German": "de", "Lithuanian": "lt", "Hindi": "hi", "Tamil": "ta"}
FLORES = {"German": "deu_Latn", "Lithuanian": "lit_Latn", "Hindi": "hin_Deva", "Tamil": "tam_Taml"}
SMALL = ["--pool-size", "150", "--test-size", "30", "--ood-size", "20", "--probe-size", "10",
         "--paraphraser", "none", "--no-progress"]


def _write_task(tmp_path: Path, base: str, split: str, source: str) -> Path:
    """A copy of a built-in task YAML with one split's source replaced by `source` (YAML text)."""
    text = (Path(__file__).resolve().parents[1] / "pipeline" / "tasks" / f"{base}.yaml").read_text()
    pattern = re.compile(rf"^{split}:\n(  .*\n)+", re.M)
    path = tmp_path / f"{base}-custom.yaml"
    path.write_text(pattern.sub(f"{split}:\n{source}\n", text, count=1))
    return path


@pytest.mark.parametrize("task", MT_TASKS)
def test_every_built_in_task_checks_out_against_the_stand_in(task, fake_hub, tmp_path):
    code, out, err = run_pipeline("sources", "--task", task, "--check", "--out", str(tmp_path))
    assert code == 0, out + err
    assert "3 of 3 sources ok" in out
    assert fake_hub.state.downloads() == 0  # a check fetches no data


def test_en_lt_builds_from_the_hub_and_opus_and_rebuilds_without_downloading(fake_hub, tmp_path):
    code, out, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path), *SMALL)
    assert code == 0, err
    manifest = json.loads((Path(out.strip().splitlines()[-1]) / "manifest.json").read_text())
    inputs = manifest["stages"]["ingest"]["counters"]["inputs"]
    assert inputs["train"] == {"source": "hub:Helsinki-NLP/europarl/en-lt/train", "rows_read": 240}
    assert inputs["test"]["source"] == "hub:openlanguagedata/flores_plus/eng_Latn+lit_Latn/devtest"
    assert inputs["test_ood"] == {"source": "opus:EMEA/v3/en-lt", "rows_read": 80}
    assert manifest["inputs"]["train"]["hub"]["revision"] == load_task("en-lt").train.hub.revision
    downloads = fake_hub.state.downloads()
    assert downloads == 5  # two Europarl shards, two Flores+ languages, one OPUS archive
    assert fake_hub.state.cdn_authorization == []  # the token never left the Hub's host
    (tmp_path / ".cache" / "stages" / "ingest").rename(tmp_path / "ingest-moved-away")
    code, _, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path), *SMALL)
    assert code == 0, err
    assert fake_hub.state.downloads() == downloads  # ingest reran from the source cache


def test_opus_pairs_are_alphabetical_and_the_source_side_comes_first(fake_hub, tmp_path):
    code, out, err = run_pipeline("build", "--task", "en-de", "--out", str(tmp_path), *SMALL)
    assert code == 0, err
    import datasets

    rows = datasets.load_from_disk(str(Path(out.strip().splitlines()[-1]) / "eval"))
    ood = [r for r in rows if r["test_set"] == "ood"]
    assert ood and all(r["source"].startswith("en:") and r["target"].startswith("de:") for r in ood)


def test_gated_repo_without_a_token_names_the_page_and_hf_token(fake_hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token either
    code, out, _ = run_pipeline("sources", "--task", "en-lt", "--check", "--out", str(tmp_path))
    assert code == 1
    line = next(l for l in out.splitlines() if "flores_plus" in l and "FAIL" in l)
    assert "is gated" in line and f"{fake_hub.url}/datasets/openlanguagedata/flores_plus" in line
    assert "HF_TOKEN" in line


def test_gated_repo_with_a_token_that_has_no_access(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted")
    code, _, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path), *SMALL)
    assert code == 2
    assert "access denied (403)" in err and "accept its conditions" in err
    assert "Traceback" not in err


def test_a_script_dataset_names_its_opus_replacement(fake_hub, tmp_path):
    task = _write_task(tmp_path, "en-lt", "test_ood", "  hub: {path: Helsinki-NLP/emea, name: en-lt, split: train, "
                       "revision: " + "e" * 40 + ", source_field: translation.en, target_field: translation.lt}")
    code, _, err = run_pipeline("build", "--task", str(task), "--out", str(tmp_path), *SMALL)
    assert code == 2
    assert "loading-script dataset (emea.py)" in err and "opus: {corpus: EMEA, version: v3" in err


def test_a_missing_config_lists_the_valid_ones_and_suggests_the_alphabetical_pair(fake_hub, tmp_path):
    revision = load_task("en-de").train.hub.revision
    task = _write_task(tmp_path, "en-de", "train", "  hub: {path: Helsinki-NLP/europarl, name: en-de, split: train, "
                       f"revision: {revision}, source_field: translation.en, target_field: translation.de}}")
    code, _, err = run_pipeline("build", "--task", str(task), "--out", str(tmp_path), *SMALL)
    assert code == 2
    assert "no config 'en-de'" in err and "did you mean 'de-en'?" in err and "bg-en, de-en, en-lt" in err


def test_an_unknown_revision_names_the_newest_commit(fake_hub, tmp_path):
    task = _write_task(tmp_path, "en-lt", "train", "  hub: {path: Helsinki-NLP/europarl, name: en-lt, split: train, "
                       "revision: \"" + "0" * 40 + "\", source_field: translation.en, target_field: translation.lt}")
    code, out, _ = run_pipeline("sources", "--task", str(task), "--check", "--out", str(tmp_path))
    assert code == 1
    assert "not found on the Hub" in out and load_task("en-lt").train.hub.revision in out


def test_an_unpinned_revision_fails_the_check_and_names_the_commit_to_pin(fake_hub, tmp_path):
    task = _write_task(tmp_path, "en-lt", "train", "  hub: {path: Helsinki-NLP/europarl, name: en-lt, split: train, "
                       "source_field: translation.en, target_field: translation.lt}")
    code, out, _ = run_pipeline("sources", "--task", str(task), "--check", "--out", str(tmp_path))
    assert code == 1
    assert f"revision not pinned; set `revision: {load_task('en-lt').train.hub.revision}`" in out


def test_a_missing_opus_archive_is_one_line(fake_hub, tmp_path):
    task = _write_task(tmp_path, "en-lt", "test_ood", "  opus: {corpus: EMEA, version: v9, source_lang: en, target_lang: lt}")
    code, out, _ = run_pipeline("sources", "--task", str(task), "--check", "--out", str(tmp_path))
    assert code == 1
    assert "OPUS has no EMEA v9 archive for en-lt" in out


def test_every_precondition_is_reported_at_once(tmp_path, monkeypatch):
    """No network (a closed port) and no Gemini key: both problems in one run, before any work."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    monkeypatch.setenv("ICTRAIN_OPUS_URL", closed)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path), "--no-progress")
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert sum("cannot reach the Hub" in line for line in lines) == 2  # Europarl and Flores+
    assert any(line.endswith("pass a local file with --train PATH") for line in lines)
    assert any("cannot reach OPUS" in line for line in lines)
    assert any("GEMINI_API_KEY" in line for line in lines)
    assert not (tmp_path / ".cache" / "stages").exists()  # nothing ran


def test_repo_file_names_that_would_leave_the_cache_are_refused():
    from schemas.errors import UserError
    from stages.ingest.hub import safe_name

    for name in ("../evil.parquet", "/etc/passwd", "a/../../b.parquet", "a\\b.parquet"):
        with pytest.raises(UserError, match="not a plain relative path"):
            safe_name(name)
    assert safe_name("de-en/train-00000-of-00002.parquet") == "de-en/train-00000-of-00002.parquet"


def test_built_in_source_names_follow_each_source_s_naming_rule():
    """Europarl and OPUS name a pair alphabetically; Flores+ configs are ISO 639-3 + script;
    Samanantar configs are the two-letter target language; every Hub source is pinned."""
    for name in MT_TASKS:
        task = load_task(name)
        for split in ("train", "test", "test_ood"):
            spec = getattr(task, split)
            if spec.hub:
                assert re.fullmatch(r"[0-9a-f]{40}", spec.hub.revision or ""), (name, split)
                if spec.hub.path == "Helsinki-NLP/europarl":
                    a, b = spec.hub.name.split("-")
                    assert a < b, (name, spec.hub.name)
                    assert {a, b} == {spec.hub.source_field.split(".")[1], spec.hub.target_field.split(".")[1]}
                if spec.hub.path == "openlanguagedata/flores_plus":
                    for side in (spec.hub.source, spec.hub.target):
                        assert re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", side.name), (name, side.name)
                    assert (spec.hub.source.name, spec.hub.target.name) == ("eng_Latn", FLORES[task.target_lang])
                if spec.hub.path == "ai4bharat/samanantar":
                    assert re.fullmatch(r"[a-z]{2}", spec.hub.name)
                assert spec.hub.path not in ("Helsinki-NLP/emea", "Helsinki-NLP/tanzil")  # script-only
            if spec.opus:
                assert (spec.opus.source_lang, spec.opus.target_lang) == ("en", ISO_639_1[task.target_lang])
            if spec.hub and spec.hub.path == "ai4bharat/samanantar":
                assert spec.hub.name == ISO_639_1[task.target_lang]
            if spec.hub and spec.hub.name and re.fullmatch(r"[a-z]{2}-[a-z]{2}", spec.hub.name):
                assert ISO_639_1[task.target_lang] in spec.hub.name.split("-")
            assert spec.licence and spec.size, (name, split)


def test_sources_downloaded_once_build_later_without_network(fake_hub, tmp_path, monkeypatch):
    cache = tmp_path / "shared-cache"
    code, out, err = run_pipeline("sources", "--task", "en-lt", "--download", "--cache-dir", str(cache))
    assert code == 0, out + err
    fake_hub.close()  # the network is gone
    code, _, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path / "out"),
                                "--cache-dir", str(cache), *SMALL)
    assert code == 0, err


def test_tasks_sharing_a_source_cache_read_their_own_configs(fake_hub, tmp_path):
    """en-de and en-lt pin the same Flores+ and Europarl commits with other configs: a shared
    cache must keep their resolved files apart."""
    cache = str(tmp_path / "shared-cache")
    code, out, err = run_pipeline("sources", "--task", "en-de", "--download", "--cache-dir", cache)
    assert code == 0, out + err
    code, out, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path / "out"), "--cache-dir", cache, *SMALL)
    assert code == 0, err
    import datasets

    rows = datasets.load_from_disk(str(Path(out.strip().splitlines()[-1]) / "eval"))
    assert all(r["target"].startswith("lt:") for r in rows)


def test_a_cut_off_download_is_not_cached_and_a_rerun_completes(fake_hub, tmp_path):
    name = "devtest/lit_Latn.jsonl"
    real = len(fake_hub.state.repos["openlanguagedata/flores_plus"].files[name])
    fake_hub.state.advertised_size[name] = real + 100  # the API promises more than arrives
    code, _, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path), *SMALL)
    assert code == 2 and "transfer was cut" in err and "Traceback" not in err
    assert not list((tmp_path / ".cache" / "sources").rglob("lit_Latn.jsonl"))
    del fake_hub.state.advertised_size[name]
    code, _, err = run_pipeline("build", "--task", "en-lt", "--out", str(tmp_path), *SMALL)
    assert code == 0, err


def test_a_renamed_repo_keeps_the_token_on_the_hub_host(fake_hub, tmp_path):
    fake_hub.state.renamed["old-org/flores-renamed"] = "openlanguagedata/flores_plus"
    revision = load_task("en-lt").test.hub.revision
    task = _write_task(tmp_path, "en-lt", "test", "  hub: {path: old-org/flores-renamed, split: devtest, "
                       f"revision: \"{revision}\", source: {{name: eng_Latn, field: text}}, "
                       "target: {name: lit_Latn, field: text}}")
    code, _, err = run_pipeline("build", "--task", str(task), "--out", str(tmp_path), *SMALL)
    assert code == 0, err
    assert fake_hub.state.cdn_authorization == []


def test_a_config_name_on_a_repo_without_configs_is_refused(fake_hub, tmp_path):
    revision = load_task("en-hi").test_ood.hub.revision
    task = _write_task(tmp_path, "en-hi", "test_ood", "  hub: {path: cfilt/iitb-english-hindi, name: hi-en, "
                       f"split: test, revision: \"{revision}\", source_field: translation.en, target_field: translation.hi}}")
    code, out, _ = run_pipeline("sources", "--task", str(task), "--check", "--out", str(tmp_path))
    assert code == 1 and "declares no configs, so config 'hi-en' does not exist" in out


def test_concurrent_fetches_of_one_opus_archive_agree(fake_hub, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from stages.ingest.access import SourceAccess
    from stages.ingest.opus import fetch_archive

    spec = load_task("en-lt").test_ood.opus
    access = SourceAccess(download_dir=tmp_path, opus_url=fake_hub.url)
    with ThreadPoolExecutor(6) as pool:
        paths = list(pool.map(lambda _: fetch_archive(spec, access), range(6)))
    assert len(set(paths)) == 1 and paths[0].is_file()
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("download-*"))


def test_a_pinned_opus_digest_is_checked(fake_hub, tmp_path):
    task = _write_task(tmp_path, "en-lt", "test_ood", "  opus: {corpus: EMEA, version: v3, source_lang: en, "
                       "target_lang: lt, sha256: " + "a" * 64 + "}")
    code, _, err = run_pipeline("build", "--task", str(task), "--out", str(tmp_path), *SMALL)
    assert code == 2 and "not the pinned" in err

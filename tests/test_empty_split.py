"""A τ no target passes leaves `train-similar` empty: it still loads, the build says so, `show` copes."""
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pytest

from pipeline.store import SPLIT_FOLDERS, load_split
from schemas.rows import TRAIN_SCHEMA
from tests.conftest import SMALL, run_pipeline

WARNING = "similar regime: 0 of 1500 targets passed tau=2.0 (mean cosine to their examples); train-similar is empty"


def _build(out):
    code, stdout, stderr = run_pipeline("build", "--task", "align-synth", "--out", str(out), *SMALL, "--tau", "2")
    assert code == 0, stderr
    return Path(stdout.strip().splitlines()[-1]), stderr


@pytest.fixture(scope="module")
def empty_similar(tmp_path_factory):
    version, stderr = _build(tmp_path_factory.mktemp("tau2"))
    return {"version": version, "stderr": stderr}


def test_empty_split_loads_with_its_features(empty_similar):
    ds = datasets.load_from_disk(str(empty_similar["version"] / "train-similar"))
    assert len(ds) == 0 and ds.features == datasets.Features.from_arrow_schema(TRAIN_SCHEMA)


def test_card_and_manifest_say_how_many_targets_passed(empty_similar):
    version = empty_similar["version"]
    assemble = json.loads((version / "manifest.json").read_text())["stages"]["assemble"]
    assert assemble["warnings"] == [WARNING]
    assert assemble["counters"]["similar_tau"] == {"tau": 2.0, "passed": 0, "targets": 1500}
    card = (version / "README.md").read_text()
    assert WARNING in card and "(0 of 1500 targets passed)" in card and "train-similar: 0 rows" in card


def test_build_warns_on_stderr(empty_similar):
    assert WARNING in empty_similar["stderr"]


def test_show_prints_the_empty_split(empty_similar):
    code, out, err = run_pipeline("show", str(empty_similar["version"]))
    assert code == 0, err
    assert "== train-similar: 0 rows (empty)" in out and f"warning: {WARNING}" in out


def test_rebuild_is_byte_identical(empty_similar, tmp_path):
    again, _ = _build(tmp_path)
    first = empty_similar["version"]
    assert again.name == first.name
    for folder in SPLIT_FOLDERS.values():
        for name in ("data-00000-of-00001.arrow", "dataset_info.json", "state.json"):
            assert (again / folder / name).read_bytes() == (first / folder / name).read_bytes()


def test_load_split_opens_an_empty_split_written_without_a_data_file(tmp_path):
    """Version folders built before the fix hold no data file for an empty split."""
    datasets.Dataset(pa.Table.from_pylist([], schema=TRAIN_SCHEMA)).save_to_disk(str(tmp_path / "old"))
    assert json.loads((tmp_path / "old" / "state.json").read_text())["_data_files"] == []
    ds = load_split(tmp_path / "old")
    assert len(ds) == 0 and ds.column_names == TRAIN_SCHEMA.names

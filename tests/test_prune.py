"""`pipeline prune` keeps the newest versions and `latest`, drops stage caches no version uses."""
import json
import shutil

import pytest

from pipeline.store import point_latest
from tests.conftest import build_small, run_pipeline


def _stage_caches(version):
    stages = json.loads((version / "manifest.json").read_text())["stages"]
    return {version.parent.parent / ".cache" / "stages" / name / entry["fingerprint"][:24]
            for name, entry in stages.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune") / "runs"
    return out, [build_small(out, "--seed", str(seed)).name for seed in range(3)]


@pytest.fixture
def three_versions(built, tmp_path):
    """Versions built with seeds 0, 1, 2 (oldest first), `latest` moved back to the oldest, a
    second task whose manifest uses one of seed 1's caches, and links pointing out of OUT."""
    out = tmp_path / "runs"
    shutil.copytree(built[0], out, symlinks=True)
    versions = [out / "align-synth" / name for name in built[1]]
    point_latest(out / "align-synth", versions[0].name)
    shared = sorted(_stage_caches(versions[1]))[0]
    other = out / "other-task" / "v1"
    other.mkdir(parents=True)
    (other / "manifest.json").write_text(json.dumps({"stages": {shared.parent.name: {"fingerprint": shared.name}}}))
    outside = tmp_path / "outside"
    (outside / "data").mkdir(parents=True)
    (outside / "data" / "keep.txt").write_text("not prune's to delete")
    (out / "align-synth" / "linked-version").symlink_to(outside, target_is_directory=True)
    (out / ".cache" / "stages" / "embed" / ("f" * 24)).symlink_to(outside, target_is_directory=True)
    for name in ("embeddings", "paraphrase"):
        (out / ".cache" / name).mkdir(parents=True, exist_ok=True)
        (out / ".cache" / name / "entry").write_text("content-keyed, shared")
    return out, versions, shared, outside


def test_prune_keeps_newest_and_latest_and_the_caches_they_use(three_versions):
    out, (oldest, middle, newest), shared, outside = three_versions
    gone = _stage_caches(middle) - _stage_caches(oldest) - _stage_caches(newest) - {shared}
    code, stdout, err = run_pipeline("prune", "--task", "align-synth", "--out", str(out), "--keep", "1")
    assert code == 0, err
    assert oldest.is_dir() and newest.is_dir() and not middle.exists()
    assert (out / "align-synth" / "latest").resolve() == oldest.resolve()
    for version in (oldest, newest):
        assert all(folder.is_dir() for folder in _stage_caches(version))
    assert gone and not any(folder.exists() for folder in gone)
    assert shared.is_dir()  # another task's version still uses it
    assert (outside / "data" / "keep.txt").exists() and (out / "align-synth" / "linked-version").is_symlink()
    assert all((out / ".cache" / name / "entry").exists() for name in ("embeddings", "paraphrase"))
    assert "deleted:" in stdout and str(middle) in stdout and "freed" in stdout and "left alone" in stdout


def test_dry_run_lists_with_sizes_and_deletes_nothing(three_versions):
    out, (oldest, middle, newest), shared, _ = three_versions
    before = sorted(p for p in out.rglob("*"))
    code, stdout, err = run_pipeline("prune", "--task", "align-synth", "--out", str(out), "--keep", "1", "--dry-run")
    assert code == 0, err
    assert sorted(p for p in out.rglob("*")) == before
    listed = [line for line in stdout.splitlines() if line.startswith("  ")]
    assert any(str(middle) in line and line.split()[0] == "version" for line in listed)
    assert sum(line.startswith("  stage cache") for line in listed) >= 5
    assert all(line.endswith(("B", "KiB", "MiB", "GiB")) for line in listed)
    assert str(oldest) not in stdout.split("kept")[0] and str(shared) not in stdout
    assert stdout.startswith("would delete (dry run") and "would be freed" in stdout


def test_prune_of_an_unknown_task_is_one_line(tmp_path):
    code, _, err = run_pipeline("prune", "--task", "nope", "--out", str(tmp_path), "--keep", "1")
    assert code == 2 and err.startswith("error: unknown task 'nope'") and "Traceback" not in err

"""`pipeline publish`: the export as one commit on `main`, tagged with the version; publishing a
version already there commits nothing; failures are one line. A fake Hub client stands in for
the network."""
from types import SimpleNamespace

import pytest

from schemas.errors import UserError
from pipeline.publish import publish_version_folder
from tests.conftest import build_small, run_pipeline


class FakeHub:
    """Records what publish asks of the Hub and keeps a repository's files, commits and tags."""

    def __init__(self, fail: bool = False):
        self.calls, self.fail = [], fail
        self.files, self.commits, self.tags = {".gitattributes"}, [], {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def list_repo_refs(self, repo_id, repo_type=None):
        return SimpleNamespace(tags=[SimpleNamespace(name=name, target_commit=oid) for name, oid in self.tags.items()])

    def list_repo_files(self, repo_id, repo_type=None, revision=None):
        return sorted(self.files)

    def create_commit(self, repo_id, operations, commit_message, repo_type=None, revision=None):
        if self.fail:
            raise PermissionError("401")
        assert repo_type == "dataset" and revision == "main"
        for op in operations:
            if type(op).__name__ == "CommitOperationAdd":
                self.files.add(op.path_in_repo)
            else:
                self.files.discard(op.path_in_repo)
        self.commits.append((commit_message, operations))
        return SimpleNamespace(oid=f"commit{len(self.commits)}")

    def create_tag(self, repo_id, tag, revision, repo_type=None, tag_message=None):
        assert tag not in self.tags and repo_type == "dataset"
        self.tags[tag] = revision


def test_publish_commits_the_export_once_and_tags_the_version(align_synth_version):
    hub = FakeHub()
    version = align_synth_version.resolve().name
    where = publish_version_folder(align_synth_version, "me/ictrain-demo", private=True, api=hub)
    assert where == f"me/ictrain-demo@{version}"
    assert hub.calls == [("create_repo", "me/ictrain-demo", {"repo_type": "dataset", "private": True, "exist_ok": True})]
    assert len(hub.commits) == 1 and hub.tags == {version: "commit1"}
    assert {"README.md", "manifest.json", "data/train-contrastive/train-00000-of-00001.parquet",
            "data/probe/test-00000-of-00001.parquet"} <= hub.files
    assert not any(name.endswith(".arrow") or name.startswith("align-synth/") for name in hub.files)


def test_republishing_a_version_makes_no_new_commit(align_synth_version):
    hub = FakeHub()
    publish_version_folder(align_synth_version, "me/x", api=hub)
    code, out, err = run_pipeline_with(hub, "publish", str(align_synth_version), "--repo-id", "me/x")
    assert code == 0 and len(hub.commits) == 1 and "nothing uploaded" in err


def test_a_new_version_replaces_main_and_keeps_the_old_tag(align_synth_version, tmp_path):
    hub = FakeHub()
    publish_version_folder(align_synth_version, "me/x", api=hub)
    hub.files.add("data/eval/test-00001-of-00002.parquet")  # a shard only the older version had
    hub.files.add("LICENSE.txt")  # a file the owner added by hand
    other = build_small(tmp_path, "--seed", "1")
    publish_version_folder(other, "me/x", api=hub)
    assert len(hub.commits) == 2 and set(hub.tags) == {align_synth_version.resolve().name, other.resolve().name}
    deleted = [op.path_in_repo for op in hub.commits[1][1] if type(op).__name__ == "CommitOperationDelete"]
    assert deleted == ["data/eval/test-00001-of-00002.parquet"] and ".gitattributes" in hub.files
    assert "LICENSE.txt" in hub.files  # only data files are replaced


def run_pipeline_with(hub, *args):
    import pipeline.publish as publish

    real = publish.default_api
    publish.default_api = lambda repo_id: hub
    try:
        return run_pipeline(*args)
    finally:
        publish.default_api = real


def test_publish_errors_are_one_line(align_synth_version, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="check that you are logged in"):
        publish_version_folder(align_synth_version, "me/x", api=FakeHub(fail=True))
    monkeypatch.setattr("pipeline.publish.hub_token", lambda: "hf_test")
    monkeypatch.setattr("pipeline.publish.hub_reachable", lambda: False)
    code, _, err = run_pipeline("publish", str(align_synth_version), "--repo-id", "me/x")
    assert code == 2 and "cannot reach the Hub" in err and "Traceback" not in err
    code, _, err = run_pipeline("publish", str(tmp_path), "--repo-id", "me/x")
    assert code == 2 and "not a version folder" in err


def test_publish_without_a_token_says_so_before_the_network(align_synth_version, monkeypatch):
    def no_network():
        raise AssertionError("the token is checked before the network")

    monkeypatch.setattr("pipeline.publish.hub_token", lambda: None)
    monkeypatch.setattr("pipeline.publish.hub_reachable", no_network)
    code, out, err = run_pipeline("publish", str(align_synth_version), "--repo-id", "me/x")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip() == "error: no Hugging Face token to publish to me/x: set HF_TOKEN or run `hf auth login`"


def test_size_categories_are_the_hub_s_own():
    from pipeline.hub_card import size_category

    assert [size_category(n) for n in (999, 50_000, 20_000_000, 2_000_000_000)] == [
        "n<1K", "10K<n<100K", "10M<n<100M", "1B<n<10B"]


def test_export_never_replaces_a_clone_of_the_repository(align_synth_version, tmp_path):
    from pipeline.export import export_version

    clone = tmp_path / "clone"
    for name in ("data", ".git"):
        (clone / name).mkdir(parents=True)
    (clone / "README.md").write_text("card")
    (clone / "manifest.json").write_text("{}")
    with pytest.raises(UserError):
        export_version(align_synth_version, clone)
    assert (clone / ".git").is_dir()


def test_publishing_rows_of_a_gated_source_publicly_warns(align_synth_version):
    from pipeline.publish import gated_inputs

    class GatedHub(FakeHub):
        def dataset_info(self, repo_id):
            return SimpleNamespace(gated="auto" if repo_id == "openlanguagedata/flores_plus" else False)

    manifest = {"inputs": {"train": {"hub": {"path": "Helsinki-NLP/europarl"}},
                           "test": {"hub": {"path": "openlanguagedata/flores_plus"}}, "test_ood": {"file": "x.tsv"}}}
    assert gated_inputs(GatedHub(), manifest) == ["openlanguagedata/flores_plus"]
    assert gated_inputs(FakeHub(), manifest) == []  # a client that cannot say is no reason to stop
    lines = []
    publish_version_folder(align_synth_version, "me/x", api=GatedHub(), log=lines.append)
    assert not any("gated" in line for line in lines)  # align-synth reads no Hub source


def test_the_gated_warning_reaches_the_log(align_synth_version, tmp_path):
    import json
    import shutil

    class GatedHub(FakeHub):
        def dataset_info(self, repo_id):
            return SimpleNamespace(gated="auto")

    copy = tmp_path / "version"
    shutil.copytree(align_synth_version.resolve(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["inputs"] = {"test": {"hub": {"path": "openlanguagedata/flores_plus"}}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    lines = []
    publish_version_folder(copy, "me/x", api=GatedHub(), log=lines.append)
    assert any("openlanguagedata/flores_plus is gated" in line and "--private" in line for line in lines)
    lines.clear()
    publish_version_folder(copy, "me/y", private=True, api=GatedHub(), log=lines.append)
    assert not any("gated" in line for line in lines)

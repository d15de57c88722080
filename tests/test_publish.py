"""`pipeline publish` uploads the version folder as it is, under <task>/<version>, and fails in one line."""
import pytest

from schemas.errors import UserError
from pipeline.publish import publish_version_folder
from tests.conftest import run_pipeline


class RecordingApi:
    def __init__(self, fail: bool = False):
        self.calls, self.fail = [], fail

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        if self.fail:
            raise PermissionError("401")
        self.calls.append(("upload_folder", kwargs))


def test_publish_uploads_the_folder_under_task_and_version(align_synth_version):
    api = RecordingApi()
    where = publish_version_folder(align_synth_version, "me/ictrain-demo", private=True, api=api)
    assert where == f"me/ictrain-demo/align-synth/{align_synth_version.name}"
    (_, repo, kwargs), (_, upload) = api.calls
    assert repo == "me/ictrain-demo" and kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["path_in_repo"] == f"align-synth/{align_synth_version.name}"
    assert upload["folder_path"] == str(align_synth_version.resolve())


def test_publish_errors_are_one_line(align_synth_version, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="check that you are logged in"):
        publish_version_folder(align_synth_version, "me/x", api=RecordingApi(fail=True))
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

"""Bad input exits 2 with one clear line and leaves nothing that looks complete; a crash resumes."""
import json

import pytest

from pipeline.store import SPLIT_FOLDERS
from stages.assemble.stage import Assemble
from tests.conftest import SMALL, build_small, run_pipeline


def _files(tmp_path, train_text):
    train = tmp_path / "train.tsv"
    train.write_bytes(train_text)
    test = tmp_path / "test.tsv"
    test.write_text("source\ttarget\nHello there\tSveiki\n")
    return ["--task", "en-lt", "--train", str(train), "--test", str(test), "--test-ood", str(test),
            "--paraphraser", "none", "--no-progress"]


@pytest.mark.parametrize("train_text, args, message", [
    (None, ["--task", "no-such-task"], "unknown task 'no-such-task'"),
    (b"source\ttarget\nA\tB\n", ["--train", "missing.tsv"], "missing.tsv: file not found"),
    (b"", [], "train.tsv: file is empty"),
    (b"src\ttgt\nA\tB\n", [], "train.tsv: missing column(s)"),
    (b"source\ttarget\n\tB\nC\t\n", [], "no usable training rows"),
    (b"source\ttarget\nA b\tB\nC d\tD\nE f\tF\n", [], "k=4 is larger than the pool allows"),
])
def test_bad_input_gives_one_clear_line(tmp_path, train_text, args, message):
    base = _files(tmp_path, train_text) if train_text is not None else []
    if args and args[0] == "--train":
        base[base.index("--train") + 1] = str(tmp_path / args[1])
        args = []
    code, out, err = run_pipeline("build", "--out", str(tmp_path / "out"), *base, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], err
    assert "Traceback" not in err and out == ""
    task_dir = tmp_path / "out" / "en-lt"
    assert not task_dir.exists() or not any(p.name != ".cache" for p in task_dir.iterdir())


def test_interrupted_build_resumes_to_the_same_result(tmp_path, monkeypatch, align_synth_version):
    original = Assemble.run

    def killed(self, inputs, stats):
        raise KeyboardInterrupt  # as if the process was stopped mid-stage

    monkeypatch.setattr(Assemble, "run", killed)
    code, _, err = run_pipeline("build", "--task", "align-synth", "--out", str(tmp_path), *SMALL)
    assert code == 130 and "rerun" in err
    assert not (tmp_path / "align-synth" / "latest").exists()
    assert not any((tmp_path / "align-synth").glob("*"))  # no version folder, finished or partial
    monkeypatch.setattr(Assemble, "run", original)
    resumed = build_small(tmp_path)
    stages = json.loads((resumed / "manifest.json").read_text())["stages"]
    assert [n for n, s in stages.items() if not s["cached"]] == ["assemble"]
    assert resumed.name == align_synth_version.name
    for folder in SPLIT_FOLDERS.values():
        data = "data-00000-of-00001.arrow"
        assert (resumed / folder / data).read_bytes() == (align_synth_version / folder / data).read_bytes()


def test_larger_k_on_a_cached_retrieval_still_meets_the_pool_check(tmp_path, monkeypatch):
    """k is not in retrieve's fingerprint: a rebuild with a larger k reuses the cached retrieval,
    and the pool check must still run (assemble would loop forever looking for k examples)."""
    base = _files(tmp_path, b"source\ttarget\nA b\tB\nC d\tD\nE f\tF\nG h\tH\n")
    out = ["--out", str(tmp_path / "out"), "--probe-size", "1"]
    code, _, err = run_pipeline("build", *out, *base, "--k", "2")
    assert code == 0, err

    def unreachable(self, inputs, stats):
        raise AssertionError("assemble ran with a k the pool cannot serve")

    monkeypatch.setattr(Assemble, "run", unreachable)
    code, _, err = run_pipeline("build", *out, *base, "--k", "4")
    assert code == 2 and "[retrieve]" not in err
    assert err.strip().splitlines()[-1].startswith("error: k=4 is larger than the pool allows: only 4 distinct")

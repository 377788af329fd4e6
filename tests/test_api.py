"""attnlab.api: runs from Python, and runs reused by their composed config."""

import json
from pathlib import Path

from attnlab import api

TINY_VISION = ["task=vision", "model.dim=16", "model.depth=1", "model.heads=2", "trainer.epochs=1",
               "trainer.progress=false", "trainer.num_threads=1", "viz.enabled=false", "data.max_train=64"]


def test_run_cached_reuses_a_finished_run_and_retrains_when_the_config_changes(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real_run = api.run
    monkeypatch.setattr(api, "run", lambda overrides, run_dir: calls.append(run_dir) or real_run(overrides, run_dir))

    first = api.run_cached("vit", TINY_VISION, tmp_path)
    assert json.loads((first / "results.json").read_text())["model"] == "vit"
    assert api.run_cached("vit", TINY_VISION, tmp_path) == first and len(calls) == 1  # reused

    # keyed by the composed config, not the override text: naming a default changes nothing...
    named = f"model.mlp_ratio={api.compose_config(TINY_VISION).model.mlp_ratio}"  # the recipe's own value
    assert api.run_cached("vit", [*TINY_VISION, named], tmp_path) == first and len(calls) == 1
    # ...while any changed value, from the command line or a recipe, trains anew
    changed = api.run_cached("vit", [*TINY_VISION, "model.mlp_ratio=3.5"], tmp_path)
    assert changed != first and len(calls) == 2

    # a change of the code (here: a different source digest) trains anew too
    real_version = api.code_version()
    monkeypatch.setattr(api, "code_version", lambda: {**real_version, "source_sha1": "edited"})
    recoded = api.run_cached("vit", TINY_VISION, tmp_path)
    assert recoded not in (first, changed) and len(calls) == 3
    assert json.loads((recoded / "code_version.json").read_text())["source_sha1"] == "edited"
    monkeypatch.setattr(api, "code_version", lambda: real_version)

    (first / "results.json").unlink()  # an interrupted run starts over
    (first / "stale.txt").write_text("left by the interrupted run")
    assert api.run_cached("vit", TINY_VISION, tmp_path) == first and len(calls) == 4
    assert not (first / "stale.txt").exists()


def test_run_takes_a_string_and_makes_a_fresh_folder_per_call(tmp_path: Path, monkeypatch) -> None:
    from attnlab.checkpoint import save_checkpoint
    from attnlab.errors import UserError

    ckpt = tmp_path / "vit.pt"
    save_checkpoint(ckpt, {"model": {}, "config": {"task": {"name": "vision"}, "model": {"name": "vit"}}})
    monkeypatch.chdir(tmp_path)
    first = api.run(f"mode=export checkpoint={ckpt}")  # one string, split as a shell would
    second = api.run(["mode=export", f"checkpoint={ckpt}"])
    assert first["export"] != second["export"]  # two calls, two run folders
    folders = sorted(p.relative_to(tmp_path) for p in (tmp_path / "outputs" / "vision" / "vit").iterdir())
    assert len(folders) == 2 and Path(first["export"]).parent.name in {f.name for f in folders}
    assert api.as_list("a=1 'b=x y'") == ["a=1", "b=x y"]
    import pytest

    with pytest.raises(UserError, match="overrides must be strings"):
        api.run([["task=vision"]])  # type: ignore[list-item]


def test_code_version_changes_with_any_source_file(tmp_path: Path, monkeypatch) -> None:
    import attnlab

    package = tmp_path / "attnlab"
    (package / "tasks").mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = '0.1.0'\n")
    (package / "tasks" / "vision.py").write_text("x = 1\n")
    monkeypatch.setattr(attnlab, "__file__", str(package / "__init__.py"))
    before = api.code_version()
    assert before == api.code_version() and before["attnlab_version"] == attnlab.__version__
    (package / "tasks" / "vision.py").write_text("x = 2\n")  # an uncommitted edit
    assert api.code_version()["source_sha1"] != before["source_sha1"]


def test_run_cached_many_in_subprocesses_equals_sequential_runs(tmp_path: Path) -> None:
    import pytest

    from attnlab.errors import UserError

    items = [(f"seed{s}", [*TINY_VISION, f"seed={s}"]) for s in (0, 1)]
    parallel = api.run_cached_many(items, tmp_path / "parallel", jobs=2)
    sequential = api.run_cached_many(items, tmp_path / "sequential", jobs=1)  # in this process
    assert [d.name for d in parallel] == [d.name for d in sequential]  # same cache keys, item order kept
    for a, b in zip(parallel, sequential):
        assert (a / "subprocess.log").is_file() and not (b / "subprocess.log").exists()
        ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
        assert ra["torch_threads"] == rb["torch_threads"] == 1
        assert ra["accuracy"] == rb["accuracy"] and ra["best_valid_accuracy"] == rb["best_valid_accuracy"]
        assert (a / "test_predictions.csv").read_text() == (b / "test_predictions.csv").read_text()
    stamp = (parallel[0] / "results.json").stat().st_mtime_ns
    assert api.run_cached_many(items, tmp_path / "parallel", jobs=2) == parallel  # finished: reused
    assert (parallel[0] / "results.json").stat().st_mtime_ns == stamp

    with pytest.raises(UserError, match="trainer.num_threads=1"):  # parallel runs must name one thread
        api.run_cached_many([("x", [*TINY_VISION, "trainer.num_threads=2"])], tmp_path / "bad", jobs=2)
    with pytest.raises(UserError, match="unknown key"):  # every config is checked before anything starts
        api.run_cached_many([*items, ("typo", [*TINY_VISION, "trainer.epoch=2"])], tmp_path / "bad", jobs=2)
    assert not (tmp_path / "bad").exists()

    # a run that fails in its subprocess: the other run still finishes, the error names the failed log
    broken = [("ok", [*TINY_VISION, "seed=5"]), ("broken", [*TINY_VISION, "data=image_folder", "data.path=missing-folder"])]
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed: broken \(exit status \d+; log: .*broken-\w+\.log\)"):
        api.run_cached_many(broken, tmp_path / "failing", jobs=2)
    assert any((tmp_path / "failing").glob("ok-*/results.json"))
    log = next((tmp_path / "failing").glob("broken-*.log"))
    assert "missing-folder" in log.read_text()

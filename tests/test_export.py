"""mode=export: a folder of safetensors weights, config and tokenizer that every mode loads as
checkpoint=FOLDER; checkpoints are readable by others (0644) and best.pt carries no optimizer."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from attnlab import api
from attnlab.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint
from attnlab.errors import UserError

TINY_VISION = ["task=vision", "model.dim=16", "model.depth=1", "model.heads=2", "trainer.epochs=1",
               "trainer.progress=false", "trainer.num_threads=1", "viz.enabled=false", "data.max_train=64"]


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.embed.weight  # tied, as the translators' output layers


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_export_round_trip_keeps_weights_ties_config_and_tokenizer(tmp_path):
    model = Tied()
    payload = {"model": model.state_dict(), "optimizer": {"state": {}}, "config": {"task": {"name": "translation"},
               "model": {"name": "rnn_attn", "emb_dim": 3}}, "extra": {"tokenizer": b"\x00spm\xff", "classes": ["a"]}}
    save_checkpoint(tmp_path / "best.pt", payload)
    folder = export_checkpoint(load_checkpoint(tmp_path / "best.pt"), tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == [
        "attnlab.json", "config.yaml", "extra.json", "model.safetensors", "tokenizer.model"]
    assert (folder / "tokenizer.model").read_bytes() == b"\x00spm\xff"
    back = load_checkpoint(folder)
    assert back["config"] == payload["config"] and back["extra"] == payload["extra"] and "optimizer" not in back
    for name, tensor in model.state_dict().items():
        assert torch.equal(back["model"][name], tensor)
    # the tied weight is stored once and comes back as one tensor
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert len(list(f.keys())) == 1
    fresh = Tied()
    fresh.load_state_dict(back["model"])
    assert fresh.out.weight.data_ptr() == fresh.embed.weight.data_ptr()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "best.pt", *folder.iterdir()]}
    assert set(modes.values()) == {0o666 & ~umask()}, modes


def test_a_folder_that_is_not_an_export_is_refused(tmp_path):
    with pytest.raises(UserError, match="without attnlab.json"):
        load_checkpoint(tmp_path)
    (tmp_path / "attnlab.json").write_text('{"format": "attnlab-export-v1", "weights": "model.safetensors"}')
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(tmp_path)


def test_vision_export_is_loaded_by_every_mode_without_task(tmp_path, one_thread):
    run_dir = tmp_path / "run"
    trained = api.run(TINY_VISION, run_dir)
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert "optimizer" not in best and "rng" not in best  # best.pt: for using the model
    assert "optimizer" in load_checkpoint(run_dir / "checkpoints" / "last.pt")  # last.pt: for resuming
    api.run(["mode=export", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"output={tmp_path / 'exp'}"],
            tmp_path / "export_run")
    # no task=vision: the export's config says it
    evaluated = api.run(["mode=evaluate", f"checkpoint={tmp_path / 'exp'}", "viz.enabled=false",
                         "trainer.num_threads=1"], tmp_path / "eval")
    assert evaluated["task"] == "vision" and evaluated["accuracy"] == pytest.approx(trained["accuracy"])
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (8, 8), 128).save(image)
    predicted = api.run(["mode=predict", f"checkpoint={tmp_path / 'exp'}", f"input={image}"], tmp_path / "pred")
    assert len(predicted["predictions"]) == 1
    import attnlab

    loaded = attnlab.load(tmp_path / "exp")  # the Python API reads an export folder too
    # the same distribution by both paths (a barely trained model may tie classes, so not the label)
    api_prediction, cli_prediction = loaded.predict([image])[0], predicted["predictions"][0]
    assert api_prediction.probability == pytest.approx(cli_prediction["probability"], abs=1e-4)
    assert dict(api_prediction.top)[cli_prediction["class"]] == pytest.approx(api_prediction.probability, abs=1e-4)
    assert json.loads((tmp_path / "exp" / "extra.json").read_text())["classes"] == [str(d) for d in range(10)]

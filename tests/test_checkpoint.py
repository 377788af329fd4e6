"""Checkpoints are atomic and safe: bad files get one clear line, never code execution."""

import pickle

import pytest
import torch
from torch import nn

from attnlab.checkpoint import check_compatible, load_checkpoint, load_state, save_checkpoint
from attnlab.errors import UserError


def test_round_trip_and_no_temp_files_left(tmp_path):
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint(path, {"model": nn.Linear(2, 2).state_dict(), "extra": {"spm": b"\x00\x01"}})
    payload = load_checkpoint(path)
    assert payload["extra"]["spm"] == b"\x00\x01" and "torch" in payload["versions"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": nn.Linear(20, 20).state_dict()})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(path)


def test_random_bytes_and_missing_file(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "attnlab-checkpoint-v1", "payload": Evil()}, path)
    with pytest.raises(UserError, match="safe load refuses"):
        load_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_foreign_torch_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an attnlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_mismatched_model_and_task(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, {"model": nn.Linear(2, 3).state_dict(), "config": {"model": {"name": "vit"}}})
    payload = load_checkpoint(path)
    with pytest.raises(UserError, match="does not fit this model"):
        load_state(nn.Linear(2, 4), payload["model"], path)
    with pytest.raises(UserError, match="holds a model 'vit', not 'rnn_attn'"):
        check_compatible(payload, path, model="rnn_attn")

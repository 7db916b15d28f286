"""Model files, the generator contract's request checks, built-in names and the t2i dispatcher."""

import pytest
import torch

from t2i.builtin import BUILTIN, resolve
from t2i.generator import GenerationError, validate_request
from t2i.io import CheckpointError, load_config_json, load_weights, save_model
from train.cli import main as cli


def test_save_model_round_trip_and_overwrite_keeps_other_files(tmp_path):
    net = torch.nn.Linear(3, 2)
    folder = save_model(tmp_path / "m", net, {"family": "demo", "width": 3})
    (folder / "README.md").write_text("card")
    net2 = torch.nn.Linear(3, 2)
    save_model(folder, net2, {"family": "demo", "width": 3})
    state = load_weights(folder)
    assert torch.equal(state["weight"], net2.weight.detach())
    assert load_config_json(folder)["width"] == 3
    assert (folder / "README.md").read_text() == "card"
    assert not list(tmp_path.glob(".m.tmp-*")) and not (tmp_path / "m.old").exists()


def test_pickle_refused_unless_opted_in(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="refusing to load pickle"):
        load_weights(path)
    assert torch.equal(load_weights(path, allow_pickle=True)["weight"], torch.ones(2))
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_config_json(tmp_path)


@pytest.mark.parametrize("prompts,labels,n,needs,match", [
    ([""], None, 1, "text", "non-empty"),
    (["   "], None, 1, "text", "non-empty"),
    (None, None, 1, "text", "text-conditional"),
    (["a"], None, 0, "any", r"\[1, 64\]"),
    (["a"], None, 65, "any", r"\[1, 64\]"),
    ("a red circle", None, 1, "text", "single string"),
    (["x" * 1001], None, 1, "text", "at most 1000"),
    (None, [10], 1, "label", r"\[0, 9\]"),
    (None, None, 1, "label", "class-conditional"),
])
def test_bad_requests_are_clear_errors(prompts, labels, n, needs, match):
    with pytest.raises(GenerationError, match=match):
        validate_request(prompts, labels, n, num_classes=10, needs=needs)


def test_good_requests_count_conditions():
    assert validate_request(["a", "b"], None, 2, needs="text") == 2
    assert validate_request(None, [0, 9, 3], 1, num_classes=10, needs="label") == 3
    assert validate_request(None, None, 4, needs="none") == 1


def test_builtin_names_and_paths(tmp_path):
    assert resolve(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError, match="built-in name"):
        resolve(tmp_path / "nope")
    assert {"shapes-ldm", "shapes-tgan", "shapes-cvae", "shapes-clip", "digits-ae", "digits-vae"} <= set(BUILTIN)


def test_cli_lists_commands_and_rejects_unknown(capsys):
    assert cli(["--help"]) == 0
    assert "usage: t2i" in capsys.readouterr().out
    assert cli(["nonsense"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert cli(["train", "nonsense"]) == 2


def test_save_model_with_tied_weights(tmp_path):
    """Regression: safetensors refused tied weights (shared memory) in save_model."""
    net = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    net[1].weight = net[0].weight  # tied
    save_model(tmp_path / "tied", net, {"family": "demo"})
    state = load_weights(tmp_path / "tied")
    assert torch.equal(state["0.weight"], state["1.weight"])


def test_cli_exit_code_when_a_main_returns_a_path(monkeypatch, tmp_path):
    """Regression: a main returning its output folder made the dispatcher crash on int(path)."""
    import types

    import train.cli as cli_module

    fake = types.SimpleNamespace(main=lambda argv: tmp_path)
    monkeypatch.setattr(cli_module.importlib, "import_module", lambda name: fake)
    assert cli_module._run("train.whatever", [], "t2i train whatever") == 0


def test_saved_model_folder_is_world_readable(tmp_path):
    """Regression: mkdtemp's owner-only mode leaked into saved model folders."""
    folder = save_model(tmp_path / "m", torch.nn.Linear(1, 1), {"family": "demo"})
    assert folder.stat().st_mode & 0o755 == 0o755

"""``t2i bench --load``: models trained elsewhere, evaluated as they are; unCLIP is a family the bench evaluates but
does not train (issue 17), so it is refused without its model, and its frozen CLIP image tower is not counted."""

from __future__ import annotations

import json

import pytest

from t2i.bench.config import parse_loads
from t2i.bench.cost import count_parameters
from t2i.bench.families import parse_families
from t2i.unclip.testing import make_tiny_unclip


def test_unclip_is_evaluated_only_when_given():
    with pytest.raises(ValueError, match="does not train it: give the model with --load unclip=PATH"):
        parse_families("tgan,unclip", "shapes")
    assert [f.name for f in parse_families("tgan,unclip", "shapes", ("unclip",))] == ["tgan", "unclip"]
    assert parse_loads("unclip=shapes-unclip,vae-kl=v") == {"unclip": "shapes-unclip", "vae-kl": "v"}
    with pytest.raises(ValueError, match="--load family must be one of .*'unclip'.*got 'dalle'"):
        parse_loads("dalle=x")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_unclip(tmp_path_factory.mktemp("unclip") / "tiny-unclip")


def test_unclip_parameters_leave_out_both_frozen_clip_towers(tiny):
    from gan_baselines.registry import load_generator

    gen = load_generator(tiny)
    counted = count_parameters(gen)
    assert set(counted) == {"total", "prior", "unet", "movq"}
    modules = gen.modules()
    assert counted["total"] == sum(p.numel() for k in ("prior", "unet", "movq") for p in modules[k].parameters())


@pytest.mark.slow
def test_bench_quick_evaluates_a_given_unclip_model(tmp_path, tiny):
    from train.bench import main

    out = tmp_path / "bench"
    assert main(["--quick", "--families=unclip", f"--load=unclip={tiny}", f"--out={out}",
                 f"--work={tmp_path / 'work'}"]) == 0
    results = json.loads((out / "results.json").read_text())
    fam = results["families"]["unclip"]
    assert fam["given"] == str(tiny) and fam["sample_command"].startswith(f"t2i sample --model {tiny} --prompts")
    assert {"acc_all", "domain_fid", "clip_score"} <= set(fam["summary"]) and fam["cost"]["ms_per_image"] > 0
    assert any(n.startswith(f"unclip was given ({tiny})") for n in results["notes"])
    report = (out / "report.md").read_text()
    assert "| unclip |" in report
    # regression: the report stated a training budget, seeds and trials though nothing was trained
    assert "Every model was given (--load)" in report and "Budget per family run" not in report


def test_a_given_model_retrained_in_place_is_not_read_back_from_reuse(tmp_path):
    """Regression: `--reuse` keyed a given model's diffusion study by its name, so the built-ins' report kept the
    guidance sweep of a shapes-ldm since retrained. The fingerprint now holds the folder's digest."""
    from t2i.bench.config import BenchConfig, resolve
    from t2i.bench.store import folder_digest
    from t2i.builtin import resolve as builtin_folder
    from train.bench import Bench

    model = tmp_path / "ldm"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "config.json").write_text('{"a": 1}')
    (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights-1")
    (model / "notes.md").write_text("not part of the model")
    bench = Bench.__new__(Bench)  # the fingerprint needs only the settings
    bench.cfg, bench.kind = resolve(BenchConfig(quick=True)), "shapes"
    before = bench.study_fingerprint(str(model), None)
    assert before["model_digest"] == folder_digest(model) != ""
    (model / "notes.md").write_text("edited notes")
    assert bench.study_fingerprint(str(model), None) == before  # only weights and configs count
    (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights-2")
    assert bench.study_fingerprint(str(model), None) != before
    assert "model_digest" not in bench.study_fingerprint(str(model), ["--steps=2"])  # trained here: its argv says it
    assert folder_digest("shapes-ldm") == folder_digest(builtin_folder("shapes-ldm")) != ""
    assert folder_digest("org/not-downloaded") == ""


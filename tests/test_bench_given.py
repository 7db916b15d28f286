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
    assert "unclip" in (out / "report.md").read_text()

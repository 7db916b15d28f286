"""benchmarks.recount_flops: an old report's FLOPs re-counted from its results.json, nothing re-trained."""

import copy

import pytest
import torch
import torch.nn.functional as F

import t2i.bench.cost as cost
from benchmarks.recount_flops import apply, old_and_new


def results(first_stage: bool = True) -> dict:
    """A two-family sweep record: ldm (step 100 FLOPs, a first stage of 5 steps x 50) and cgan (step 40)."""
    fs = 5 * 50 if first_stage else 0

    def family(step: int, extra: int, gflop: float) -> dict:
        stages = [{"steps": s, "flops": float(s * step + extra)} for s in (10, 20)]
        return {"step_flops": step, "first_stage_flops": float(extra), "steps": 20,
                "seeds": {"0": {"stages": copy.deepcopy(stages)}, "1": {"stages": copy.deepcopy(stages)}},
                "rungs": [{"multiple": m, "steps": s["steps"], "flops": s["flops"]} for m, s in zip((1, 2), stages)],
                "cost": {"train_flops": float(20 * step + extra), "gflop_per_image": gflop}}
    ldm = family(100, fs, 0.4)
    if first_stage:
        ldm["first_stage"] = {"steps": 5, "step_flops": 50, "flops": fs}
    return {"families": {"ldm": ldm, "cgan": family(40, 0, 0.01)}}


def test_every_rung_becomes_its_steps_times_the_new_count_plus_the_new_first_stage():
    r = results()
    changes = apply(r, {"ldm": {"step": 120, "first_stage_step": 60, "gflop_per_image": 0.5},
                        "cgan": {"step": 40, "gflop_per_image": 0.01}})
    ldm = r["families"]["ldm"]
    assert ldm["first_stage"]["flops"] == 300 and ldm["first_stage_flops"] == 300.0
    assert [s["flops"] for s in ldm["seeds"]["1"]["stages"]] == [10 * 120 + 300, 20 * 120 + 300]
    assert [x["flops"] for x in ldm["rungs"]] == [1500.0, 2700.0]
    assert ldm["cost"] == {"train_flops": 2700.0, "gflop_per_image": 0.5} and ldm["step_flops"] == 120
    assert r["families"]["cgan"]["rungs"][1]["flops"] == 800.0  # unchanged
    assert changes[-1] == "cgan unchanged (no attention)" and any("ldm step 100 -> 120" in c for c in changes)


def test_a_record_that_is_not_steps_times_step_is_refused_and_nothing_is_changed_silently():
    r = results()
    r["families"]["ldm"]["seeds"]["0"]["stages"][1]["flops"] += 1e3  # not 20 x 100 + 250
    with pytest.raises(SystemExit, match="not steps x step"):
        apply(r, {"ldm": {"step": 120, "first_stage_step": 60, "gflop_per_image": 0.5}})


def test_the_old_counter_is_the_one_that_missed_attention_on_the_cpu():
    q = torch.randn(1, 2, 8, 4)
    old, new = old_and_new(lambda: cost.count_flops(lambda: F.scaled_dot_product_attention(q, q, q))[1])
    assert old == 0 and new == 4 * 1 * 2 * 8 * 8 * 4  # 4 B H L S D (t2i.bench.cost.cpu_attention_formulas)
    assert cost.count_flops(lambda: F.scaled_dot_product_attention(q, q, q))[1] == new  # the real counter restored

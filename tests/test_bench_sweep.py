"""The budget sweep (``t2i bench --ladder``): crossover against a hand-computed example, its bootstrap,
the plateau test, the Pareto front, total cost, the ladder's checks, the result store, and a kill -9 resume (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from t2i.bench.families import ladder_steps
from t2i.bench.report import render_report, summary_lines, wall_time
from t2i.bench.scoring import measures
from t2i.bench.store import ResultStore, continued_plan, log_invocation
from t2i.bench.sweep import (AHEAD, CROSSED, IMPROVING, NO_OVERLAP, NOT_LEARNING, NOT_REACHED, PLATEAU, TOO_SHORT,
                             WORSE, add_diversity_gap, crossing, crossover, crossovers, interpolate_log, pareto_front,
                             parse_ladder, parse_ladder_tops, plateau, plateaus, sweep_summary, total_cost)

X = [1.0, 2.0, 4.0]
RISING, FLAT = [0.0, 0.2, 0.6], [0.3, 0.3, 0.3]


def test_crossing_matches_hand_computed_example():
    """d = A - B = (-0.3, -0.1, +0.3): the zero lies a quarter of the way from 2 to 4 in log2 budget,
    log2 x = 1 + 0.1 / 0.4 = 1.25, so x = 2 ** 1.25 = 2.3784."""
    status, x = crossing(X, [RISING], X, [FLAT], higher=True)
    assert status == CROSSED and x == pytest.approx(2 ** 1.25)
    # lower is better (an FID): the same curves mirrored cross at the same budget
    status, x = crossing(X, [[-v for v in RISING]], X, [[-v for v in FLAT]], higher=False)
    assert status == CROSSED and x == pytest.approx(2 ** 1.25)


def test_crossing_statuses():
    assert crossing(X, [FLAT], X, [RISING], higher=True) == (NOT_REACHED, None)  # behind at the top
    assert crossing(X, [[0.5, 0.6, 0.7]], X, [FLAT], higher=True) == (AHEAD, 1.0)
    assert crossing([8.0, 16.0], [[1.0, 1.0]], X, [FLAT], higher=True) == (NO_OVERLAP, None)
    # ahead, behind, ahead again: the crossing that lasts is the second one (between 2 and 4)
    assert crossing(X, [[0.5, 0.2, 0.6]], X, [FLAT], higher=True)[1] == pytest.approx(2 ** 1.25)
    # different rungs (diffusion's are shifted by its first stage): B is interpolated in log budget onto A's
    status, x = crossing([2.0, 4.0], [[0.2, 0.6]], X, [FLAT], higher=True)
    assert status == CROSSED and x == pytest.approx(2 ** 1.25)


def test_crossover_bootstrap_over_seeds():
    """Seeds 0.1 apart: the mean crosses at 2 ** 1.25; the resampled crossings spread around it."""
    seeds_a = [[v - 0.1 for v in RISING], RISING, [v + 0.1 for v in RISING]]
    c = crossover(X, seeds_a, X, [FLAT], higher=True, n_boot=200)
    assert c["status"] == CROSSED and c["budget"] == pytest.approx(2 ** 1.25)
    lo, hi = c["interval"]
    assert 2.0 <= lo < c["budget"] < hi <= 4.0 and c["reached"] == 1.0
    assert crossover(X, seeds_a, X, [FLAT], higher=True, n_boot=200) == c  # seeded: the same interval
    assert crossover(X, [FLAT], X, [RISING], higher=True, n_boot=20)["interval"] is None


def test_plateau_is_a_paired_test_over_the_last_doubling():
    x = [1.0, 2.0, 4.0, 8.0]
    rising = [[0.1, 0.2, 0.40, 0.50], [0.1, 0.2, 0.41, 0.52], [0.1, 0.2, 0.39, 0.50]]  # +0.10, +0.11, +0.11
    p = plateau(x, rising, higher=True)
    assert (p["status"], p["from"], p["to"]) == (IMPROVING, 4.0, 8.0)
    assert p["change"] == pytest.approx(0.32 / 3) and p["stderr"] == pytest.approx(0.01 / 3 ** 0.5 / 3 ** 0.5)
    flat = [[0.1, 0.5, 0.60, 0.61], [0.1, 0.5, 0.62, 0.60], [0.1, 0.5, 0.60, 0.615]]  # +0.01, -0.02, +0.015
    assert plateau(x, flat, higher=True)["status"] == PLATEAU
    # lower is better (a distance): falling is improving, rising is getting worse
    assert plateau(x, [[9, 8, 5.0, 3.0], [9, 8, 5.2, 3.1], [9, 8, 4.9, 3.0]], higher=False)["status"] == IMPROVING
    assert plateau(x, [[9, 8, 3.0, 5.0], [9, 8, 3.1, 5.2], [9, 8, 3.0, 4.9]], higher=False)["status"] == WORSE
    # a large but noisy change is not called improving on 3 seeds; the change is still reported
    noisy = plateau(x, [[0, 0, 0.2, 0.6], [0, 0, 0.5, 0.45], [0, 0, 0.3, 0.5]], higher=True)
    assert noisy["status"] == PLATEAU and noisy["change"] == pytest.approx(0.55 / 3)
    # flat from the first rung on (a model still at chance) is not a plateau reached
    assert plateau(x, [[0.08, 0.09, 0.08, 0.08], [0.08, 0.08, 0.09, 0.08], [0.09, 0.08, 0.08, 0.09]],
                   higher=True)["status"] == NOT_LEARNING
    # no rung at or below half the top: nearest one below half is used; none at all: too short
    assert plateau([1.0, 3.0, 4.0], [[0, 0.2, 0.5]] * 2, higher=True)["from"] == 1.0
    assert plateau([1.0, 1.5], [[0, 1], [0, 1]], higher=True)["status"] == TOO_SHORT


def test_pareto_front_and_total_cost():
    points = [{"c": 1.0, "q": 0.1}, {"c": 2.0, "q": 0.5}, {"c": 3.0, "q": 0.4}, {"c": 0.5, "q": 0.1},
              {"c": 4.0, "q": 0.9}, {"c": None, "q": 1.0}]
    assert pareto_front(points, "c", "q", higher=True) == [3, 1, 4]
    assert pareto_front(points, "c", "q", higher=False) == [3]
    assert total_cost(1e12, 2e8, (1e3, 1e6)) == [1e12 + 2e11, 1e12 + 2e14]
    assert interpolate_log([1.0, 4.0], [0.0, 2.0], 2.0) == pytest.approx(1.0)
    assert interpolate_log([1.0, 4.0], [0.0, 2.0], 8.0) is None


def test_ladder_parsing_and_steps():
    assert parse_ladder("1,2,4,8,16,32,64") == [1, 2, 4, 8, 16, 32, 64]
    for bad in ("", "2,1", "0,1", "1,1"):
        with pytest.raises(ValueError, match="increasing positive multiples"):
            parse_ladder(bad)
    assert ladder_steps([5, 10, 20], [1, 2, 4]) == [5, 10, 20]
    with pytest.raises(ValueError, match="raise the base budget"):
        ladder_steps([1, 1, 2], [1, 2, 4])
    from t2i.bench.config import BenchConfig, resolve

    assert resolve(BenchConfig(quick=True, ladder="1,2")).budget_fractions == "1"  # the fraction default is unused
    with pytest.raises(ValueError, match="not both"):
        resolve(BenchConfig(quick=True, ladder="1,2", budget_fractions="0.5,1"))


def test_ladder_tops_name_a_rung_and_need_a_ladder():
    from t2i.bench.config import BenchConfig, resolve

    assert parse_ladder_tops("cgan=128, cvae-label=64", [1, 64, 128]) == {"cgan": 128.0, "cvae-label": 64.0}
    assert parse_ladder_tops("", [1, 2]) == {}
    for bad in ("cgan=3", "cgan", "=2", "cgan=x"):
        with pytest.raises(ValueError, match="--ladder-top takes FAMILY=RUNG"):
            parse_ladder_tops(bad, [1, 2, 4])
    assert resolve(BenchConfig(quick=True, ladder="1,2,4", ladder_top="cvae=2")).ladder_top == "cvae=2"
    with pytest.raises(ValueError, match="give --ladder too"):
        resolve(BenchConfig(quick=True, ladder_top="cvae=2"))
    with pytest.raises(ValueError, match="one of --ladder's"):
        resolve(BenchConfig(quick=True, ladder="1,2,4", ladder_top="cvae=8"))


def _seeds_family(curves: list[list[float]], flops: list[float], top: float | None = None) -> dict:
    """A family's sweep record: one curve of acc_all per seed at ``flops``; ``top``: its --ladder-top."""
    return {"seeds": {str(i): {"stages": [{"flops": f, "metrics": {"acc_all": v}} for f, v in zip(flops, c)]}
                      for i, c in enumerate(curves)},
            "rungs": [{"multiple": f, "flops": f, "cpu_hours": None} for f in flops], "ladder_top": top}


def test_the_last_doubling_is_the_ladders_even_with_a_one_off_cost_in_the_flops():
    """Regression: latent diffusion's FLOPs carry a one-off latent-cache build (2.24e12), so its x512 rung (5.34e13)
    sat just above half of its x1024 rung (1.05e14), and the plateau test compared x1024 with x256: its recall read
    "+0.135: still improving" while it fell from 0.789 to 0.763 over the last doubling."""
    flops = [2.78e13, 5.34e13, 1.05e14]  # x256, x512, x1024 of the shapes sweep, cache build included
    recall = [[0.62, 0.79, 0.76], [0.64, 0.785, 0.74], [0.625, 0.79, 0.78]]
    assert plateau(flops, recall, higher=True)["from"] == 2.78e13  # on the FLOPs alone: two doublings back
    p = plateau(flops, recall, higher=True, multiples=[256, 512, 1024])
    assert (p["from"], p["to"], p["status"]) == (5.34e13, 1.05e14, PLATEAU) and p["change"] == pytest.approx(-0.085 / 3)
    family = {"seeds": {str(i): {"stages": [{"flops": f, "metrics": {"recall": v}} for f, v in zip(flops, seed)]}
                        for i, seed in enumerate(recall)},
              "rungs": [{"multiple": m, "flops": f} for m, f in zip([256, 512, 1024], flops)]}
    assert plateaus({"ldm": family}, ["recall"], {"recall": True})[0]["from"] == 5.34e13


def test_a_family_ended_at_its_plateau_is_held_there_by_the_crossover():
    """cgan rose, then stayed flat over its last doubling, and its ladder ended at x4; ldm, still rising, passes cgan's
    top value (0.55) halfway between x8 and x16 in log budget (-0.1 at x8, +0.1 at x16): crossed at 2 ** 3.5. A family
    ended while still improving is not held: there the crossing is sought within the common range only."""
    ldm = _seeds_family([[v + e for v in (0.0, 0.1, 0.2, 0.45, 0.65)] for e in (-0.01, 0.0, 0.01)], [1, 2, 4, 8, 16])
    cgan = _seeds_family([[0.1, 0.5, 0.5], [0.2, 0.6, 0.61], [0.1, 0.55, 0.54]], [1, 2, 4], top=4)
    cvae = _seeds_family([[0.1, 0.3, 0.5], [0.1, 0.31, 0.52], [0.12, 0.3, 0.49]], [1, 2, 4], top=4)
    assert plateau([1, 2, 4], [[0.1, 0.5, 0.5], [0.2, 0.6, 0.61], [0.1, 0.55, 0.54]], True)["status"] == PLATEAU
    got = {c["other"]: c for c in crossovers({"ldm": ldm, "cgan": cgan, "cvae": cvae}, "ldm", ["acc_all"],
                                             {"acc_all": True}, n_boot=50)}
    assert got["cgan"]["status"] == CROSSED and got["cgan"]["budget"] == pytest.approx(2 ** 3.5)
    assert got["cgan"]["held_from"] == 4 and got["cgan"]["reached"] > 0.5
    assert got["cvae"]["status"] == NOT_REACHED and got["cvae"]["held_from"] is None
    # the same cgan curves from a ladder that was not ended early: compared within the common range only
    cgan["ladder_top"] = None
    again = crossovers({"ldm": ldm, "cgan": cgan}, "ldm", ["acc_all"], {"acc_all": True}, n_boot=10)[0]
    assert again["status"] == NOT_REACHED and again["held_from"] is None


def test_store_is_keyed_by_fingerprint(tmp_path):
    store = ResultStore(tmp_path)
    fp = {"argv": ["--lr=2e-4"], "steps": 10}
    assert store.get("tgan-seed0", fp) is None
    store.put("tgan-seed0", fp, {"acc_all": 0.5})
    store.put_tensor("tgan-seed0", fp, torch.ones(2, 3))
    assert store.get("tgan-seed0", fp) == {"acc_all": 0.5} and store.get("tgan-seed0", {**fp, "steps": 20}) is None
    assert torch.equal(store.get_tensor("tgan-seed0", fp), torch.ones(2, 3))
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temporary file is left


def test_a_run_goes_on_when_rungs_are_added_and_only_then():
    plan = {"argv": ["--lr=2e-4"], "stages": [10, 20]}
    assert continued_plan(None, plan) is None and continued_plan(plan, dict(plan)) == plan
    longer = {**plan, "stages": [10, 20, 40]}
    assert continued_plan(plan, longer) == longer  # a rung on top: train on from step 20
    assert continued_plan(longer, plan) == longer  # a rung taken off: its stages are read back, the plan kept
    assert continued_plan(plan, {**plan, "stages": [10, 30, 40]}) is None  # another spacing: stage 30 is gone
    assert continued_plan(plan, {**longer, "argv": ["--lr=4e-4"]}) is None
    assert continued_plan({**plan, "first_stage": {"steps": 5}}, {**longer, "first_stage": {"steps": 10}}) is None


def test_a_diffusion_run_on_a_retrained_first_stage_is_not_read_back():
    """Regression: latent diffusion's argv names its first stage by path only; a sweep with another top rung
    retrains that first stage in place, so the run's plan and its scores' fingerprints must name the first stage."""
    from t2i.bench.config import BenchConfig, resolve
    from t2i.bench.families import FAMILIES
    from train.bench import Bench

    bench = Bench.__new__(Bench)  # the fingerprint arithmetic only: no judges, no data
    bench.cfg, bench.kind = resolve(BenchConfig(quick=True, ladder="1,2")), "shapes"
    bench.first_stage = "/work/vae-kl/lr0.0004-seed0"
    ldm, cvae = FAMILIES["ldm"], FAMILIES["cvae"]
    prints = []
    for steps in (309, 618):
        bench.first_stage_info = {"steps": steps, "options": ["--arch=f4-test"]}
        assert bench.run_inputs(cvae) == {}  # no first stage: the fingerprints of other families are unchanged
        run = {"argv": ["--vae=/work/vae-kl/lr0.0004-seed0"], "inputs": bench.run_inputs(ldm)}
        prints.append((bench.fingerprint(run, 25, 3.0), bench.study_fingerprint("/stage-25", run["argv"], run["inputs"])))
    assert prints[0][0] != prints[1][0] and prints[0][1] != prints[1][1]


def test_a_lead_no_better_than_the_prompt_blind_level_is_marked_at_chance():
    """A diffusion lead on a prompt-following measure at the level real images of other prompts reach (the
    2-object relation's ~0.27) is flagged, a lead above it is not, and without levels nothing is."""
    flops = [1, 2, 4]
    ldm = _seeds_family([[0.28, 0.27, 0.26], [0.27, 0.28, 0.27], [0.29, 0.26, 0.27]], flops)
    gan = _seeds_family([[0.0, 0.05, 0.2], [0.0, 0.04, 0.21], [0.01, 0.05, 0.19]], flops)
    at_chance = crossovers({"ldm": ldm, "tgan": gan}, "ldm", ["acc_all"], {"acc_all": True}, n_boot=10,
                           chance={"acc_all": 0.3})[0]
    assert at_chance["status"] == AHEAD and at_chance["at_chance"] == 0.3
    assert "at_chance" not in crossovers({"ldm": ldm, "tgan": gan}, "ldm", ["acc_all"], {"acc_all": True},
                                         n_boot=10, chance={"acc_all": 0.1})[0]
    assert "at_chance" not in crossovers({"ldm": ldm, "tgan": gan}, "ldm", ["acc_all"], {"acc_all": True}, n_boot=10)[0]


def test_scores_stored_under_earlier_judge_rules_are_not_read_back(monkeypatch):
    """Regression: the fingerprints named the evaluator but not its rules, so a sweep resumed after the 2-object
    relation judge changed would have mixed old and new scores along one curve."""
    import t2i.evaluators.shapes as shapes
    from t2i.bench.config import BenchConfig, resolve
    from train.bench import Bench

    bench = Bench.__new__(Bench)  # the fingerprint arithmetic only: no judges, no data
    bench.cfg, bench.kind = resolve(BenchConfig(quick=True, ladder="1,2")), "shapes"
    run = {"argv": ["--steps=2"], "inputs": {}}
    now = bench.fingerprint(run, 25, 3.0), bench.study_fingerprint("/stage-25", run["argv"])
    monkeypatch.setattr(shapes, "JUDGE_RULES", shapes.JUDGE_RULES + 1)
    later = bench.fingerprint(run, 25, 3.0), bench.study_fingerprint("/stage-25", run["argv"])
    assert now[0] != later[0] and now[1] != later[1]
    bench.cfg = resolve(BenchConfig(quick=True, ladder="1,2", data="digits"))  # digits has its own judge
    assert "judge_rules" not in bench.fingerprint(run, 25, None)


def test_a_report_re_made_from_stored_work_keeps_its_sampling_times(tmp_path, monkeypatch):
    """Regression: every invocation timed sampling again, so a report re-made from stored work moved its ms per
    image and total costs with the machine's load (28x slower in one re-render beside a CI run). The timing is
    stored with the model's digest, the request and the machine; another model or machine is timed again."""
    from types import SimpleNamespace

    import train.bench as tb
    from t2i.bench.config import BenchConfig, resolve
    from t2i.bench.families import FAMILIES

    bench = tb.Bench.__new__(tb.Bench)  # the cost bookkeeping only: no judges, no data
    bench.cfg = resolve(BenchConfig(quick=True, ladder="1,2"))
    bench.eval_set = SimpleNamespace(prompts=["a red circle", "a blue square"], labels=None)
    bench.store, bench.timed_before = ResultStore(tmp_path / "results"), {}
    timings = iter([1.5, 40.0, 7.0, 9.0, 10.0, 11.0])
    monkeypatch.setattr(tb, "sampling_cost", lambda gen, request, repeats: {"ms_per_image": next(timings)})
    monkeypatch.setattr(tb, "count_parameters", lambda gen: {"total": 3})
    model = tmp_path / "stage-25"
    model.mkdir()
    (model / "weights.safetensors").write_bytes(b"one")
    gen, tgan = SimpleNamespace(conditioning="text"), FAMILIES["tgan"]

    first = bench.cost(gen, tgan, None, model)
    assert first == {"parameters": {"total": 3}, "ms_per_image": 1.5} and bench.timed_before == {}
    assert bench.cost(gen, tgan, None, model) == first  # re-made: read back, not timed again at another load
    assert bench.timed_before["tgan"]["date"] and "load_average" in bench.timed_before["tgan"]
    (model / "weights.safetensors").write_bytes(b"two")  # retrained in place
    assert bench.cost(gen, tgan, None, model)["ms_per_image"] == 40.0
    here = tb.machine()
    monkeypatch.setattr(tb, "machine", lambda: {**here, "threads": here["threads"] + 1})  # another machine's setup
    assert bench.cost(gen, tgan, None, model)["ms_per_image"] == 7.0
    assert bench.cost(gen, tgan, None, "org/a-hub-model")["ms_per_image"] == 9.0  # no folder, no digest: its name
    assert bench.cost(gen, tgan, None, "org/another-hub-model")["ms_per_image"] == 10.0
    assert bench.cost(gen, tgan, None, "org/a-hub-model")["ms_per_image"] == 9.0
    bench.store = None  # no --reuse, no ladder: timed every time
    assert bench.cost(gen, tgan, None, model)["ms_per_image"] == 11.0


def test_a_report_made_from_stored_work_says_what_the_earlier_invocations_took(tmp_path):
    log = tmp_path / "invocations.json"
    assert log_invocation(log, "t2i bench --ladder 1,2 --out a", 50.0, "monday") == []
    earlier = log_invocation(log, "t2i bench --ladder 1,2 --out b", 2.0, "tuesday")
    assert [(e["command"], e["wall_minutes"]) for e in earlier] == [("t2i bench --ladder 1,2 --out a", 50.0)]
    assert wall_time({"wall_minutes": 2.0, "earlier_invocations": earlier}) == (
        "Wall time 2.0 min for this invocation, which reused the stored work of 1 earlier finished invocation(s) on "
        "its --work folder (52.0 min in all; invocations killed with kill -9 not counted; results.json lists their "
        "commands).")
    log_invocation(log, "t2i bench --ladder 1,2 --out c", 30.0, "wednesday", interrupted=True)
    earlier = log_invocation(log, "t2i bench --ladder 1,2 --out c", 1.0, "thursday")
    assert wall_time({"wall_minutes": 1.0, "earlier_invocations": earlier}).startswith(
        "Wall time 1.0 min for this invocation, which reused the stored work of 2 finished and 1 interrupted "
        "invocation(s) on its --work folder (83.0 min in all;")
    assert wall_time({"wall_minutes": 3.04}) == "Wall time 3.0 min."
    assert wall_time({"wall_minutes": 3.04, "training_minutes": 2.0, "config": {"workers": 2}}) == (
        "Wall time 3.0 min (training 2.0 min of it, in 2 worker processes).")
    assert wall_time({"wall_minutes": 3.04, "training_minutes": 2.0, "config": {"workers": 1}}) == (
        "Wall time 3.0 min (training 2.0 min of it).")
    assert len(json.loads(log.read_text())) == 4


def test_stage_cpu_time_is_kept_once_and_summed(tmp_path):
    from t2i.bench.cost import cpu_seconds_to, record_stage_time

    record_stage_time(tmp_path, 5, 2.0, 3.0)
    record_stage_time(tmp_path, 5, 0.1, 0.1)  # re-entered only to export after a kill: the real cost stays
    record_stage_time(tmp_path, 10, 1.0, 1.0)
    assert cpu_seconds_to(tmp_path, [5, 10]) == [2.0, 3.0]  # cumulative: one run, checkpointed
    assert cpu_seconds_to(tmp_path, [5, 20]) is None


def _family(a: list[float], flops: list[float], hours: list[float], cost: dict) -> dict:
    stages = [{"flops": f, "metrics": {"acc_all": v, "domain_fid": 10 - v}} for f, v in zip(flops, a)]
    return {"seeds": {"0": {"stages": stages}, "1": {"stages": stages}},
            "rungs": [{"multiple": 2 ** i, "steps": i + 1, "flops": f, "cpu_hours": h}
                      for i, (f, h) in enumerate(zip(flops, hours))],
            "summary": {"acc_all": {"mean": a[-1], "std": 0.0, "n": 2}}, "cost": cost}


def test_sweep_summary_and_report():
    fams = {"tgan": _family(FLAT, X, [0.1, 0.2, 0.4], {"train_flops": 4.0, "gflop_per_image": 0.01,
                                                       "ms_per_image": 0.5}),
            "ldm": _family(RISING, X, [0.2, 0.4, 0.8], {"train_flops": 4.0, "gflop_per_image": 0.3,
                                                        "ms_per_image": 10.0})}
    fams["ldm"]["sampling"] = {"sampler": "ddim", "steps": 20}
    study = {"family": "ldm", "sampler_curves": {"ddim": [
        {"steps": 5, "metrics": {"acc_all": 0.5}, "ms_per_image": 3.0, "gflop_per_image": 0.08}]}}
    higher = {"acc_all": True, "domain_fid": False}
    sweep = sweep_summary(fams, "ldm", study, measures("shapes").crossover, higher, n_boot=50, threads=1)
    by_metric = {c["metric"]: c for c in sweep["crossovers"]}
    assert set(by_metric) == {"acc_all", "domain_fid"}  # the metrics the records have
    assert by_metric["acc_all"]["budget"] == pytest.approx(2 ** 1.25)
    assert by_metric["acc_all"]["cpu_hours"] == pytest.approx(0.4 + 0.25 * 0.4)  # ldm's hours at 2 ** 1.25, log-linear
    assert [sweep["sampling_points"][i]["label"] for i in sweep["pareto"]["gflop_per_image"]] == [
        "tgan", "ldm ddim 5", "ldm (ddim, 20 steps)"]
    tgan = sweep["total_cost"][0]
    assert tgan["flops"][0] == pytest.approx(4.0 + 1e3 * 0.01e9)
    assert tgan["cpu_hours"][-1] == pytest.approx(0.4 + 1e7 * 0.5e-3 / 3600)
    results = {"command": "t2i bench --ladder 1,2,4", "config": {"data": "shapes", "size": 32, "seeds": 2, "trials": 1},
               "machine": {"cpu": "cpu", "cores": 2, "threads": 1, "device": "cpu", "torch": "x", "python": "3",
                           "date": "today"}, "budget": {"kind": "flops", "value": 1.0},
               "eval": {"conditions": 4, "images_per_prompt": 2, "images": 8, "seed": 0, "reference_images": 10},
               "floor": {}, "families": fams, "sweep": sweep}
    text = render_report(results, {})
    assert "## Crossover: where diffusion overtakes" in text and "crossed: at 2.378 FLOPs" in text
    assert "## Total cost" in text and "## Sampling cost" in text and "| tgan | x4 | 3 |" in text
    plateaus = {(p["family"], p["metric"]): p["status"] for p in sweep["plateaus"]}
    assert plateaus[("ldm", "acc_all")] == IMPROVING and ("tgan", "acc_all") in plateaus
    assert "## Plateau: has each family stopped improving?" in text and ": still improving" in text
    short = next(line for line in text.splitlines() if line.startswith("**In short**"))  # the answer, before the notes
    assert text.index(short) < text.index("## Quality")
    assert "on prompt acc. (all correct): ldm overtakes tgan at 2.378 FLOPs" in short
    assert "ldm 0.600 +/- 0.000 at x4 (4.000 FLOPs)" in short and "ldm still improving" in short
    by_metric["acc_all"].update(status=NOT_REACHED, budget=None)
    assert "ldm has not overtaken tgan (not reached within the ladder). Top rungs" in render_report(results, {})


def test_a_sweep_of_one_family_opens_with_its_top_rung_and_plateau_verdict():
    """Regression: the "In short" line needed a crossover, so a ladder of one family (diffusion alone, e.g. its
    guidance rule re-made) opened straight with its notes."""
    fams = {"ldm": _family(RISING, X, [0.2, 0.4, 0.8], {"train_flops": 4.0, "gflop_per_image": 0.3,
                                                        "ms_per_image": 10.0})}
    higher = {"acc_all": True, "domain_fid": False}
    sweep = sweep_summary(fams, "ldm", None, measures("shapes").crossover, higher, n_boot=50, threads=1)
    assert sweep["crossovers"] == []
    short = summary_lines({"families": fams, "sweep": sweep})[0]
    assert short == ("**In short**, on prompt acc. (all correct): Top rung (mean over seeds): ldm 0.600 +/- 0.000 "
                     "at x4 (4.000 FLOPs). Over the last doubling: ldm still improving.")
    assert summary_lines({"families": fams, "sweep": {}}) == []  # no ladder: nothing to say before the tables


# a ladder small enough for a test: one family, two rungs (three when extended), two seeds, a few prompts
TINY = ["--quick", "--families=cvae", "--budget-flops=1e10", "--seeds=2", "--n=500", "--eval-prompts=4",
        "--novel-prompts=2", "--reference-images=64", "--cpu=true"]


def _bench(out: Path, work: Path, ladder: str = "1,2", extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "train.bench", *TINY, f"--ladder={ladder}", f"--out={out}",
                             f"--work={work}", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _scores(results: dict) -> dict:
    """What must not change between runs: every stage's metrics (wall-clock times left out)."""
    return {name: {seed: [{k: v for k, v in st["metrics"].items() if k != "ms_per_image"} | {"flops": st["flops"]}
                          for st in s["stages"]] for seed, s in fam["seeds"].items()}
            for name, fam in results["families"].items()}


@pytest.mark.slow
def test_ladder_resumes_after_kill_9_and_extends_without_retraining(tmp_path):
    """Kill -9 a sweep once its first rung is scored, rerun the same command: nothing finished is redone. The longer
    ladder with the family ended at x2 (--ladder-top) trains nothing. Then add a rung on top: each run goes on from its
    last rung. The scores equal an uninterrupted run of the long ladder's."""
    whole = _bench(tmp_path / "whole", tmp_path / "whole-work", ladder="1,2,4")
    killed = _bench(tmp_path / "out", tmp_path / "work")
    results = tmp_path / "work" / "results"
    deadline = time.time() + 900
    while not list(results.glob("cvae-seed0-step*.json")):
        assert killed.poll() is None and time.time() < deadline, killed.communicate()[0][-3000:]
        time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    first = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    assert 1 <= len(first) < 4 and not (tmp_path / "out" / "results.json").exists()  # 2 seeds x 2 rungs in all

    rerun = _bench(tmp_path / "out", tmp_path / "work")
    log = rerun.communicate()[0]
    assert rerun.returncode == 0, log[-3000:]
    assert all((results / n).stat().st_mtime_ns == t for n, t in first.items())  # the scored rung was read back
    assert "training cvae (lr 0.001, seed 0)" not in log and "training cvae (lr 0.001, seed 1)" in log
    resumed = json.loads((tmp_path / "out" / "results.json").read_text())
    rungs = resumed["families"]["cvae"]["rungs"]
    assert len(rungs) == 2 and rungs[0]["steps"] < rungs[1]["steps"]
    assert [r["cpu_hours_from"] for r in rungs] == ["process CPU time"] * 2 and 0 < rungs[0]["cpu_hours"] < rungs[1]["cpu_hours"]
    assert "cores" in resumed["machine"] and "Machine:" in (tmp_path / "out" / "report.md").read_text()

    snapshots = {p: p.stat().st_mtime_ns for p in (tmp_path / "work" / "cvae").glob("*/stage-*/*")}
    capped = _bench(tmp_path / "capped", tmp_path / "work", ladder="1,2,4", extra=["--ladder-top=cvae=2"])
    log = capped.communicate()[0]
    assert capped.returncode == 0 and "bench: training" not in log, log[-3000:]  # ended at x2: nothing to train
    capped_results = json.loads((tmp_path / "capped" / "results.json").read_text())
    capped = capped_results["families"]["cvae"]
    assert [r["multiple"] for r in capped["rungs"]] == [1, 2] and capped["ladder_top"] == 2
    assert capped["cost"]["ms_per_image"] == resumed["families"]["cvae"]["cost"]["ms_per_image"]  # read back
    assert any(n.startswith("sampling cost (ms/image") for n in capped_results["notes"])
    extended = _bench(tmp_path / "out", tmp_path / "work", ladder="1,2,4")
    log = extended.communicate()[0]
    assert extended.returncode == 0, log[-3000:]
    assert whole.wait() == 0
    top = json.loads((tmp_path / "whole" / "results.json").read_text())["families"]["cvae"]["rungs"][-1]["steps"]
    assert [line for line in log.splitlines() if line.startswith("bench: training cvae")] == [
        f"bench: training cvae (lr 0.001, seed {seed}) to step {top}" for seed in (0, 1)]  # the new rung only
    assert all(p.stat().st_mtime_ns == t for p, t in snapshots.items())
    extended, uninterrupted = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("out", "whole"))
    assert json.dumps(_scores(extended), sort_keys=True) == json.dumps(_scores(uninterrupted), sort_keys=True)  # NaN too


def test_diversity_ranks_on_the_gap_to_the_real_ratio_so_prompt_blind_noise_does_not_lead():
    """Regression: noise that ignores the prompt has a diversity ratio near 1, above real data's, and a sweep on the
    raw ratio called diffusion "ahead from the smallest budget" while it drew noise."""
    families = {"ldm": {"seeds": {"0": {"stages": [{"metrics": {"diversity_ratio": 1.0}},
                                                   {"metrics": {"diversity_ratio": 0.72}}]}}},
                "cgan": {"seeds": {"0": {"stages": [{"metrics": {"diversity_ratio": 0.5}},
                                                    {"metrics": {"diversity_ratio": 0.6}}]}}}}
    add_diversity_gap(families, real_ratio=0.7)
    gaps = {n: [round(st["metrics"]["diversity_gap"], 6) for st in f["seeds"]["0"]["stages"]] for n, f in families.items()}
    assert gaps == {"ldm": [0.3, 0.02], "cgan": [0.2, 0.1]}
    x = [1.0, 2.0]
    assert crossing(x, [gaps["ldm"]], x, [gaps["cgan"]], higher=False)[0] == CROSSED  # behind first, ahead at the top
    assert crossing(x, [[1.0, 0.72]], x, [[0.5, 0.6]], higher=True)[0] == AHEAD  # what the raw ratio said


def test_the_real_floor_has_its_own_diversity_ratio_when_conditions_repeat():
    from t2i.bench.scoring import RealSet, Scorer, real_set
    from t2i.evaluators.digits import DigitsClassifier

    reference = real_set("digits", 100, 0, seed=2)
    scorer = Scorer("digits", reference.images, DigitsClassifier.from_pretrained())
    floor = scorer.floor(real_set("digits", 60, 0, seed=3, split="train"))
    assert 0.3 < floor["diversity_ratio"] < 0.95  # a digit varies less within its class than across classes
    unique = real_set("digits", 4, 0, seed=3, split="train")  # too few repeated classes to say
    assert "diversity_ratio" not in scorer.floor(RealSet(unique.images, unique.captions, unique.novel, [0, 1, 2, 3]))


def test_the_plateau_summary_says_who_has_stopped_improving():
    """A family flat on one metric and getting worse on another has stopped improving, though it is not flat on
    every metric; one still improving anywhere has not (the digits sweep's cgan at x256: recall fell)."""
    from t2i.bench.report import plateau_lines
    from t2i.bench.scoring import HEADLINE

    def p(family: str, metric: str, status: str) -> dict:
        return {"family": family, "metric": metric, "status": status, "change": 0.0, "stderr": 0.01}

    text = "\n".join(plateau_lines([p("cgan", "acc_all", PLATEAU), p("cgan", "recall", WORSE),
                                    p("ldm", "acc_all", IMPROVING), p("ldm", "recall", PLATEAU),
                                    p("tgan", "acc_all", PLATEAU), p("tgan", "recall", NOT_LEARNING)],
                                   ["acc_all", "recall"]))
    assert "Within noise on every metric at the top of the ladder: none." in text
    assert "Stopped improving (within noise, or getting worse) on every metric: cgan." in text
    assert f"ldm still improving on: {HEADLINE['acc_all'][0]}." in text


def test_the_diversity_ratio_is_marked_best_at_the_real_value_not_higher():
    """Regression: tables and plots called the diversity ratio "higher is better", while a model that ignores its
    prompt has the highest ratio (about 1) and real images score 0.14 on shapes."""
    from t2i.bench.plots import _label

    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "shapes" / "results.json").read_text())
    header = next(line for line in render_report(results, {}).splitlines() if line.startswith("| model | prompt acc."))
    assert "| diversity ratio ~ |" in header and "diversity ratio ^" not in header and "| domain FID v |" in header
    assert _label("diversity_ratio") == "diversity ratio (best at real's)"
    assert _label("recall") == "recall (higher is better)"


def test_a_crossing_not_reached_reports_both_curves_at_equal_flops():
    """Regression: a diffusion top rung that cost more FLOPs (its latent cache's build) read 0.306 against the GAN's
    0.294 while the crossover said 'not reached': at the GAN's top budget diffusion's curve is still below. The
    report line now gives both seed means at that common budget."""
    from t2i.bench.report import sweep_lines

    ldm = _seeds_family([[0.0, 0.1, 0.31], [0.0, 0.1, 0.30], [0.0, 0.1, 0.31]], [1.1e12, 2.2e12, 4.4e12])
    gan = _seeds_family([[0.1, 0.25, 0.30], [0.1, 0.25, 0.29], [0.1, 0.25, 0.30]], [1e12, 2e12, 4e12])
    c = crossovers({"ldm": ldm, "tgan": gan}, "ldm", ["acc_all"], {"acc_all": True}, n_boot=10)[0]
    assert c["status"] == NOT_REACHED
    top = c["common_top"]
    assert top["flops"] == 4e12 and top["other"] == pytest.approx(0.89 / 3)  # the GAN's top rung itself
    assert 0.92 / 3 > top["other"]  # diffusion's own top rung reads ahead, at 4.4e12 FLOPs
    assert 0.1 < top["diffusion"] < top["other"]  # its curve at 4e12, between 2.2e12 and 4.4e12 in log FLOPs
    for rung in ldm["rungs"] + gan["rungs"]:
        rung["steps"] = 10
    results = {"sweep": {"crossovers": [c], "metric": "acc_all", "plateaus": [], "sampling_points": [], "pareto": {},
                         "total_cost": {}}, "families": {"ldm": ldm, "tgan": gan}}
    line = next(l for l in sweep_lines(results) if l.startswith("- ldm vs tgan"))
    assert f"(at equal FLOPs, 4e+12: ldm {top['diffusion']:.3f}, tgan 0.297)" in line


def test_a_report_shows_the_guidance_chosen_at_every_stage():
    def sweep(at_1: float, at_3: float) -> list[dict]:
        return [{"guidance": g, "metrics": {"acc_all": v}, "ms_per_image": 1.0} for g, v in ((1.0, at_1), (3.0, at_3))]

    diffusion = {"family": "ldm", "guidance_sweep": sweep(0.3, 0.6), "chosen_guidance": 3.0, "sweep_sampler": "ddim",
                 "sweep_steps": 4, "select_metric": "acc_all"}
    results = {"command": "t2i bench --ladder 1,2", "config": {"data": "shapes", "size": 32, "seeds": 3, "trials": 1},
               "machine": {"cpu": "cpu", "cores": 2, "threads": 1, "device": "cpu", "torch": "x", "python": "3",
                           "date": "today"}, "budget": {"kind": "flops", "value": 1.0},
               "eval": {"conditions": 4, "images_per_prompt": 2, "images": 8, "seed": 0, "reference_images": 10},
               "floor": {}, "families": {"ldm": {"summary": {"acc_all": {"mean": 0.5, "std": 0.0, "n": 3}}}},
               "diffusion": diffusion}
    assert "used for every seed's evaluation" in render_report(results, {})  # --guidance-at top
    diffusion["stage_guidance"] = [{"steps": 10, "guidance_sweep": sweep(0.2, 0.1), "chosen_guidance": 1.0},
                                   {"steps": 20, "guidance_sweep": sweep(0.3, 0.6), "chosen_guidance": 3.0}]
    text = render_report(results, {})
    assert "every lower stage was scored at its own best (--guidance-at stage" in text
    assert "| steps | chosen | guidance 1 | guidance 3 |" in text
    assert "| 10 | 1 | 0.200 | 0.100 |" in text and "| 20 | 3 | 0.300 | 0.600 |" in text


@pytest.mark.slow
def test_guidance_at_stage_scores_each_rung_at_its_own_best_and_keeps_it_when_the_ladder_grows(tmp_path):
    """--guidance-at stage: each lower rung of latent diffusion is scored at the scale its own seed-0 model does best
    with on the validation prompts, so adding a rung on top re-scores nothing below it (with --guidance-at top the
    lower rungs are scored at the new top's scale)."""
    from t2i.bench.evaluate import select

    work = tmp_path / "work"
    args = ["--quick", "--families=ldm", "--seeds=1", "--guidance-at=stage", "--ldm-options=--cache", "--n=500",
            "--first-stage-flops=3e10", "--eval-prompts=4", "--novel-prompts=2", "--reference-images=64",
            "--cpu=true", f"--work={work}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def bench(ladder: str, out: Path) -> dict:
        done = subprocess.run([sys.executable, "-m", "train.bench", *args, f"--ladder={ladder}", f"--out={out}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert done.returncode == 0, done.stdout[-3000:]
        return json.loads((out / "results.json").read_text())

    def scored_at() -> dict[int, tuple[float, int]]:
        """Each stored seed-0 score: its step -> (the guidance in its fingerprint, the file's mtime)."""
        files = [p for p in (work / "results").glob("ldm-seed0-step*.json") if "-guidance-" not in p.name]
        stored = {p: json.loads(p.read_text()) for p in files}
        return {r["record"]["steps"]: (r["fingerprint"]["guidance"], p.stat().st_mtime_ns) for p, r in stored.items()}

    short = bench("1,2", tmp_path / "short")
    stages = short["diffusion"]["stage_guidance"]
    assert [s["steps"] for s in stages] == [r["steps"] for r in short["families"]["ldm"]["rungs"]]
    for stage in stages:  # each stage's own best on the validation prompts
        points = stage["guidance_sweep"]
        assert stage["chosen_guidance"] == points[select([p["metrics"] for p in points], "acc_all")]["guidance"]
    assert stages[-1]["chosen_guidance"] == short["diffusion"]["chosen_guidance"]  # the top's is the study's
    chosen = {s["steps"]: s["chosen_guidance"] for s in stages}
    assert {r["steps"]: r["guidance"] for r in short["families"]["ldm"]["rungs"]} == chosen
    before = scored_at()
    assert {steps: g for steps, (g, _) in before.items()} == chosen  # each rung was scored at its own scale

    grown = bench("1,2,4", tmp_path / "grown")
    rungs = grown["families"]["ldm"]["rungs"]
    assert [r["guidance"] for r in rungs[:2]] == [chosen[r["steps"]] for r in rungs[:2]]
    after = scored_at()
    assert all(after[steps] == before[steps] for steps in before)  # read back, not scored again
    assert len(after) == 3 and "by guidance at every stage of seed 0" in (tmp_path / "grown" / "report.md").read_text()

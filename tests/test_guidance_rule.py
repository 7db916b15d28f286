"""benchmarks/guidance_rule.py: two reports of the same runs under the two guidance rules, side by side."""

from __future__ import annotations

import json

import pytest

from benchmarks.guidance_rule import METRICS, cut_at, main


def _family(acc: list[list[float]], guidance: list[float] | None = None, steps=(10, 20, 40)) -> dict:
    """A family of one report: one acc_all curve per seed (every other metric fixed), rungs at 1e12, 2e12, 4e12."""
    rungs = [{"multiple": 2 ** i, "steps": s, "flops": 1e12 * 2 ** i} for i, s in enumerate(steps)]
    for rung, g in zip(rungs, guidance or []):
        rung["guidance"] = g
    seeds = {str(k): {"stages": [{"flops": r["flops"], "metrics": {**{m: 0.5 for m in METRICS}, "acc_all": a}}
                                 for r, a in zip(rungs, curve)]} for k, curve in enumerate(acc)}
    return {"rungs": rungs, "seeds": seeds}


def _write(folder, families: dict, chosen: float) -> str:
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"families": families, "diffusion": {"chosen_guidance": chosen}}))
    return str(folder)


def test_the_rules_side_by_side_and_the_crossover_under_each(tmp_path, capsys):
    vae = _family([[0.3, 0.3, 0.3]] * 3)
    top = _write(tmp_path / "top", {"ldm": _family([[0.1, 0.2, 0.4]] * 3), "cvae": vae}, chosen=3.0)
    stage = _write(tmp_path / "stage", {"ldm": _family([[0.1, 0.35, 0.45]] * 3, guidance=[3.0, 7.5, 3.0])}, chosen=3.0)
    assert main(["--top", top, "--stage", stage, "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| x")}
    assert rows["| x1"].endswith("the same on every seed (to 1e-4)")  # same scale, same scores
    assert "| 3 / 7.5 | 0.200 / 0.350 |" in rows["| x2"] and "the same" not in rows["| x2"]
    # top: 0.2 -> 0.4 crosses 0.3 half-way (log) between 2e12 and 4e12; stage: 0.1 -> 0.35 between 1e12 and 2e12
    line = next(line for line in out.splitlines() if "ldm vs cvae, prompt acc. (all correct)" in line)
    assert f"top: {2e12 * 2 ** 0.5:.3g}" in line and f"stage: {1e12 * 2 ** 0.8:.3g}" in line


def test_reports_of_other_runs_are_refused(tmp_path):
    top = _write(tmp_path / "top", {"ldm": _family([[0.1, 0.2, 0.4]] * 3)}, chosen=3.0)
    stage = _write(tmp_path / "stage", {"ldm": _family([[0.1, 0.2, 0.4]] * 3, [3.0] * 3, steps=(10, 21, 40))}, 3.0)
    with pytest.raises(SystemExit, match="train different steps"):
        main(["--top", top, "--stage", stage])


def test_a_family_whose_ladder_ended_early_is_held_at_its_plateau_as_the_bench_holds_it(tmp_path, capsys):
    # the GAN's ladder ends at x4 (--ladder-top), flat over its last doubling: the bench's crossovers hold it at 0.3
    # beyond, so diffusion (0.2 -> 0.4) overtakes it half-way (log) between 4e12 and 8e12; compared only within the
    # common range (to 4e12) it would never cross (regression: the script did that)
    gan = _family([[0.1, 0.3, 0.3], [0.1, 0.31, 0.3], [0.1, 0.29, 0.3]]) | {"ladder_top": 4.0}
    ldm = _family([[0.05, 0.1, 0.2, 0.4]] * 3, guidance=[3.0] * 4, steps=(10, 20, 40, 80))
    top = _write(tmp_path / "top", {"ldm": ldm, "tgan": gan}, chosen=3.0)
    stage = _write(tmp_path / "stage", {"ldm": ldm}, chosen=3.0)
    assert main(["--top", top, "--stage", stage, "--bootstrap", "20"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "ldm vs tgan, prompt acc." in line)
    assert f"stage: {4e12 * 2 ** 0.5:.3g}" in line and "tgan held at its top rung beyond 4e+12" in line
    # a ladder cut below the GAN's top never ended it early: no hold there
    assert cut_at(gan, 2.0)["ladder_top"] is None and len(cut_at(gan, 2.0)["rungs"]) == 2
    assert cut_at(gan, 4.0)["ladder_top"] == 4.0

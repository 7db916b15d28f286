"""Reproduce the built-in default models: train each by its recipe, measure it, install it.

Each recipe is one ordinary `t2i train ...` command; this entry point runs them in order
(the CLIP first: the generators condition on it), then copies each finished model into
``t2i/builtin/<name>/`` with a ``metrics.json`` and a model card (recipe, data, steps,
training time and hardware, measured metrics). Uses the GPU when accelerate finds one.

    t2i train defaults                       # everything (vae-kl + ldm alone: 27 min on 2 idle CPU cores)
    t2i train defaults --only digits-ae,digits-vae
    t2i train defaults --quick --out /tmp/d  # 2-step smoke run of every recipe, nothing installed
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from t2i.builtin import BUILTIN, ROOT
from t2i.config import parse_config
from t2i.model_card import flat_numbers
from t2i.provenance import RECORD


@dataclasses.dataclass
class Recipe:
    name: str  # built-in short name
    module: str  # entry point run as module.main(args)
    args: list[str]  # its options; {clip}, {vae}, {ldm} and {ldm_fast} are filled in (the run or the installed model)
    artifact: str  # the model folder inside the run folder
    data: str  # what it trains on, for the model card
    quick: list[str] = dataclasses.field(default_factory=list)  # extra options of the --quick smoke run
    parts: tuple[str, ...] = ()  # entries of the artifact folder to install; () = all of it
    half: bool = False  # install a float16 copy of a diffusers folder (half the bytes; loaders compute in float32)
    linked: tuple[str, ...] = ()  # parts identical to those of the built-in `links_to`: installed as relative links (one copy)
    links_to: str = ""  # the built-in (in the same root) that holds the linked parts
    before: tuple[list[str], ...] = ()  # options of earlier runs, in order, into <run>/stage1, stage2, ...; {previous} = the model of the run before, {previous_run} its run folder
    before_module: str = ""  # entry point of the earlier runs ("" = module)
    before_quick: list[str] | None = None  # extra options of the earlier runs in --quick (None = quick)


TEXT_GENERATORS = ("shapes-tgan", "shapes-cvae", "shapes-ldm", "shapes-ldm-fast", "shapes-ldm-6", "shapes-unclip")  # measured by prompt accuracy after training
MEASURE_PROMPTS = {False: 200, True: 4}  # prompts per split and kind (one / two objects; full, --quick)
DISTILLED_PARTS = ("model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae", "t2i_sampling.json",
                   "t2i_distill.json")  # what a distilled pipeline installs (its run folder holds checkpoints and grids too)
QUICK = ["--steps", "2", "--batch-size", "8", "--log-every", "1", "--checkpoint-every", "0"]

TGAN_CAPTIONS = ("--diversity-weight", "0.02", "--perturbed-negatives", "0.5", "--perturbed-kinds",
                 "swap_shapes,replace_object_shape,replace_shape", "--reworded-captions", "0.3",
                 "--partial-captions", "0.5")  # shapes-tgan's training options, in both of its runs

RECIPES: list[Recipe] = [
    # four runs, each from the last one's model (t2i/builtin/shapes-clip/README.md says why): NegCLIP on plain shapes; relations
    # (75% two-object scenes, swapped twins); partial captions; the image tower alone on half one-object scenes
    Recipe("shapes-clip", "train.clip", ["--preset", "t2i-tiny-relations", "--pretrained", "{previous}", "--lock-text",
                                         "--p-two", "0.5", "--partial-captions", "0.5", "--steps", "300", "--lr", "3e-4",
                                         "--warmup", "30", "--save-dtype", "float16"],
           "model", "shapes 32 px, train split (20000 scenes; 50-75% with two objects)", ["--n", "64", "--eval-n", "16"],
           before=(["--preset", "t2i-tiny-negclip"],
                   ["--preset", "t2i-tiny-relations", "--pretrained", "{previous}"],
                   ["--preset", "t2i-tiny-relations", "--pretrained", "{previous}", "--partial-captions", "0.5",
                    "--steps", "300", "--lr", "3e-4", "--warmup", "30"])),
    # the attention text GAN (gan_baselines.tgan_attn); the simple pooled-embedding one stays `t2i train tgan`
    # D also takes perturbed captions as wrong ones (shape swaps and replacements: its measured blind spot); two
    # convolutions per resolution in G and D draw and judge small shapes (RESULTS.md: "Text GAN: two convolutions ...");
    # 30% of one-object captions reworded (without the articles; two-object ones too, from the first step, lost their
    # colours: RESULTS.md); then 6000 steps more from that run (G, D, Adam) with every scene's captions reworded and 30%
    # of the closing full stops toggled (from the start, each cost two-object colours or held-out pairs; going on from
    # a trained run, 2-5 points of the caption as written: RESULTS.md "The text GAN going on with two-object
    # rewordings"; seed 1: the best of three)
    Recipe("shapes-tgan", "train.tgan_attn", ["--init", "{previous_run}", "--steps", "6000", *TGAN_CAPTIONS,
                                              "--reworded-scenes", "all", "--full-stops", "0.3", "--seed", "1"],
           "model", "shapes 32 px, train split", ["--n", "32", "--eval-n", "4"],
           before=(["--clip", "{clip}", "--steps", "16500", "--g-full", "32", "--d-full", "32", "--g-attn", "4,8,16",
                    "--g-depth", "2", "--d-depth", "2", *TGAN_CAPTIONS, "--reworded-scenes", "one"],),
           before_quick=["--n", "32", "--g-channels", "16,16,8", "--d-channels", "8,8,16", "--text-width", "16",
                         "--eval-n", "0"]),
    Recipe("shapes-cvae", "train.cvae", ["--text-encoder", "{clip}", "--steps", "3000"],
           "model", "shapes 32 px, train split", ["--n", "32"]),
    Recipe("shapes-vae-kl", "train.vae_kl", ["--preset", "shapes-f4"],
           "vae", "shapes 32 px, train split", ["--n", "32", "--arch", "f4-test", "--scale-images", "16",
                                                  "--eval-images", "16"], half=True),
    # 70% two-object scenes for relations; half the one-object scenes captioned partially, for held-out colour-shape pairs
    # and 30% of the others' captions reworded (no articles, sizes, 'right of'), so that such prompts are read alike
    Recipe("shapes-ldm", "train.ldm", ["--preset", "shapes-tiny", "--vae", "{vae}", "--clip", "{clip}", "--p-two", "0.7",
                                       "--partial-captions", "0.5", "--reworded-captions", "0.3", "--fused-adamw"],
           ".", "shapes 32 px, train split", ["--n", "32", "--unet", "test"],
           ("model_index.json", "scheduler", "text_encoder", "tokenizer", "unet", "vae", "t2i_sampling.json",
            "t2i_training.json"), half=True),
    # shapes-ldm's guidance distilled into one UNet pass per step (issue 19); it shares shapes-ldm's VAE and text encoder
    Recipe("shapes-ldm-fast", "train.distill", ["--preset", "shapes-guidance", "--teacher", "{ldm}",
                                                 "--reworded-captions", "0.3"],
           ".", "shapes 32 px, train split (70% two-object scenes, as its teacher)", ["--n", "32"],
           DISTILLED_PARTS, half=True, linked=("text_encoder", "tokenizer", "vae"), links_to="shapes-ldm"),
    # shapes-ldm-fast's 12 DDIM steps halved to 6 by progressive distillation (issue 19): the app's default
    # (with shapes-ldm's partial captions: without, the rewordings cost it 0.04-0.07 on held-out one-object pairs)
    Recipe("shapes-ldm-6", "train.distill", ["--preset", "shapes-progressive", "--teacher", "{ldm_fast}",
                                              "--reworded-captions", "0.3", "--partial-captions", "0.5"],
           ".", "shapes 32 px, train split (70% two-object scenes, as its teacher)", ["--n", "32"],
           DISTILLED_PARTS, half=True, linked=("text_encoder", "tokenizer", "vae"), links_to="shapes-ldm"),
    # DALL-E 2 style (issue 17): a prior on shapes-clip (stage1), then the decoder, assembled into prior/ + decoder/
    Recipe("shapes-unclip", "train.unclip", ["--preset", "shapes-unclip", "--clip", "{clip}", "--vae", "{vae}",
                                             "--prior", "{previous}"],
           ".", "shapes 32 px, train split (prior: 50% two-object scenes; decoder: 70%)", ["--n", "32", "--unet", "test"],
           ("prior", "decoder", "t2i_unclip.json", "t2i_training.json"), half=True,
           before=(["--preset", "shapes-prior", "--clip", "{clip}"],), before_module="train.prior",
           before_quick=["--n", "32", "--eval-splits", ""]),
    Recipe("digits-ae", "train.ae", ["--variant", "plain", "--latent-dim", "2", "--hidden", "96", "--steps", "3000",
                                     "--batch-size", "64", "--lr", "2e-3", "--data", "digits"],
           "model", "scikit-learn digits at 32 px, train split (1442 images)", ["--n", "32"]),
    Recipe("digits-vae", "train.vae", ["--latent-dim", "2", "--hidden", "96", "--steps", "3000", "--batch-size", "64",
                                       "--lr", "2e-3", "--data", "digits"],
           "model", "scikit-learn digits at 32 px, train split (1442 images)", ["--n", "32"]),
]


@dataclasses.dataclass
class DefaultsConfig:
    out: str = "runs/defaults"  # folder of the training runs (one sub-folder per model)
    only: str = ""  # comma-separated built-in names to (re)train; "" = all, in dependency order
    quick: bool = False  # 2-step smoke run of every recipe; installs nothing
    install: bool = True  # copy the finished models into --builtin-root (with --quick only into another root)
    builtin_root: str = str(ROOT)  # where models are installed


def fill(args: Sequence[str], clip: str, vae: str, previous: str = "", ldm: str = "", ldm_fast: str = "",
         previous_run: str = "") -> list[str]:
    return [a.replace("{clip}", clip).replace("{vae}", vae).replace("{previous}", previous).replace("{ldm}", ldm)
            .replace("{ldm_fast}", ldm_fast).replace("{previous_run}", previous_run) for a in args]


def same_content(a: Path, b: Path) -> bool:
    """Same tensors (safetensors), same settings (JSON, where it was loaded from aside) or same bytes."""
    if a.suffix == ".safetensors":
        from safetensors.torch import load_file

        x, y = load_file(a), load_file(b)
        return x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]) for k in x)
    if a.suffix == ".json":
        def settings(path: Path) -> Any:
            data = json.loads(path.read_text())
            return {k: v for k, v in data.items() if k != "_name_or_path"} if isinstance(data, dict) else data
        return settings(a) == settings(b)
    return a.read_bytes() == b.read_bytes()


def link_shared(folder: Path, parts: Sequence[str], teacher: Path) -> None:
    """Replace ``folder/part`` by a relative link to the same part of the installed ``teacher`` after checking
    they hold the same files (stock diffusers follows the links; the repository holds one copy)."""
    for part in parts:
        ours, theirs = folder / part, teacher / part
        for file in sorted(p for p in ours.rglob("*") if p.is_file()):
            twin = theirs / file.relative_to(ours)
            if not twin.is_file() or not same_content(file, twin):
                raise RuntimeError(f"{file} differs from {twin}: cannot share {part}/ with {teacher.name}")
        shutil.rmtree(ours)
        ours.symlink_to(Path("..") / teacher.name / part, target_is_directory=True)


def model_card(recipe: Recipe, command: str, seconds: float, metrics: dict[str, Any]) -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    lines = [f"# {recipe.name}", "", BUILTIN.get(recipe.name, ""), "",
             "| | |", "|---|---|", f"| recipe | `{command}` |", f"| data | {recipe.data} |",
             f"| training time | {seconds / 60:.1f} min |", f"| hardware | {device}, torch {torch.__version__} |",
             "", "Reproduce with `t2i train defaults --only " + recipe.name + "`.", "", "## Measured", ""]
    lines += [f"- {k}: {v}" for k, v in metrics.items()] or ["- (no metrics recorded)"]
    return "\n".join(lines) + "\n"


def collect_metrics(run: Path) -> dict[str, Any]:
    """Figures the trainer wrote: eval.json / *metrics.json summaries at the run's top level."""
    found: dict[str, Any] = {}
    for path in sorted(run.glob("*.json")):
        if path.name in ("config.json",):
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        for key, value in flat_numbers(data).items():
            if len(found) < 40:
                found[f"{path.stem}.{key}"] = round(value, 4) if isinstance(value, float) else value
    return found


def save_half_copy(source: Path, dest: Path) -> None:
    """A float16 copy of a pipeline folder (``model_index.json``) or of an AutoencoderKL folder."""
    if (source / "model_index.json").is_file():
        from t2i.diffusion.interop import save_half

        save_half(source, dest)
    elif (source / "t2i_unclip.json").is_file():
        from t2i.unclip.pipeline import save_half

        save_half(source, dest)
    else:
        from t2i.diffusion.first_stage import load_vae

        load_vae(source).to(torch.float16).save_pretrained(str(dest))


def prompt_accuracy_metrics(folder: Path, n: int, seed: int = 0) -> dict[str, float]:
    """Shapes-evaluator prompt accuracy of a text generator on ``n`` one-object and ``n`` two-object
    prompts of the test split (seen colour-shape pairs) and of the novel split (held-out pairs);
    one image each. Two-object prompts add attribute binding and the spatial relation. Within each
    (split, kind) list, prompt i is drawn from seed + i (``t2i sample --prompts FILE --seed SEED`` on
    that list makes the same images)."""
    from gan_baselines.registry import load_generator
    from t2i.data.shapes import prompts
    from t2i.evaluators.shapes import prompt_accuracy
    from t2i.generator import generate_conditions

    gen = load_generator(folder)
    found: dict[str, float] = {}
    for split in ("test", "novel"):
        for kind, keys in (("one", ("colour", "shape", "all_correct")),
                           ("two", ("colour", "shape", "binding", "relation", "all_correct"))):
            captions = [caption for caption, _ in prompts(n, seed=seed, split=split, kind=kind)]
            images = generate_conditions(gen, captions, seed=seed, n=1)
            acc = prompt_accuracy(images, captions)[kind]
            name = "one_object" if kind == "one" else "two_object"
            found.update({f"{split}_{name}_{k}": round(float(acc[k]), 3) for k in keys})
    return found


CONFIGS = ("config.json", "t2i_training.json", "t2i_unclip.json", "t2i_distill.json")  # JSON that names other models


def name_models(folder: Path, names: dict[str, str]) -> None:
    """In ``folder``'s configs, name the models they were trained from (``names``: path -> built-in name)
    by their built-in names, not by paths that exist only on the machine that trained them. Whole JSON
    strings only, so ``.../shapes-ldm`` never rewrites ``.../shapes-ldm-fast``."""
    for config in (folder / c for c in CONFIGS):
        if not config.is_file():
            continue
        text = config.read_text()
        for path, name in names.items():
            for form in {path, str(Path(path).resolve())}:
                text = text.replace(json.dumps(form), json.dumps(name))
        config.write_text(text)


def install(recipe: Recipe, run: Path, root: Path, names: dict[str, str], command: str, seconds: float,
            quick: bool = False) -> Path:
    """Copy a finished run's model into ``root`` (half precision, linked parts, configs naming other models by
    their built-in names: ``names``, path -> name), measure it, and write its card."""
    source = run / recipe.artifact
    if not source.is_dir():
        raise FileNotFoundError(f"{recipe.name}: the run did not write {source}")
    target = root / recipe.name
    tmp = root / f".{recipe.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if recipe.half:
        save_half_copy(source, tmp)
        for part in recipe.parts:  # files beside the pipeline that the half copy does not write
            if (source / part).is_file() and not (tmp / part).exists():
                shutil.copy2(source / part, tmp / part)
    elif recipe.parts:
        tmp.mkdir(parents=True)
        for part in recipe.parts:
            copy = shutil.copytree if (source / part).is_dir() else shutil.copy2
            copy(source / part, tmp / part)
    else:
        shutil.copytree(source, tmp)
    if not (tmp / RECORD).exists() and (run / RECORD).is_file():  # a run's `model/`: the record is in the run folder
        shutil.copy2(run / RECORD, tmp / RECORD)  # (what it was trained on, for the app's wording advice)
    if recipe.linked and (root / recipe.links_to).is_dir():  # else (a smoke run's root without it) keep the copies
        link_shared(tmp, recipe.linked, root / recipe.links_to)
    name_models(tmp, names)
    metrics = collect_metrics(run)
    if recipe.name in TEXT_GENERATORS:
        metrics.update(prompt_accuracy_metrics(tmp, MEASURE_PROMPTS[quick]))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (tmp / "README.md").write_text(model_card(recipe, command, seconds, metrics))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(DefaultsConfig, argv, prog="t2i train defaults", description=__doc__)
    names = [r.name for r in RECIPES]
    wanted = [n for n in cfg.only.split(",") if n] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"t2i train defaults: unknown name(s) {unknown}; choose from {names}")
    runs, root = Path(cfg.out), Path(cfg.builtin_root)

    def installed(name: str) -> str:  # in --builtin-root, else the shipped one
        return str(root / name) if (root / name).is_dir() else str(ROOT / name)

    clip = str(runs / "shapes-clip" / "model") if "shapes-clip" in wanted else installed("shapes-clip")
    vae = str(runs / "shapes-vae-kl") if "shapes-vae-kl" in wanted else installed("shapes-vae-kl")
    may_install = cfg.install and (not cfg.quick or root.resolve() != ROOT.resolve())  # a smoke run never overwrites
    for recipe in RECIPES:
        if recipe.name not in wanted:
            continue
        run = runs / recipe.name
        outs = [run / f"stage{i + 1}" for i in range(len(recipe.before))] + [run]
        modules = [recipe.before_module or recipe.module] * len(recipe.before) + [recipe.module]
        quick = [(recipe.quick if recipe.before_quick is None else recipe.before_quick)] * len(recipe.before) + [recipe.quick]
        # the teachers of shapes-ldm-fast and shapes-ldm-6 (each installed before its student when both are trained)
        ldm, ldm_fast = installed("shapes-ldm"), installed("shapes-ldm-fast")
        # {previous} of a stage = the model of the stage before (the artifact of an earlier run of the final module,
        # the whole run folder of an earlier run of another module: a prior run is its model)
        previous = [""] + [str(outs[i] / recipe.artifact) if modules[i] == recipe.module else str(outs[i])
                           for i in range(len(recipe.before))]
        stages = [fill(args, clip, vae, previous[i], ldm, ldm_fast, str(outs[i - 1]) if i else "")
                  + ["--out", str(outs[i])] + (QUICK + quick[i] if cfg.quick else [])
                  for i, args in enumerate([*recipe.before, recipe.args])]
        command = " && ".join(f"t2i train {module.split('.')[-1].replace('_', '-')} " + " ".join(
            a.replace(installed("shapes-clip"), "shapes-clip").replace(installed("shapes-vae-kl"), "shapes-vae-kl")
            .replace(installed("shapes-ldm-fast"), "shapes-ldm-fast").replace(installed("shapes-ldm"), "shapes-ldm")  # installed models by their short names
            for a in args) for module, args in zip(modules, stages))
        print(f"[defaults] {recipe.name}: {command}", flush=True)
        start = time.perf_counter()
        for module, args in zip(modules, stages):
            importlib.import_module(module).main(args)
        seconds = time.perf_counter() - start
        if may_install:
            names = {installed(n): n for n in ("shapes-clip", "shapes-vae-kl", "shapes-ldm", "shapes-ldm-fast")}  # the teachers
            if recipe.name != "shapes-clip":
                names[clip] = "shapes-clip"  # a CLIP trained in this call, installed as shapes-clip before it
            target = install(recipe, run, root, names, command, seconds, cfg.quick)
            print(f"[defaults] installed {recipe.name} -> {target} ({seconds / 60:.1f} min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

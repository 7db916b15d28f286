"""The model card every training run writes into its folder: ``README.md``, as the Hugging Face hub reads it.

A run folder is meant to be uploaded as it is (``hf upload NAME RUN --exclude 'checkpoints/*'``), and the hub shows a
repository's ``README.md`` as its page and reads the YAML header for the library, the task, the base
model and the example widget (``huggingface_hub.ModelCardData``), as diffusers' training scripts write
one per run (``save_model_card``). The card is made from the folder alone, after the trainer saved:

- the header: ``library_name`` (diffusers, open_clip; none for the toolkit's own GAN / VAE folders),
  ``pipeline_tag``, ``tags``, ``base_model`` and ``datasets`` where they are hub ids, and a ``widget``
  (the last sample grid and its first prompt);
- how to use it: the ``t2i`` command, and the stock library's code where the layout is a stock one
  (``StableDiffusionPipeline`` with the folder's own sampling defaults, ``load_lora_weights`` on the
  base, Kandinsky 2.2's prior and decoder, ``AutoencoderKL``, open_clip's ``local-dir:``); uploaded, its hub
  name in the folder's place (``t2i.hub``);
- how it was trained: the command that re-makes it (``t2i train NAME --config RUN/config.json``), the
  main options, the data and its caption count (``t2i_training.json``), time and memory
  (``run_cost.json``), the last logged training values (``metrics.jsonl``);
- what it measured: every number of the run's own summaries (``eval.json``, ``*_metrics.json``).

    python -c "from t2i.model_card import model_card; print(model_card('t2i/builtin/shapes-ldm', 'ldm'))"
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from t2i.provenance import read_json_object as read_json
from t2i.runtime.checkpoint import stopped_run

CARD = "README.md"
KEPT_ASIDE = "README.t2i.md"  # the card's name beside a README.md that is not one
MARK = "<!-- written by t2i.model_card: rewritten by each run and by `t2i card` -->"
# run options worth a row of the card's training table, in this order (every option is in config.json)
SHOWN_OPTIONS = ("data", "image_column", "caption_column", "size", "resize", "background", "init", "teacher", "vae",
                 "clip", "text_encoder", "prior", "model", "pretrained", "arch", "unet", "lora_rank", "steps",
                 "batch_size", "grad_accum", "lr", "mixed_precision", "ema_decay", "seed")
# figures a trainer measured (a latent diffusion run: its first stage on the data, before training; the others at
# their end)
SUMMARIES = ("eval.json", "vae_metrics.json", "prior_metrics.json", "reconstruction_metrics.json",
             "first_stage_metrics.json")
MAX_FIGURES = 40  # rows of the measured table; the files hold the rest
TEXT_FAMILIES = ("tgan", "tgan-attn")  # GAN families conditioned on text (a cvae says so in its config)
TRANSLATORS = ("pix2pix", "cyclegan")


def flat_numbers(data: Any, prefix: str = "") -> dict[str, float | int]:
    """Every number of a nested JSON object, keyed by its dotted path (``splits.test.retrieval.image_to_text_R@1``)."""
    if isinstance(data, dict):
        found: dict[str, float | int] = {}
        for key, value in data.items():
            found.update(flat_numbers(value, f"{prefix}{key}."))
        return found
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return {prefix.rstrip("."): data}
    return {}


def collect_figures(folder: Path, limit: int = MAX_FIGURES) -> dict[str, float | int]:
    """The first ``limit`` numbers of the run's summaries (``SUMMARIES``), keyed by their path in the file (in
    another file than ``eval.json``: ``file-stem.path``)."""
    found: dict[str, float | int] = {}
    for name in SUMMARIES:
        for key, value in flat_numbers(read_json(folder / name)).items():
            if len(found) < limit and not key.startswith("config."):  # a copy of the options (config.json)
                found[key if name == "eval.json" else f"{Path(name).stem}.{key}"] = value
    return found


def last_logged(folder: Path) -> dict[str, Any]:
    """The last line of ``metrics.jsonl`` (the training loop's last logged values), {} without one."""
    path = folder / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def latest_grid(folder: Path) -> tuple[Path | None, list[str]]:
    """The run's last grid (``samples/NAME_STEP.png``: the highest step, samples before reconstructions of the
    same step) and the sample grids' prompts, if any."""
    def order(path: Path) -> tuple[int, bool]:
        name, _, step = path.stem.rpartition("_")
        return (int(step) if step.isdigit() else -1, name.startswith("sample"))

    grids = sorted((folder / "samples").glob("*.png"), key=order)
    prompts_file = folder / "samples" / "prompts.txt"
    prompts = [p for p in prompts_file.read_text(encoding="utf-8").splitlines() if p.strip()] \
        if prompts_file.is_file() else []
    return (grids[-1] if grids else None), prompts


def hub_id(name: Any) -> str | None:
    """``name`` when it names a hub repository (the header's ``base_model`` / ``datasets`` accept only those)."""
    from t2i.builtin import BUILTIN, looks_like_hub_id

    text = str(name or "").removeprefix("hf-hub:")  # open_clip names a hub model so
    return text if text and text not in BUILTIN and looks_like_hub_id(text) else None


def code(lines: list[str], language: str) -> list[str]:
    return [f"```{language}", *lines, "```", ""]


def py(text: Any) -> str:
    """``text`` as a Python string literal (a prompt or a path pasted into the card's code)."""
    return json.dumps(str(text), ensure_ascii=False)


def data_args(folder: Path) -> str:
    """``--data`` and the reading options of the run in ``folder``, for a model trained on what it made."""
    from t2i.data import READING_DEFAULTS

    config = read_json(folder / "config.json")
    given = [("data", config.get("data") or "DATA")]
    given += [(key, config[key]) for key, default in READING_DEFAULTS.items() if config.get(key, default) != default]
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(str(value))}" for key, value in given)


def sample_line(folder: Path, prompt: str | None, n: int, extra: str = "") -> str:
    """The ``t2i sample`` command of a generator folder (a prompt for text models)."""
    given = f" --prompt {shlex.quote(prompt)}" if prompt is not None else ""
    return f"t2i sample --model {shlex.quote(str(folder))}{given}{extra} --n {n} --out samples-{folder.name}"


def reading_lines(folder: Path) -> list[str]:
    """How a run read its training images, when not as stock code reads them (``--resize center-crop``,
    transparency onto black): the lines that read an image alike, for a model that takes images in. A CLIP
    trained on icons padded onto white retrieves far worse from the same icons centre-cropped onto black."""
    from t2i.data import READING_DEFAULTS, trained_options
    from t2i.data.transforms import BACKGROUNDS

    config = read_json(folder / "config.json")
    options, _ = trained_options(str(folder))  # as evaluation reads (a random crop's centre)
    resize, background = (options.get(key, READING_DEFAULTS[key]) for key in ("resize", "background"))
    if (resize, background) == (READING_DEFAULTS["resize"], READING_DEFAULTS["background"]):
        return []
    lines = ["from t2i.data.bad_data import decode_image", "from t2i.data.transforms import fit", "",
             f'rgb, _ = decode_image("photo.png", background={py(background)})  # transparent pixels onto {background}',
             f"image = fit(rgb, {config.get('size')}, {py(resize)}, background={BACKGROUNDS[background]})"]
    return [f"Its training images were read with `--resize {config.get('resize')} --background {background}`; read "
            "yours alike before stock code sees them (its preprocessing centre-crops, and `convert('RGB')` drops the "
            "alpha channel):", "",
            *code(lines, "python")]


# -------------------------------------------------------------- the "Use" section of each layout
# Each returns (header fields, markdown lines). A text-to-image folder's t2i line draws one image at seed 0,
# which its stock code draws too (prompt i of a t2i request is drawn from seed + i).

def lora_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """A LoRA run: stock diffusers loads its base, the parts it replaced, and its adapter(s) on the base."""
    base, adapters, parts = lora_chain(folder)
    record = read_json(folder / "t2i_lora.json")
    kwargs = [f'vae=AutoencoderKL.from_pretrained({py(parts["vae"])}, subfolder="vae")'] if "vae" in parts else []
    if "text_encoder" in parts:
        kwargs += [f'text_encoder=CLIPTextModel.from_pretrained({py(parts["text_encoder"])}, subfolder="text_encoder")',
                   f'tokenizer=CLIPTokenizer.from_pretrained({py(parts["text_encoder"])}, subfolder="tokenizer")']
    scheduler = scheduler_line(folder, base)
    classes = ["StableDiffusionPipeline", *(["AutoencoderKL"] if "vae" in parts else []), *scheduler[:1]]
    stock = ["import torch", f"from diffusers import {', '.join(sorted(classes))}"]
    stock += ["from transformers import CLIPTextModel, CLIPTokenizer"] if "text_encoder" in parts else []
    if hub_id(base):
        stock += ["", f"base = {py(base)}"]
    else:
        stock += ["from t2i.builtin import resolve", "",
                  f"base = str(resolve({py(base)}))  # a built-in name or a folder"]
    stock += [f"pipe = StableDiffusionPipeline.from_pretrained(base, {', '.join([*kwargs, 'safety_checker=None'])})"]
    if len(adapters) == 1:
        stock += [f"pipe.load_lora_weights({py(folder)})"]
    else:  # each adapter was trained on the weights of the ones before it: all of them, at full weight
        names = [f"lora{i}" for i in range(len(adapters))]
        stock += [f'pipe.load_lora_weights({py(run)}, adapter_name="{name}")' for run, name in zip(adapters, names)]
        stock += [f"pipe.set_adapters({names})"]
    stock += [*scheduler[1:], *stock_call(folder, prompt, read_json(folder / "config.json").get("size"))]
    header = {"library_name": "diffusers", "pipeline_tag": "text-to-image",
              "tags": ["diffusers", "text-to-image", "lora", "t2i"], "base_model": hub_id(base)}
    replaced = record.get("replaced") or []
    about = (f"LoRA adapters (rank {record.get('rank')}) on the UNet of `{record.get('base')}`"
             + (f", with its {' and '.join(replaced)} replaced (saved here)" if replaced else "") + ".")
    return header, [about, "", "With t2i:", "", *code([sample_line(folder, prompt, 1, " --seed 0")], "bash"),
                    "With stock diffusers (the same image):", "", *code(stock, "python")]


def pipeline_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """A pipeline folder (``model_index.json``): stock ``StableDiffusionPipeline`` when its text encoder is
    transformers' (ours is open_clip's otherwise: t2i only)."""
    header = {"library_name": "diffusers", "pipeline_tag": "text-to-image",
              "tags": ["diffusers", "text-to-image", "latent-diffusion", "t2i"]}
    lines = ["With t2i:", "", *code([sample_line(folder, prompt, 1, " --seed 0")], "bash")]
    if read_json(folder / "model_index.json").get("text_encoder", [None])[0] == "transformers":
        stock = ["import torch", "from diffusers import StableDiffusionPipeline", "",
                 f"pipe = StableDiffusionPipeline.from_pretrained({py(folder)}, safety_checker=None)",
                 *stock_call(folder, prompt)]
        lines += ["With stock diffusers (the same image):", "", *code(stock, "python")]
    return header, lines


def unclip_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """An unCLIP folder: Kandinsky 2.2's prior and decoder pipelines, with the folder's sampling defaults."""
    from t2i.config import config_from_dict
    from t2i.unclip.pipeline import UnCLIPOptions

    o = config_from_dict(UnCLIPOptions, read_json(folder / "t2i_unclip.json").get("options", {}))
    # the decoder's image side (Kandinsky's default is 512): its latent side x the MoVQ's factor
    unet, movq = (read_json(folder / "decoder" / part / "config.json") for part in ("unet", "movq"))
    side = unet.get("sample_size", 0) * 2 ** (len(movq.get("block_out_channels", [])) - 1)
    stock = ["import torch", "from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline", "",
             f"prior = KandinskyV22PriorPipeline.from_pretrained({py(folder / 'prior')})",
             f"decoder = KandinskyV22Pipeline.from_pretrained({py(folder / 'decoder')})",
             "generator = torch.Generator().manual_seed(0)  # the prior's draws, then the decoder's",
             f"embeds = prior({py(prompt)}, num_inference_steps={o.prior_steps}, guidance_scale={o.prior_guidance}, "
             "generator=generator)",
             "image = decoder(image_embeds=embeds.image_embeds, negative_image_embeds=embeds.negative_image_embeds,",
             f"                {f'height={side}, width={side}, ' if side else ''}num_inference_steps="
             f"{o.num_inference_steps}, guidance_scale={o.guidance_scale}, generator=generator).images[0]"]
    header = {"library_name": "diffusers", "pipeline_tag": "text-to-image",
              "tags": ["diffusers", "text-to-image", "unclip", "t2i"]}
    return header, ["With t2i:", "", *code([sample_line(folder, prompt, 1, " --seed 0")], "bash"),
                    "With stock diffusers (Kandinsky 2.2's two pipelines; the same image):", "", *code(stock, "python")]


def decoder_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """An unCLIP decoder trained without ``--prior``: image embeddings of its CLIP -> images; a prior makes it
    text-to-image."""
    stock = ["from diffusers import KandinskyV22Pipeline", "",
             f"decoder = KandinskyV22Pipeline.from_pretrained({py(folder / 'decoder')})",
             "# image_embeds: its CLIP's image embeddings (B, D); negative_image_embeds: the null embedding"]
    line = (f"t2i train unclip --config {shlex.quote(str(folder / 'config.json'))} --resume latest "
            "--prior PRIOR_RUN  # a `t2i train prior` run on the same CLIP")
    return ({"library_name": "diffusers", "tags": ["diffusers", "unclip", "decoder", "t2i"]},
            ["The decoder of an unCLIP model (Kandinsky 2.2's layout, `decoder/`): it draws an image from a CLIP image "
             "embedding. Give it a prior to draw from text:", "", *code([line], "bash"),
             "With stock diffusers:", "", *code(stock, "python")])


def prior_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """A CLIP prior (``t2i train prior``): the first half of an unCLIP model."""
    clip = read_json(folder / "t2i_prior.json").get("clip") or "CLIP"
    line = f"t2i train unclip --prior {shlex.quote(str(folder))} --clip {shlex.quote(str(clip))} {data_args(folder)}"
    return ({"library_name": "diffusers", "tags": ["diffusers", "unclip", "prior", "t2i"]},
            ["A diffusers `PriorTransformer` (`prior/`) from CLIP text to CLIP image embeddings, the first half of "
             "an unCLIP model:", "", *code([line], "bash")])


def first_stage_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """A first stage (``t2i train vae-kl``): diffusers' ``AutoencoderKL`` in ``vae/``."""
    stock = ["from diffusers import AutoencoderKL", "",
             f'vae = AutoencoderKL.from_pretrained({py(folder)}, subfolder="vae")',
             "# images (B, 3, H, W) in [0, 1] -> the latents a diffusion model on it learns",
             "latents = vae.encode(images * 2 - 1).latent_dist.sample() * vae.config.scaling_factor"]
    return ({"library_name": "diffusers", "tags": ["diffusers", "autoencoder", "first-stage", "t2i"]},
            ["The first stage of a latent diffusion model; train one on it with", "",
             *code([f"t2i train ldm --vae {shlex.quote(str(folder))} {data_args(folder)}"], "bash"),
             "With stock diffusers:", "", *code(stock, "python"), *reading_lines(folder)])


def clip_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """A CLIP run (``t2i train clip``): open_clip's layout in ``model/``."""
    model = folder / "model"
    stock = ["import open_clip", "",
             f"model, _, preprocess = open_clip.create_model_and_transforms({py('local-dir:' + str(model))})",
             f"tokenizer = open_clip.get_tokenizer({py('local-dir:' + str(model))})"]
    data = read_json(folder / "config.json").get("data")  # its own data's held-out split, read as it trained
    uses = [f"t2i eval clip --model {shlex.quote(str(model))} --data {shlex.quote(str(data)) if data else 'DATA'}",
            f"t2i train ldm --clip {shlex.quote(str(model))} {data_args(folder)}  # its text encoder"]
    return ({"library_name": "open_clip", "pipeline_tag": "zero-shot-image-classification",
             "tags": ["open_clip", "clip", "t2i"]},
            ["With t2i:", "", *code(uses, "bash"), "With stock open_clip:", "", *code(stock, "python"),
             *reading_lines(folder)])


def toolkit_usage(folder: Path, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """The toolkit's own generators and translators: ``model/`` (safetensors + ``config.json`` naming the family)."""
    config = read_json(folder / "model" / "config.json")
    family = str(config.get("family", ""))
    if family in TRANSLATORS:
        line = f"t2i translate --model {shlex.quote(str(folder))} --input IMAGES --out OUTPUTS"
        return ({"pipeline_tag": "image-to-image", "tags": [family, "gan", "image-to-image", "t2i"]},
                ["With t2i:", "", *code([line], "bash")])
    text = family in TEXT_FAMILIES or config.get("conditioning") == "text"
    labels = not text and (family == "cgan" or config.get("conditioning") == "label")
    names = config.get("class_names") or ["0", "1", "2"]  # a labelled folder's classes by name (digits: numbers)
    line = (sample_line(folder, prompt, 4) if text
            else sample_line(folder, None, 4, f" --labels {shlex.quote(','.join(names[:3]))}") if labels
            else sample_line(folder, None, 16))
    tag = "text-to-image" if text else None if labels else "unconditional-image-generation"
    return ({"pipeline_tag": tag, "tags": [family, "t2i"]},
            ["Saved in the toolkit's own layout (`model/`: safetensors and `config.json`); with t2i:", "",
             *code([line], "bash")])


# (marker file of a layout, the trainer that writes it, its "Use" section): the first that matches a folder wins
# (a LoRA run also has config.json, a distilled student model_index.json); model/config.json names its family
LAYOUTS = (("t2i_lora.json", "ldm", lora_usage), ("t2i_unclip.json", "unclip", unclip_usage),
           ("decoder/model_index.json", "unclip", decoder_usage),
           ("t2i_distill.json", "distill", pipeline_usage), ("model_index.json", "ldm", pipeline_usage),
           ("t2i_prior.json", "prior", prior_usage), ("vae/config.json", "vae-kl", first_stage_usage),
           ("model/open_clip_config.json", "clip", clip_usage), ("model/config.json", "", toolkit_usage))


def layout_of(folder: Path) -> tuple[str, str, Any]:
    """The ``LAYOUTS`` entry of ``folder``: FileNotFoundError naming the markers when none matches."""
    for marker, trainer, describe in LAYOUTS:
        if (folder / marker).is_file():
            return marker, trainer, describe
    if stopped := stopped_run(folder):
        raise stopped
    raise FileNotFoundError(f"{folder} holds no model that `t2i train ...` saved (none of "
                            f"{[marker for marker, _, _ in LAYOUTS]}): give a finished run's folder")


def lora_chain(folder: Path) -> tuple[str, list[str], dict[str, str]]:
    """A LoRA run's base pipeline (as recorded: a built-in name, a path or a hub id), its adapters from the
    base's up to its own (a LoRA trained on a LoRA run), and the runs holding the parts they replaced (the
    nearest run's), as ``t2i.diffusion.pipeline.load_lora_run`` assembles them."""
    from t2i.builtin import resolve

    adapters: list[str] = []
    parts: dict[str, str] = {}
    name, place = str(folder), folder
    while not isinstance(place, str) and (place / "t2i_lora.json").is_file():
        record = read_json(place / "t2i_lora.json")
        adapters.append(name)
        for part in record.get("replaced") or []:
            parts.setdefault(part, name)
        name = str(record.get("base") or "")
        place = resolve(name, hub=True, what=f"base pipeline of the LoRA run {adapters[-1]}")
    return name, adapters[::-1], parts


def scheduler_line(folder: Path, base: str) -> list[str]:
    """[class, the line that sets it] when the run samples with another solver than its base folder stores
    (``--sampler``), built as ``t2i.diffusion.pipeline.make_scheduler`` builds it; [] when they agree."""
    import inspect

    import diffusers

    from t2i.builtin import resolve
    from t2i.diffusion.options import SAMPLERS, load_sampling_options

    cls_name, overrides = SAMPLERS[load_sampling_options(folder).sampler]
    local = resolve(base, hub=True)
    stored = {} if isinstance(local, str) else read_json(Path(local) / "scheduler" / "scheduler_config.json")
    if stored.get("_class_name") == cls_name:
        return []
    given = dict(overrides)
    if "clip_sample" in inspect.signature(getattr(diffusers, cls_name).__init__).parameters:
        given["clip_sample"] = False  # latents are not images in [-1, 1] (make_scheduler's default)
    extra = "".join(f", {key}={value!r}" for key, value in given.items())
    return [cls_name, f"pipe.scheduler = {cls_name}.from_config(pipe.scheduler.config{extra})"]


def stock_call(folder: Path, prompt: str, size: int | None = None) -> list[str]:
    """The stock pipeline call with the folder's own sampling defaults (``t2i_sampling.json``), at ``size`` when
    given (a LoRA may be trained at another side than its base)."""
    from t2i.diffusion.options import load_sampling_options

    o = load_sampling_options(folder)
    negative = f", negative_prompt={py(o.negative_prompt)}" if o.negative_prompt else ""
    side = f"height={size}, width={size}, " if size else ""
    return ["generator = torch.Generator().manual_seed(0)",
            f"image = pipe({py(prompt)}, {side}num_inference_steps={o.num_inference_steps}, "
            f"guidance_scale={o.guidance_scale}{negative}, generator=generator).images[0]"]


def model_card(folder: str | Path, trainer: str | None = None) -> str:
    """The ``README.md`` text for the run folder ``folder`` that ``t2i train {trainer}`` wrote (read from the
    folder when None: ``trainer_of``)."""
    from huggingface_hub import ModelCardData

    folder = Path(folder)
    trainer = trainer or trainer_of(folder)
    config = read_json(folder / "config.json")
    record = read_json(folder / "t2i_training.json")
    grid, prompts = latest_grid(folder)
    prompt = prompts[0] if prompts else "a photo"
    header, use = layout_of(folder)[2](folder, prompt)
    data = config.get("data") or record.get("data")
    if grid is not None and prompts and header.get("pipeline_tag") == "text-to-image":
        header["widget"] = [{"text": prompts[0], "output": {"url": grid.relative_to(folder).as_posix()}}]
    # a fine-tune's base: --init, a distilled model's --teacher, a CLIP's --pretrained, the training record's base
    started = [config.get(key) for key in ("init", "teacher", "pretrained")] + [record.get("base")]
    header["base_model"] = header.get("base_model") or next((hub_id(m) for m in started if hub_id(m)), None)
    header["datasets"] = [hub_id(data)] if hub_id(data) else None
    card = ModelCardData(**{key: value for key, value in header.items() if value})

    command = f"t2i train {trainer} --config {folder / 'config.json'}"
    title = f"# {folder.name}: `t2i train {trainer}`" + (f" on {data}" if data else "")
    lines = ["---", card.to_yaml(), "---", MARK, "", title, ""]
    if grid is not None:
        shown = f" (prompts: `{grid.parent.name}/prompts.txt`)" if prompts else ""
        where = grid.relative_to(folder).as_posix()
        lines += [f"![the run's last grid]({where})", "", f"The run's last grid, `{where}`{shown}.", ""]
    shared = ("Uploaded to the hub as it is (`hf upload NAME RUN --exclude 'checkpoints/*'`), `NAME` takes the place "
              "of the folder in every `t2i` command (`t2i.hub`).")
    lines += ["## Use", "", *use, shared, "", "## Training", ""]
    if config:  # a run folder (a model copied elsewhere keeps only its parts)
        lines += [f"Re-made by `{command}` (every option is in `config.json`).", ""]
    lines += ["| option | value |", "| --- | --- |"]
    shown = [key for key in SHOWN_OPTIONS if config.get(key) not in (None, "")]
    if config.get("init") or config.get("teacher"):  # a fine-tune's architecture is its base's, not the option's
        shown = [key for key in shown if key not in ("unet", "arch")]
    lines += [f"| {key} | `{config[key]}` |" for key in shown]
    if record.get("captions"):
        words = record.get("words")
        lines += [f"| captions | {record['captions']}" + (f" ({len(words)} distinct words)" if words else "") + " |"]
    cost = read_json(folder / "run_cost.json")
    if cost:
        memory = cost.get("cuda_peak_mb", cost.get("peak_rss_mb"))
        lines += [f"| time | {cost['steps']} steps in {cost['wall_s'] / 60:.1f} min ({cost['s_per_step']:.3f} s/step) "
                  f"on {cost['device']}, {cost['processes']} process(es), {cost['torch_threads']} torch threads |",
                  f"| peak memory | {memory} MB |"]
    logged = {k: v for k, v in last_logged(folder).items() if isinstance(v, (int, float)) and k != "step"}
    if logged:
        values = ", ".join(f"{k} {v:.4g}" for k, v in logged.items())
        lines += [f"| last logged (`metrics.jsonl`) | {values} |"]
    # the loop's curves first, then the trainer's own pictures (a GAN's game.png, a first stage's reconstructions.png)
    pictures = sorted(folder.glob("*.png"), key=lambda path: (path.name != "curves.png", path.name))
    lines += [line for path in pictures for line in ("", f"![{path.stem}]({path.name})")]
    figures = collect_figures(folder)
    if figures:
        lines += ["", "## Measured", "", "Figures the trainer measured (the files beside this card):", "",
                  "| measure | value |", "| --- | --- |", *[f"| {k} | {v:.4g} |" for k, v in figures.items()]]
    return "\n".join(lines) + "\n"


def written_here(text: str) -> bool:
    """Whether a ``README.md`` is a card of this module, or of the translators' card before it (``# pix2pix
    translator`` / ``# cyclegan translator``, then ``Trained with `t2i train ...```)."""
    return MARK in text or bool(re.match(r"# (pix2pix|cyclegan) translator\n\nTrained with `t2i train ", text))


def trainer_of(folder: str | Path) -> str:
    """The ``t2i train`` command that wrote the run folder ``folder``, read from what it saved."""
    folder = Path(folder)
    _, trainer, _ = layout_of(folder)
    family = read_json(folder / "model" / "config.json").get("family")
    if not (trainer or family):
        raise ValueError(f"{folder / 'model' / 'config.json'} names no family: re-save the model with its trainer")
    return trainer or str(family)


def write_model_card(folder: str | Path, force: bool = False) -> Path:
    """Write ``folder/README.md`` (``model_card``, the trainer read from the folder) and return its path.

    A ``README.md`` that this module did not write (the user's own, in a folder given as ``--out``) is kept:
    the card goes to ``README.t2i.md`` beside it, with a warning, unless ``force``."""
    import warnings

    folder = Path(folder)
    text = model_card(folder)
    path = folder / CARD
    if path.is_file() and not force and not written_here(path.read_text(encoding="utf-8", errors="replace")):
        path = folder / KEPT_ASIDE
        warnings.warn(f"{folder / CARD} was not written by t2i and is kept; the model card is {path}", stacklevel=2)
    path.write_text(text, encoding="utf-8")
    return path

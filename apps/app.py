"""Gradio app: type a prompt once, see a text GAN and a diffusion model side by side; an arena; translation; unCLIP.

Runs on the built-in default models unless told otherwise, on 127.0.0.1:7860, with
analytics off and requests queued (one at a time by default, so concurrent users never
share a model mid-call). Named API endpoints (see README): ``/generate``,
``/interpolate``, ``/prior_samples`` and the arena's ``/arena_battle``, ``/arena_vote_a``
(``_b``, ``_tie``, ``_both_bad``), ``/arena_leaderboard``, ``/arena_auto_judge``, ``/arena_export``.

The arena tab (``apps/arena.py``): two anonymous models answer one prompt, the user votes, the
names are revealed; votes go to ``OUTPUTS/arena.sqlite``; a Bradley-Terry leaderboard with bootstrap
intervals; an auto-judge that plays battles judged by the shapes evaluator; vote export.

Any registered generator serves (``--gan``, ``--diffusion``: folders, run folders, built-in names,
LoRA runs); each is shown by its name and family (``apps/catalog.py``) and scored by the CLIP it was
trained with unless ``--clip`` says otherwise. A prompt with words a model's training captions never
held gets a warning beside the images (``t2i.provenance``). The translation tab (``--translator``,
``apps/translation.py``) runs pix2pix / CycleGAN runs on an uploaded image or an example. The unCLIP tab
(``--unclip``, ``apps/unclip.py``) makes variations of an uploaded image or an example and edits it toward a
prompt (``/unclip_variations``, ``/unclip_edit``).

What the server writes and serves (``apps/serving.py``): only ``--outputs`` (also gradio's
cache folder), where every answer's images are written under unique names atomically and
the folder is kept under ``--max-outputs-mb``; uploads are refused, except images for the translation
and unCLIP tabs when they have a model (``--max-upload-mb``, written into that folder too); every text input is capped; bad requests get a message, unexpected failures a generic one (details in the log).

    t2i app                                   # built-in models
    t2i app --diffusion runs/ldm --gan runs/tgan --port 7861
    t2i app --translator runs/p2p-grey,runs/cyclegan-outline
    t2i app --unclip runs/shapes-unclip
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import dataclasses  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

from t2i.arena.ratings import HEADER  # noqa: E402
from t2i.config import parse_config  # noqa: E402

from apps.arena import SHOWN, Arena  # noqa: E402
from apps.models import DEFAULT_IMAGES, MAX_PROMPT_CHARS, AppModels, RequestError  # noqa: E402
from apps.serving import ModelThreads, OutputsFolder, RefuseUploads  # noqa: E402
from apps.translation import Translators  # noqa: E402
from apps.unclip import TRAIN_HINT, UnCLIPTab, unclip_spec  # noqa: E402

VOTES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}  # outcome -> button
API_NAMES = ("generate", "interpolate", "prior_samples", "arena_battle", "arena_leaderboard", "arena_auto_judge",
             "arena_export") + tuple(f"arena_vote_{outcome}" for outcome in VOTES)
TRANSLATION_API = ("translate", "translate_example", "translation_examples")  # with --translator only
UNCLIP_API = ("unclip_variations", "unclip_edit")  # with an unCLIP model only

EXAMPLES = [
    "a small red circle in the center",
    "a large blue square in the top left",
    "a small yellow triangle in the bottom right",
    "a large white cross in the center",
    "a green circle above a magenta square",
    "a cyan cross to the left of a red triangle",
]
FAMILY_TEXT = {  # how each kind of model draws, for the "About these models" text
    "ldm": "A UNet removes noise from an autoencoder's latent step by step, attending to every token of the "
           "prompt (cross-attention on CLIP token states); classifier-free guidance trades diversity for "
           "faithfulness. Several steps, so it costs more per image.",
    "tgan-attn": "A generator maps noise (entering at every scale) to an image in one forward pass, "
                 "cross-attending to every token of the prompt. One step, so it is fast.",
    "tgan": "A generator maps noise and the prompt's pooled CLIP embedding to an image in one forward pass.",
    "cvae": "A decoder maps a random code and the prompt's pooled CLIP embedding to an image in one pass.",
}
SHAPES_GRAMMAR = ("Models trained on `shapes` know its grammar: *a {small|large} {colour} {shape} in the {position}* "
                  "or *a {colour} {shape} {above|below|to the left of|to the right of} a {colour} {shape}*; "
                  "other words get a warning beside the images.")


def about_models(models: AppModels) -> str:
    """What each model of the text-to-image tab is, by its name, family and training record."""
    lines = ["### About these models"]
    for name, generator in ((models.gan_name, models.gan), (models.diffusion_name, models.diffusion)):
        lines.append("- " + models.about.get(name, f"**{name}** (family `{generator.family}`)")
                     + (f" {FAMILY_TEXT[generator.family]}" if generator.family in FAMILY_TEXT else ""))
    if any(t.data == "shapes" for t in models.trained.values()):
        lines.append("\n" + SHAPES_GRAMMAR)
    return "\n".join(lines)


@dataclasses.dataclass
class AppConfig:
    host: str = "127.0.0.1"  # interface to listen on; localhost by default
    port: int = 7860  # port to listen on
    share: bool = False  # create a public gradio.live link (off by default)
    diffusion: str = "shapes-ldm-6"  # our pipeline folder, a Stable-Diffusion-layout folder or hub id, or a built-in name
    gan: str = "shapes-tgan"  # a text-conditional generator folder or built-in name
    clip: str = ""  # open_clip folder or built-in name that scores every model; "" = each model's own (shapes-clip if unrecorded)
    ae: str = "digits-ae"  # 2-D autoencoder for the latent-space tab ("" to hide the tab)
    vae: str = "digits-vae"  # 2-D VAE for the latent-space tab ("" to hide the tab)
    concurrency: int = 1  # requests served at once; more are queued
    torch_threads: int = 1  # torch threads per request (0 = torch's default); 1 was fastest for the built-ins on 2 cores
    compile: bool = False  # torch.compile the diffusion UNet for the default request before serving (about a minute on 2 cores the first time; then the built-in samples about 1.25x faster, benchmarks/RESULTS.md)
    queue_size: int = 64  # requests waiting at most; more are refused with a message
    max_images: int = 8  # images per model per request, at most
    max_steps: int = 100  # diffusion steps per request, at most
    max_guidance: float = 20.0  # classifier-free guidance scale, at most
    display_size: int = 128  # images are upscaled (nearest) to this many pixels for display
    outputs: str = "outputs/app"  # the only folder the app writes to or serves files from (also gradio's cache)
    max_outputs_mb: float = 256.0  # keep --outputs under this size: the oldest images are deleted first
    arena: str = "shapes-cvae"  # more text-conditional models for the arena tab besides --gan and --diffusion (comma-separated)
    max_auto_battles: int = 200  # battles one auto-judge request may play, at most
    translator: str = ""  # pix2pix / CycleGAN run folders for the translation tab (comma-separated; "" = tab explains how)
    unclip: str = "shapes-unclip"  # unCLIP model for the unCLIP tab (variations, edits); "" or the built-in not in this checkout = the tab explains how to train one
    max_upload_mb: float = 4.0  # largest image the translation and unCLIP tabs take (uploads are refused when neither has a model)


def use_outputs_as_gradio_cache(cfg: AppConfig) -> Path:
    """Make ``cfg.outputs`` gradio's cache folder (``GRADIO_TEMP_DIR``, read when Blocks are built), so
    it is the one folder the server writes and serves."""
    root = Path(cfg.outputs).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(root)
    return root


def translator_specs(cfg: AppConfig) -> list[str]:
    return [s.strip() for s in cfg.translator.split(",") if s.strip()]


def takes_uploads(cfg: AppConfig) -> bool:
    """Whether a tab that reads images has a model (the translation tab, the unCLIP tab)."""
    return bool(translator_specs(cfg)) or bool(unclip_spec(cfg.unclip))


def build_app(cfg: AppConfig, models: AppModels | None = None, arena: Arena | None = None,
              translators: Translators | None = None, unclip: UnCLIPTab | None = None):
    """The Gradio Blocks UI over ``AppModels``, the ``Arena``, the ``Translators`` and the ``UnCLIPTab``; any may be
    given (tests)."""
    use_outputs_as_gradio_cache(cfg)
    import gradio as gr
    import pandas as pd

    models = models or AppModels.load(cfg)
    if translators is None and translator_specs(cfg):
        translators = Translators.load(translator_specs(cfg), display_size=cfg.display_size)
    if unclip is None and unclip_spec(cfg.unclip):
        unclip = UnCLIPTab.load(unclip_spec(cfg.unclip), display_size=cfg.display_size, max_images=cfg.max_images)
    arena = arena or Arena.from_app(cfg, models)
    arena.max_auto_battles = cfg.max_auto_battles
    saved = OutputsFolder(cfg.outputs, max_bytes=int(cfg.max_outputs_mb * 1e6))
    on_model_thread = ModelThreads(cfg.concurrency, cfg.torch_threads)  # model calls: long-lived threads, one torch pool each
    if cfg.compile:  # on a model thread: the compiled kernels are made for its torch threads
        print("app: compiling the diffusion UNet for the default request (about a minute on 2 cores)...", flush=True)
        print(on_model_thread(models.compile_diffusion), flush=True)

    def text_only(box: gr.Textbox) -> gr.Textbox:
        """Make ``box``'s API refuse lists, dicts and numbers instead of turning them into text.

        Wraps the instance's ``preprocess`` rather than subclassing: gradio writes a ``.pyi`` stub
        next to the source file of every Component subclass (into the installed package)."""
        to_text = box.preprocess

        def preprocess(payload):
            if payload is not None and not isinstance(payload, str):
                raise gr.Error(f"{box.label} must be text, not {type(payload).__name__}.", print_exception=False)
            return to_text(payload)

        box.preprocess = preprocess
        return box

    def readable_image(image: gr.Image) -> gr.Image:
        """Make ``image``'s upload that Pillow cannot decode a one-line message (gradio decodes it before the
        handler runs), wrapping the instance's ``preprocess`` as ``text_only`` does."""
        to_image = image.preprocess

        def preprocess(payload):
            try:
                return to_image(payload)
            except Exception:
                raise gr.Error("The upload is not an image Pillow can read; upload a PNG or JPEG.",
                               print_exception=False) from None

        image.preprocess = preprocess
        return image

    def failed(name: str, err: Exception):
        """A message for the user; the details stay in the server log."""
        if isinstance(err, RequestError):
            return gr.Error(str(err), print_exception=False)
        print(f"app: {name} failed: {err!r}", file=sys.stderr)
        return gr.Error(f"{name} failed on the server (the log has the details); try other settings.",
                        print_exception=False)

    def throttled(progress, desc: str, every_s: float = 0.25):
        """``progress((i, total))`` at most every ``every_s`` seconds (and at the end): each update is a
        message to the browser, and per-step updates of a fast sampler cost more than the steps."""
        last = [time.perf_counter()]

        def update(i: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] >= every_s or i == total:
                last[0] = now
                progress((i, total), desc=desc)
        return update

    def generate(prompt, negative_prompt, seed, randomize, n, sampler, steps, guidance, intermediates,
                 progress=gr.Progress()):
        try:
            seed = random.randint(0, 2**31 - 1) if randomize is True else seed
            result = on_model_thread(models.generate, prompt, negative_prompt, seed, n, sampler, steps, guidance,
                                     intermediates is True, progress=throttled(progress, "denoising"))
            gan, diffusion, strip = result["gan"], result["diffusion"], result["intermediates"]
            paths = saved.save(gan + diffusion + strip)  # one call: the folder is checked against its cap once
            return (paths[:len(gan)], paths[len(gan):len(gan) + len(diffusion)], result["warning"], result["seed"],
                    result["summary"], paths[len(gan) + len(diffusion):])
        except Exception as err:  # never a stack trace or a raw Python message to the user
            raise failed("generation", err) from None

    def interpolate(digit_a, digit_b, num_steps):
        try:
            ae_walk, vae_walk = on_model_thread(models.interpolate, digit_a, digit_b, num_steps)
            return saved.save(ae_walk), saved.save(vae_walk)
        except Exception as err:
            raise failed("interpolation", err) from None

    def prior_samples(count, seed):
        try:
            ae_prior, vae_prior, info = on_model_thread(models.prior_samples, count, seed)
            return saved.save(ae_prior), saved.save(vae_prior), info
        except Exception as err:
            raise failed("sampling", err) from None

    # ---- translation ----------------------------------------------------------------
    def translate(name, image):
        try:
            shown_in, out, info = on_model_thread(translators.translate, name, image)
            return *saved.save([shown_in, out]), info
        except Exception as err:
            raise failed("the translation", err) from None

    def translate_example(name, label):
        try:
            shown_in, out, info = on_model_thread(translators.translate_example, name, label)
            return *saved.save([shown_in, out]), info
        except Exception as err:
            raise failed("the translation", err) from None

    def translation_examples(name):
        try:
            labels = translators.example_labels(translators.get(name).name)
            return gr.update(choices=labels, value=labels[0] if labels else None)
        except Exception as err:
            raise failed("the examples", err) from None

    # ---- unCLIP ---------------------------------------------------------------------
    def unclip_variations(image, example, n, seed, strength, keep_layout=False):
        try:
            shown_in, images, info = on_model_thread(unclip.variations, image, example, n, seed, strength, keep_layout)
            return saved.save([shown_in])[0], saved.save(images), info
        except Exception as err:
            raise failed("the variations", err) from None

    def unclip_edit(image, example, prompt, weight, n, seed):
        try:
            shown_in, images, info = on_model_thread(unclip.edit, image, example, prompt, weight, n, seed)
            return saved.save([shown_in])[0], saved.save(images), info
        except Exception as err:
            raise failed("the edit", err) from None

    # ---- arena ----------------------------------------------------------------------
    def board(shown):
        return pd.DataFrame(arena.leaderboard(shown), columns=list(HEADER))

    def battle(prompt, seed, randomize):
        try:
            seed = random.randint(0, 2**31 - 1) if randomize is True else seed
            state, image_a, image_b = on_model_thread(arena.battle, prompt, seed)
            path_a, path_b = saved.save([image_a, image_b])
            ask = "Which image matches the prompt better? The names are shown after your vote."
            if state.get("warning"):
                ask += f"\n\n**{state['warning']}**"
            return (path_a, path_b, state, ask, *[gr.update(interactive=True)] * len(VOTES))
        except Exception as err:
            raise failed("the battle", err) from None

    def vote(outcome):
        def cast(state, shown):
            try:
                reveal, _ = arena.vote(state, outcome)
                return reveal, board(shown), None, *[gr.update(interactive=False)] * len(VOTES)
            except Exception as err:
                raise failed("the vote", err) from None
        return cast

    def leaderboard(shown):
        try:
            return board(shown)
        except Exception as err:
            raise failed("the leaderboard", err) from None

    def auto_judge(n, seed, shown, progress=gr.Progress()):
        try:
            summary = on_model_thread(arena.auto_judge, n, seed, progress=lambda text: progress(None, desc=text))
            return summary, board(shown)
        except Exception as err:
            raise failed("the auto-judge", err) from None

    def export(fmt):
        try:
            return str(arena.export(fmt))
        except Exception as err:
            raise failed("the export", err) from None

    with gr.Blocks(title="t2i: GAN vs diffusion", analytics_enabled=False) as demo:
        gr.Markdown(f"# t2i: one prompt, `{models.gan_name}` and `{models.diffusion_name}` side by side")
        with gr.Tab("Text to image"):
            with gr.Row():
                prompt = text_only(gr.Textbox(label="Prompt", value=EXAMPLES[0], scale=4, elem_id="prompt",
                                               max_length=MAX_PROMPT_CHARS))
                negative = text_only(gr.Textbox(label="Negative prompt (diffusion)", value="", scale=2,
                                                 max_length=MAX_PROMPT_CHARS))
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=2**31 - 1)
                randomize = gr.Checkbox(label="Random seed", value=False)
                count = gr.Slider(1, cfg.max_images, value=DEFAULT_IMAGES, step=1, label="Images per model")
            with gr.Accordion("Diffusion sampler", open=False):
                with gr.Row():
                    default_sampler, default_steps, default_guidance = models.diffusion_defaults  # the model's own
                    sampler = gr.Dropdown(list(models.samplers), value=default_sampler, label="Sampler",
                                          elem_id="sampler")
                    steps = gr.Slider(1, cfg.max_steps, value=default_steps, step=1, label="Steps", elem_id="steps")
                    guidance = gr.Slider(0.0, cfg.max_guidance, value=default_guidance, step=0.5, label="Guidance scale",
                                         elem_id="guidance")
                    intermediates = gr.Checkbox(label="Show intermediate images", value=False)
            button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Row():
                gan_gallery = gr.Gallery(label=f"{models.gan_name} ({models.gan.family})", columns=4, format="png",
                                         elem_id="gan-gallery")
                diffusion_gallery = gr.Gallery(label=f"{models.diffusion_name} ({models.diffusion.family})", columns=4,
                                               format="png", elem_id="diffusion-gallery")
            vocabulary_warning = gr.Markdown(elem_id="vocabulary-warning")  # beside the images: words the models never saw
            with gr.Row():
                seed_used = gr.Number(label="Seed used", precision=0, interactive=False)
                summary = gr.Markdown(elem_id="summary")
            strip = gr.Gallery(label="Diffusion: the latents decoded along the denoising steps (first image)", columns=8, format="png")
            gr.Examples(EXAMPLES, inputs=[prompt])
            gr.Markdown(about_models(models), elem_id="about-models")
            inputs = [prompt, negative, seed, randomize, count, sampler, steps, guidance, intermediates]
            outputs = [gan_gallery, diffusion_gallery, vocabulary_warning, seed_used, summary, strip]
            button.click(generate, inputs, outputs, api_name="generate")
            prompt.submit(generate, inputs, outputs, api_name=False)
        if models.has_latent_tab:
            with gr.Tab("Latent space (digits)"):
                gr.Markdown(
                    "A plain autoencoder and a VAE, both with a 2-D code, trained on digits. "
                    "Walking between two digits works for both; decoding random N(0, I) codes only "
                    "works for the VAE, whose KL term pulls its codes onto that prior: the AE's codes "
                    "sit wherever training put them, so random codes land off its data.")
                with gr.Row():
                    digit_a = gr.Dropdown(list(range(10)), value=1, label="From digit")
                    digit_b = gr.Dropdown(list(range(10)), value=7, label="To digit")
                    num_steps = gr.Slider(3, 12, value=8, step=1, label="Steps")
                interp_button = gr.Button("Interpolate")
                interp_ae = gr.Gallery(label="Autoencoder decoder", columns=12, format="png")
                interp_vae = gr.Gallery(label="VAE decoder", columns=12, format="png")
                interp_button.click(interpolate, [digit_a, digit_b, num_steps], [interp_ae, interp_vae],
                                    api_name="interpolate")
                with gr.Row():
                    prior_count = gr.Slider(4, 32, value=16, step=1, label="Samples")
                    prior_seed = gr.Number(label="Seed", value=0, precision=0, minimum=0)
                prior_button = gr.Button("Sample from N(0, I)")
                prior_ae = gr.Gallery(label="Autoencoder: random codes", columns=8, format="png")
                prior_vae = gr.Gallery(label="VAE: prior samples", columns=8, format="png")
                prior_info = gr.Markdown()
                prior_button.click(prior_samples, [prior_count, prior_seed], [prior_ae, prior_vae, prior_info],
                                   api_name="prior_samples")
        with gr.Tab("Translation"):
            if translators is None:
                gr.Markdown(
                    "No translator loaded. Train one and start the app with it, e.g. "
                    "`t2i train pix2pix --data greyscale --steps 2000 --out runs/p2p-grey` (or `t2i train cyclegan`), "
                    "then `t2i app --translator runs/p2p-grey` (several: comma-separated).", elem_id="translation-help")
            else:
                names = list(translators.models)
                gr.Markdown("Image-to-image translation (pix2pix, CycleGAN). Upload an image (any mode or size: "
                            "it is converted and its centre square resized to the model's size) or pick an example "
                            "from the data the model was trained on.\n\n"
                            + "\n".join(f"- {m.about()}" for m in translators.models.values()))
                translator = gr.Dropdown(names, value=names[0], label="Translator", elem_id="translator")
                with gr.Row():
                    upload = readable_image(gr.Image(label="Your image", type="filepath", sources=["upload"],
                                                     image_mode=None, elem_id="translate-input"))  # its own mode: noted
                    example = gr.Dropdown(translators.example_labels(names[0]), label="Or an example",
                                          value=translators.example_labels(names[0])[0], elem_id="translate-example")
                with gr.Row():
                    translate_button = gr.Button("Translate my image", variant="primary", elem_id="translate")
                    example_button = gr.Button("Translate the example", elem_id="translate-example-button")
                with gr.Row():
                    seen = gr.Image(label="Input, as the model sees it", type="filepath", format="png",
                                    interactive=False, elem_id="translate-seen")
                    translated = gr.Image(label="Translation", type="filepath", format="png", interactive=False,
                                          elem_id="translate-output")
                translate_info = gr.Markdown(elem_id="translate-info")
                translate_button.click(translate, [translator, upload], [seen, translated, translate_info],
                                       api_name="translate")
                example_button.click(translate_example, [translator, example], [seen, translated, translate_info],
                                     api_name="translate_example")
                translator.change(translation_examples, [translator], [example], api_name="translation_examples",
                                  concurrency_limit=None)
        with gr.Tab("unCLIP"):
            if unclip is None:
                gr.Markdown(f"No unCLIP model loaded (the built-in `shapes-unclip` is not in this checkout). Train one: "
                            f"{TRAIN_HINT}.", elem_id="unclip-help")
            else:
                labels = unclip.example_labels()
                gr.Markdown("unCLIP (DALL-E 2 style): a CLIP prior maps text to a CLIP image embedding, a decoder maps "
                            "embeddings to images. **Variations** decode, with new noise, the CLIP embeddings of copies of "
                            "your image with its content moved to random places on its background (tick \"Keep the "
                            "layout\" to decode the image's own embedding); "
                            "**Edit** decodes (1 - weight) x the image's embedding + weight x the prior's embedding of "
                            "the prompt. Upload an image (any mode or size: it is converted and its centre square "
                            "resized to the model's size) or clear the upload to use the example.\n\n- " + unclip.about)
                with gr.Row():
                    unclip_upload = readable_image(gr.Image(label="Your image", type="filepath", sources=["upload"],
                                                            image_mode=None, elem_id="unclip-input"))
                    unclip_example = gr.Dropdown(labels, value=labels[0], label="Or an example (held-out shapes scenes)",
                                                 elem_id="unclip-example")
                with gr.Row():
                    unclip_count = gr.Slider(1, cfg.max_images, value=4, step=1, label="Images", elem_id="unclip-count")
                    unclip_seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=2**31 - 1,
                                            elem_id="unclip-seed")
                with gr.Row():
                    variation_strength = gr.Slider(0.0, 1.0, value=0.0, step=0.05, scale=4,
                                                   label="Variation strength (0 = decode the image's own embedding; "
                                                         "more = re-sample it through the prior first: more change)",
                                                   elem_id="unclip-strength")
                    keep_layout = gr.Checkbox(value=False, label="Keep the layout (off: each variation moves the content first)",
                                              elem_id="unclip-keep-layout")
                    variations_button = gr.Button("Variations", variant="primary", elem_id="unclip-variations")
                with gr.Row():
                    edit_prompt = text_only(gr.Textbox(label="Edit toward this prompt", value=EXAMPLES[1], scale=4,
                                                       max_length=MAX_PROMPT_CHARS, elem_id="unclip-prompt"))
                    edit_weight = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Weight (0 = the image, 1 = the prompt)",
                                            elem_id="unclip-weight")
                    edit_button = gr.Button("Edit", elem_id="unclip-edit")
                with gr.Row():
                    unclip_seen = gr.Image(label="Input, as the model sees it", type="filepath", format="png",
                                           interactive=False, elem_id="unclip-seen", scale=1)
                    unclip_gallery = gr.Gallery(label=f"{unclip.name} (unclip)", columns=4, format="png",
                                                elem_id="unclip-gallery", scale=3)
                unclip_info = gr.Markdown(elem_id="unclip-info")
                unclip_outputs = [unclip_seen, unclip_gallery, unclip_info]
                variations_button.click(unclip_variations, [unclip_upload, unclip_example, unclip_count, unclip_seed,
                                                            variation_strength, keep_layout],
                                        unclip_outputs, api_name="unclip_variations")
                edit_inputs = [unclip_upload, unclip_example, edit_prompt, edit_weight, unclip_count, unclip_seed]
                edit_button.click(unclip_edit, edit_inputs, unclip_outputs, api_name="unclip_edit")
                edit_prompt.submit(unclip_edit, edit_inputs, unclip_outputs, api_name=False)
                unclip_example.change(lambda _: None, [unclip_example], [unclip_upload], api_name=False,
                                      concurrency_limit=None)  # a picked example is what the buttons use
        with gr.Tab("Arena"):
            gr.Markdown(
                "Two models drawn at random from this app's text-conditional models ("
                + ", ".join(f"`{n}`" for n in arena.contenders) + ") answer the same prompt and seed. "
                "Vote for the better image; the names are revealed after the vote. The leaderboard fits "
                "Bradley-Terry ratings (Elo scale, mean 1000; a tie or *both bad* counts half a win each) with "
                "95% bootstrap intervals.")
            with gr.Row():
                arena_prompt = text_only(gr.Textbox(label="Prompt", value=EXAMPLES[1], scale=4, elem_id="arena-prompt",
                                                    max_length=MAX_PROMPT_CHARS))
                arena_seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=2**31 - 1)
                arena_random = gr.Checkbox(label="Random seed", value=True)
            battle_button = gr.Button("New battle", variant="primary", elem_id="battle")
            with gr.Row():
                image_a = gr.Image(label="Model A", type="filepath", format="png", interactive=False, elem_id="arena-a")
                image_b = gr.Image(label="Model B", type="filepath", format="png", interactive=False, elem_id="arena-b")
            with gr.Row():
                vote_buttons = {o: gr.Button(text, interactive=False, elem_id=f"vote-{o.replace('_', '-')}")
                                for o, text in VOTES.items()}
            reveal = gr.Markdown(elem_id="reveal")
            battle_state = gr.State(None)  # the battle, names included, kept on the server until the vote
            gr.Markdown("### Leaderboard")
            shown = gr.Radio(list(SHOWN), value="all", label="Votes counted (people, the auto-judge or both)")
            table = gr.Dataframe(value=board("all"), headers=list(HEADER), interactive=False, elem_id="leaderboard")
            with gr.Row():
                auto_n = gr.Slider(3, cfg.max_auto_battles, value=30, step=1, label="Auto-judge battles")
                auto_seed = gr.Number(label="Auto-judge seed", value=0, precision=0, minimum=0)
                auto_button = gr.Button("Run the auto-judge", elem_id="auto-judge")
            auto_summary = gr.Markdown(elem_id="auto-summary")
            with gr.Row():
                export_format = gr.Radio(["csv", "jsonl"], value="csv", label="Export format")
                export_button = gr.Button("Export the votes", elem_id="export")
                export_file = gr.File(label="Votes", elem_id="export-file")
            buttons = list(vote_buttons.values())
            battle_button.click(battle, [arena_prompt, arena_seed, arena_random],
                                [image_a, image_b, battle_state, reveal, *buttons], api_name="arena_battle")
            for outcome, button_ in vote_buttons.items():  # votes are quick database writes: not queued behind images
                button_.click(vote(outcome), [battle_state, shown], [reveal, table, battle_state, *buttons],
                              api_name=f"arena_vote_{outcome}", concurrency_limit=None)
            shown.change(leaderboard, [shown], [table], api_name="arena_leaderboard", concurrency_limit=None)
            auto_button.click(auto_judge, [auto_n, auto_seed, shown], [auto_summary, table], api_name="arena_auto_judge")
            export_button.click(export, [export_format], [export_file], api_name="arena_export", concurrency_limit=None)
        demo.load(leaderboard, [shown], [table], api_name=False)  # each page opens on the current standings
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=cfg.queue_size)
    return demo


def launch(demo, cfg: AppConfig, **kwargs):
    """Start the server: files only from --outputs, no uploads (but images up to --max-upload-mb for the
    translation and unCLIP tabs when they have a model), no raw exception text to clients."""
    from starlette.middleware import Middleware

    uploads = takes_uploads(cfg)
    names = (API_NAMES + (TRANSLATION_API if translator_specs(cfg) else ())
             + (UNCLIP_API if unclip_spec(cfg.unclip) else ()))
    return demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, show_error=False,
                       allowed_paths=[str(Path(cfg.outputs).resolve())],
                       max_file_size=int(cfg.max_upload_mb * 1e6) if uploads else 0,
                       app_kwargs={"middleware": [Middleware(RefuseUploads, api_names=names, allow_uploads=uploads)]},
                       **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(AppConfig, argv, prog="t2i app", description=__doc__)
    if cfg.max_outputs_mb <= 0:
        raise ValueError(f"max_outputs_mb must be > 0, got {cfg.max_outputs_mb}")
    if cfg.max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be > 0, got {cfg.max_upload_mb}")
    demo = build_app(cfg)
    launch(demo, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gradio app: type a prompt once, see the text GAN and the diffusion model side by side.

Runs on the built-in default models unless told otherwise, on 127.0.0.1:7860, with
analytics off and requests queued (one at a time by default, so concurrent users never
share a model mid-call). Named API endpoints (see README): ``/generate``,
``/interpolate``, ``/prior_samples``.

    t2i app                                   # built-in models
    t2i app --diffusion runs/ldm --gan runs/tgan --port 7861
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import dataclasses  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

from t2i.config import parse_config  # noqa: E402

from apps.models import AppModels, RequestError  # noqa: E402

EXAMPLES = [
    "a small red circle in the center",
    "a large blue square in the top left",
    "a small yellow triangle in the bottom right",
    "a large white cross in the center",
    "a green circle above a magenta square",
    "a cyan cross to the left of a red triangle",
]
ABOUT = """
**Text GAN** (`shapes-tgan`, family `tgan-attn`): a generator maps noise (entering at every
scale) to an image in one forward pass, cross-attending to every token of the prompt; a
multi-resolution discriminator judges whether image and caption match. One step, so it is fast.

**Latent diffusion** (`shapes-ldm`): a UNet removes noise from an autoencoder's latent
step by step, attending to every token of the prompt (cross-attention on CLIP token
states); classifier-free guidance trades diversity for faithfulness. Many steps, so it
costs more per image.

Both read prompts through the same CLIP text tower (`shapes-clip`), trained on the
`shapes` grammar: *a {small|large} {colour} {shape} in the {position}* or
*a {colour} {shape} {above|below|to the left of|to the right of} a {colour} {shape}*.
"""


@dataclasses.dataclass
class AppConfig:
    host: str = "127.0.0.1"  # interface to listen on; localhost by default
    port: int = 7860  # port to listen on
    share: bool = False  # create a public gradio.live link (off by default)
    diffusion: str = "shapes-ldm"  # our pipeline folder, a Stable-Diffusion-layout folder or hub id, or a built-in name
    gan: str = "shapes-tgan"  # a text-conditional generator folder or built-in name
    clip: str = "shapes-clip"  # open_clip folder or built-in name used for CLIP scores
    ae: str = "digits-ae"  # 2-D autoencoder for the latent-space tab ("" to hide the tab)
    vae: str = "digits-vae"  # 2-D VAE for the latent-space tab ("" to hide the tab)
    concurrency: int = 1  # requests served at once; more are queued
    queue_size: int = 64  # requests waiting at most; more are refused with a message
    max_images: int = 8  # images per model per request, at most
    max_steps: int = 100  # diffusion steps per request, at most
    max_guidance: float = 20.0  # classifier-free guidance scale, at most
    display_size: int = 128  # images are upscaled (nearest) to this many pixels for display
    outputs: str = "outputs/app"  # the only folder the app writes to or serves files from


def build_app(cfg: AppConfig, models: AppModels | None = None):
    """The Gradio Blocks UI over ``AppModels``; ``models`` may be given (tests)."""
    import gradio as gr

    models = models or AppModels.load(cfg)

    def generate(prompt, negative_prompt, seed, randomize, n, sampler, steps, guidance, intermediates,
                 progress=gr.Progress()):
        try:
            seed = random.randint(0, 2**31 - 1) if randomize else seed
            result = models.generate(prompt, negative_prompt, seed, n, sampler, steps, guidance,
                                     intermediates, progress=lambda i, total: progress((i, total), desc="denoising"))
        except RequestError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # never a stack trace to the user; the log keeps it
            print(f"app: generate failed: {err!r}", file=sys.stderr)
            raise gr.Error(f"generation failed: {type(err).__name__}: {err}", print_exception=False) from None
        return (result["gan"], result["diffusion"], result["seed"], result["summary"], result["intermediates"])

    def interpolate(digit_a, digit_b, num_steps):
        try:
            return models.interpolate(int(digit_a), int(digit_b), int(num_steps))
        except RequestError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def prior_samples(count, seed):
        try:
            return models.prior_samples(int(count), int(seed))
        except RequestError as err:
            raise gr.Error(str(err), print_exception=False) from None

    with gr.Blocks(title="t2i: GAN vs diffusion", analytics_enabled=False) as demo:
        gr.Markdown("# t2i: one prompt, a GAN and a diffusion model side by side")
        with gr.Tab("Text to image"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", value=EXAMPLES[0], scale=4, elem_id="prompt")
                negative = gr.Textbox(label="Negative prompt (diffusion)", value="", scale=2)
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=2**31 - 1)
                randomize = gr.Checkbox(label="Random seed", value=False)
                count = gr.Slider(1, cfg.max_images, value=4, step=1, label="Images per model")
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
                gan_gallery = gr.Gallery(label="Text GAN", columns=4, format="png", elem_id="gan-gallery")
                diffusion_gallery = gr.Gallery(label="Latent diffusion", columns=4, format="png", elem_id="diffusion-gallery")
            with gr.Row():
                seed_used = gr.Number(label="Seed used", precision=0, interactive=False)
                summary = gr.Markdown(elem_id="summary")
            strip = gr.Gallery(label="Diffusion: the latents decoded along the denoising steps (first image)", columns=8, format="png")
            gr.Examples(EXAMPLES, inputs=[prompt])
            gr.Markdown(ABOUT)
            inputs = [prompt, negative, seed, randomize, count, sampler, steps, guidance, intermediates]
            outputs = [gan_gallery, diffusion_gallery, seed_used, summary, strip]
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
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=cfg.queue_size)
    return demo


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(AppConfig, argv, prog="t2i app", description=__doc__)
    Path(cfg.outputs).mkdir(parents=True, exist_ok=True)
    demo = build_app(cfg)
    demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, show_error=True,
                allowed_paths=[str(Path(cfg.outputs).resolve())])
    return 0


if __name__ == "__main__":
    sys.exit(main())

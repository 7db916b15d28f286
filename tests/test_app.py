"""The app: request checks, side-by-side generation, and gradio_client against a launched server."""

from __future__ import annotations

import concurrent.futures
import dataclasses

import numpy as np
import pytest
from PIL import Image

from apps.models import AppModels, RequestError

from .app_fixtures import build_tiny_models

PROMPT = "a small red circle in the center"


@pytest.fixture(scope="module")
def app_config(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("app_models"))


@pytest.fixture(scope="module")
def models(app_config):
    return AppModels.load(app_config)


@pytest.mark.parametrize("kwargs,match", [
    ({"prompt": ""}, "empty"),
    ({"prompt": "   "}, "empty"),
    ({"prompt": "x" * 1001}, "at most 1000"),  # the library's limit, the one number
    ({"n": 0}, "number of images"),
    ({"n": 9}, "number of images"),
    ({"n": 2.5}, "number of images"),
    ({"steps": 0}, "steps"),
    ({"steps": 101}, "steps"),
    ({"guidance": -1}, "guidance"),
    ({"guidance": float("nan")}, "guidance"),
    ({"seed": -3}, "seed"),
    ({"sampler": "plms"}, "sampler"),
])
def test_bad_requests_get_a_message(models, kwargs, match):
    request = {"prompt": PROMPT, "seed": 0, "n": 2, "steps": 2, "guidance": 3.0, "sampler": "ddim"} | kwargs
    with pytest.raises(RequestError, match=match):
        models.generate(request["prompt"], "", request["seed"], request["n"], request["sampler"], request["steps"],
                        request["guidance"], False)


def test_generate_both_models_with_times_scores_and_intermediates(models):
    seen = []
    result = models.generate(PROMPT, "a blue square", 3, 4, "dpm-solver++", 4, 2.0, True,
                             progress=lambda i, total: seen.append((i, total)))
    assert len(result["gan"]) == 4 and len(result["diffusion"]) == 4
    assert all(im.size == (128, 128) for im in result["gan"] + result["diffusion"])
    assert result["seed"] == 3 and result["gan_seconds"] > 0 and result["diffusion_seconds"] > 0
    assert len(result["gan_scores"]) == 4 and all(0 <= s <= 100 for s in result["gan_scores"])
    assert "text GAN" in result["summary"] and "CLIP score" in result["summary"]
    assert seen[-1] == (4, 4) and len(seen) == 4  # progress over the denoising steps
    assert 1 <= len(result["intermediates"]) <= 4  # the x0 estimates along the way, decoded
    assert all(im.size == (128, 128) for im in result["intermediates"])
    again = models.generate(PROMPT, "a blue square", 3, 4, "dpm-solver++", 4, 2.0, False)
    for a, b in zip(result["diffusion"] + result["gan"], again["diffusion"] + again["gan"]):
        assert np.array_equal(np.asarray(a), np.asarray(b))  # same seed, same images


def test_latent_tab(models):
    ae_walk, vae_walk = models.interpolate(1, 7, 5)
    assert len(ae_walk) == len(vae_walk) == 5
    ae_prior, vae_prior, info = models.prior_samples(6, 0)
    assert len(ae_prior) == len(vae_prior) == 6 and "prior" in info
    with pytest.raises(RequestError):
        models.interpolate(1, 12, 5)


@pytest.mark.slow
def test_gradio_client_endpoints_errors_and_concurrency(app_config, models):
    from gradio_client import Client

    from apps.app import build_app

    demo = build_app(dataclasses.replace(app_config, concurrency=1), models=models)
    demo.launch(server_name="127.0.0.1", server_port=app_config.port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{app_config.port}/", verbose=False)
        api = client.view_api(print_info=False, return_format="dict")
        assert {"/generate", "/interpolate", "/prior_samples"} <= set(api["named_endpoints"])

        gan, diffusion, seed_used, summary, strip = client.predict(
            PROMPT, "", 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
        assert len(gan) == 2 and len(diffusion) == 2 and seed_used == 5 and "CLIP score" in summary

        with pytest.raises(Exception, match="empty"):  # a clean error, not a stack trace
            client.predict("", "", 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
        with pytest.raises(Exception, match="maximum value 100|steps"):  # gradio checks slider bounds first
            client.predict(PROMPT, "", 5, False, 2, "ddim", 1000, 2.0, False, api_name="/generate")

        # four clients at once with distinct seeds each get the images of their own seed
        def ask(seed):
            own = Client(f"http://127.0.0.1:{app_config.port}/", verbose=False)
            out = own.predict(PROMPT, "", seed, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
            return seed, out

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, [11, 12, 13, 14]))
        for seed, (gan, diffusion, seed_used, _, _) in answers:
            assert seed_used == seed
            expected = models.generate(PROMPT, "", seed, 2, "ddim", 3, 2.0, False)
            for got, want in zip(gan + diffusion, expected["gan"] + expected["diffusion"]):
                path = got["image"] if isinstance(got, dict) else got[0]
                path = path["path"] if isinstance(path, dict) else path
                assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(want))
    finally:
        demo.close()


def test_sampler_controls_start_at_the_diffusion_models_saved_defaults(app_config, models):
    """Regression: the UI started at guidance 3 and 20 steps whatever the model's t2i_sampling.json said."""
    from apps.app import build_app

    diffusion = models.diffusion
    saved = diffusion.options
    diffusion.options = dataclasses.replace(saved, sampler="ddim", num_inference_steps=7, guidance_scale=4.5)
    try:  # as load_generator sets them from the file
        assert models.diffusion_defaults == ("ddim", 7, 4.5)
        demo = build_app(app_config, models=models)
        values = {c["props"].get("elem_id"): c["props"].get("value") for c in demo.config["components"]}
        assert (values["sampler"], values["steps"], values["guidance"]) == ("ddim", 7, 4.5)
        choices = next(c["props"]["choices"] for c in demo.config["components"] if c["props"].get("elem_id") == "sampler")
        from t2i.diffusion.options import SAMPLERS

        assert [c[0] if isinstance(c, (list, tuple)) else c for c in choices] == list(SAMPLERS)  # the one list
    finally:
        diffusion.options = saved


def test_models_must_answer_the_protocols_the_app_uses(models):
    with pytest.raises(ValueError, match="denoising generator"):
        AppModels(gan=models.gan, diffusion=models.gan, scorer=models.scorer)
    with pytest.raises(ValueError, match="code space"):
        AppModels(gan=models.gan, diffusion=models.diffusion, scorer=models.scorer, ae=models.gan)

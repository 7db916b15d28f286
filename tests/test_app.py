"""The app: request checks, side-by-side generation, and gradio_client against a launched server."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from pathlib import Path

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
    assert len(result["gan_scores"]) == 4 and all(-100 <= s <= 100 for s in result["gan_scores"])
    assert "tgan (`tgan`)" in result["summary"] and "CLIP score" in result["summary"]  # the model by its name
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


def image_path(entry) -> str:
    """A gallery entry from gradio_client -> the local path of its downloaded file."""
    path = entry["image"] if isinstance(entry, dict) else entry[0]
    return path["path"] if isinstance(path, dict) else path


@pytest.mark.slow
def test_gradio_client_endpoints_errors_and_concurrency(app_config, models):
    import httpx
    from gradio_client import Client

    import apps.app
    from apps.app import build_app, launch

    cfg = dataclasses.replace(app_config, concurrency=1)
    demo = build_app(cfg, models=models)
    stub = Path(apps.app.__file__).with_suffix(".pyi")  # gradio writes one per Component subclass
    assert not stub.exists(), f"building the app wrote {stub} into the source tree"
    launch(demo, cfg, prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{cfg.port}"
    try:
        client = Client(base + "/", verbose=False)
        api = client.view_api(print_info=False, return_format="dict")
        assert {"/generate", "/interpolate", "/prior_samples"} <= set(api["named_endpoints"])

        gan, diffusion, warning, seed_used, summary, strip = client.predict(
            PROMPT, "", 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
        assert len(gan) == 2 and len(diffusion) == 2 and seed_used == 5 and "CLIP score" in summary
        assert warning == ""  # a shapes prompt: no word outside the training captions
        *_, warning, _, _, _ = client.predict("a photo of a cat", "", 5, False, 1, "ddim", 2, 2.0, False,
                                              api_name="/generate")
        assert "'photo', 'cat'" in warning and "tgan" in warning  # beside the images, naming the model

        with pytest.raises(Exception, match="empty"):  # a clean error, not a stack trace
            client.predict("", "", 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
        with pytest.raises(Exception, match="maximum value 100|steps"):  # gradio checks slider bounds first
            client.predict(PROMPT, "", 5, False, 2, "ddim", 1000, 2.0, False, api_name="/generate")
        # regressions of issue 14: the negative prompt had no cap, lists became text
        with pytest.raises(Exception, match="negative prompt is 5001 characters long; at most 1000"):
            client.predict(PROMPT, "x" * 5001, 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
        with pytest.raises(Exception, match="Prompt must be text, not list"):
            client.predict(["a", "red circle"], "", 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")

        # four clients at once with distinct seeds each get the images of their own seed, in complete files
        def ask(seed):
            own = Client(base + "/", verbose=False)
            out = own.predict(PROMPT, "", seed, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
            return seed, out

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, [11, 12, 13, 14, 11, 12]))
        for seed, (gan, diffusion, _, seed_used, _, _) in answers:
            assert seed_used == seed
            expected = models.generate(PROMPT, "", seed, 2, "ddim", 3, 2.0, False)
            for got, want in zip(gan + diffusion, expected["gan"] + expected["diffusion"]):
                assert np.array_equal(np.asarray(Image.open(image_path(got)).convert("RGB")), np.asarray(want))

        # the server writes and serves only --outputs; no uploads; unknown names are 404, not 500
        served = sorted(p for p in Path(cfg.outputs).rglob("*.png"))
        assert served, "answers are written to --outputs"
        with httpx.Client(base_url=base, timeout=120) as http:
            assert http.get(f"/gradio_api/file={served[0]}").status_code == 200
            for outside in (Path("pyproject.toml").resolve(), Path(__file__).resolve()):
                assert http.get(f"/gradio_api/file={outside}").status_code in (403, 404)
            upload = http.post("/gradio_api/upload", files={"files": ("x.png", b"\x89PNG fake", "image/png")})
            assert upload.status_code == 403 and "no file uploads" in upload.text
            unknown = http.post("/gradio_api/call/nope", json={"data": []})
            assert unknown.status_code == 404 and "/generate" in unknown.text

        # an unexpected failure reaches the client as a generic message, not Python's text
        original = models.gan.generate
        models.gan.generate = lambda **kw: (_ for _ in ()).throw(RuntimeError("secret internal detail"))
        try:
            with pytest.raises(Exception) as err:
                client.predict(PROMPT, "", 5, False, 2, "ddim", 3, 2.0, False, api_name="/generate")
            assert "failed on the server" in str(err.value) and "secret" not in str(err.value)
        finally:
            models.gan.generate = original
    finally:
        demo.close()


def test_outputs_folder_is_unique_atomic_and_size_capped(tmp_path):
    from apps.serving import OutputsFolder

    folder = OutputsFolder(tmp_path / "out", max_bytes=4_000, min_age_s=0)
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)) for i in range(8)]
    first = folder.save(images[:1] * 3)
    assert len(set(first)) == 3  # the same image three times: three files, never one rewritten
    paths = folder.save(images)
    assert folder.size() <= 4_000 and all(Path(p).exists() for p in paths[-2:])  # oldest pruned first
    assert not any(Path(p).exists() for p in first)
    assert not list((tmp_path / "out").rglob("*.tmp"))
    young = OutputsFolder(tmp_path / "young", max_bytes=1, min_age_s=3600)
    kept = young.save(images[:2])
    assert all(Path(p).exists() for p in kept)  # an answer's files outlive their download


def test_outputs_folder_walks_the_folder_only_near_its_cap_or_after_rescan_s(tmp_path):
    """Regression (issue 19): every answer walked and stat'ed the whole folder three times (once per gallery)."""
    from apps.serving import OutputsFolder

    images = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8)) for i in range(4)]
    walks = []

    def counting(folder):
        prune = folder.prune
        folder.prune = lambda: walks.append(1) or prune()
        return folder

    roomy = counting(OutputsFolder(tmp_path / "roomy", max_bytes=10**9, min_age_s=0, rescan_s=3600))
    for _ in range(5):
        roomy.save(images)
    assert len(walks) == 1  # the first save finds the folder's size; later ones add what they wrote
    walks.clear()
    tight = counting(OutputsFolder(tmp_path / "tight", max_bytes=4_000, min_age_s=0, rescan_s=3600))
    for _ in range(5):
        tight.save(images)
        assert tight.size() <= 4_000  # the bytes written carry it over the cap: walked and pruned every time
    assert len(walks) == 5
    walks.clear()
    often = counting(OutputsFolder(tmp_path / "often", max_bytes=6_000, min_age_s=0, rescan_s=0))
    often.save(images[:1])
    (tmp_path / "often" / "gradio-file.bin").write_bytes(b"x" * 5_500)  # written by gradio, not by save
    often.save(images[:1])  # its own bytes stay under the cap, but rescan_s=0: it walks and counts gradio's file
    assert len(walks) == 2 and often.size() <= 6_000


def test_both_models_scored_in_one_clip_call_as_in_two(models):
    """Images of one size from both models go through the shared CLIP in one call, with the scores of one call
    per model; images of two sizes (this GAN draws 32 px, this diffusion model 16 px) in one call each."""
    calls = []
    scorer = models.scorer
    assert models.scorer_of(models.gan_name) is models.scorer_of(models.diffusion_name) is scorer
    score, draw = scorer.score, models.gan.generate
    scorer.score = lambda images, prompts: calls.append(len(images)) or score(images, prompts)
    try:
        two_sizes = models.generate(PROMPT, "", 4, 3, "ddim", 2, 2.0, False)
        assert calls == [3, 3]
        calls.clear()
        models.gan.generate = lambda **kw: [im.resize((16, 16)) for im in draw(**kw)]  # the diffusion model's size
        one_size = models.generate(PROMPT, "", 4, 3, "ddim", 2, 2.0, False)
        assert calls == [6]
        gan_images = models.gan.generate(prompts=[PROMPT], seed=4, num_images_per_prompt=3)
    finally:
        scorer.score, models.gan.generate = score, draw
    assert np.allclose(one_size["gan_scores"], score(gan_images, [PROMPT] * 3), atol=1e-3)
    assert np.allclose(one_size["diffusion_scores"], two_sizes["diffusion_scores"], atol=1e-3)


@pytest.mark.parametrize("field,value,match", [
    ("negative_prompt", "n" * 1001, "negative prompt is 1001 characters"),  # the library's limit
    ("negative_prompt", ["a"], "negative prompt must be text"),
    ("prompt", {"a": 1}, "prompt must be text, not dict"),
    ("seed", float("nan"), "seed must be a whole number"),
    ("seed", "abc", "seed must be a whole number"),
    ("steps", float("inf"), "steps must be a whole number"),
    ("guidance", "high", "guidance scale must be a number"),
    ("sampler", ["ddim"], "sampler must be one of"),
])
def test_odd_values_get_a_message_not_a_python_error(models, field, value, match):
    """Regression: "cannot convert float NaN to integer" reached the client."""
    request = {"prompt": PROMPT, "negative_prompt": "", "seed": 0, "n": 1, "steps": 2, "guidance": 3.0,
               "sampler": "ddim"} | {field: value}
    with pytest.raises(RequestError, match=match):
        models.generate(request["prompt"], request["negative_prompt"], request["seed"], request["n"],
                        request["sampler"], request["steps"], request["guidance"], False)


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


def test_model_calls_run_on_one_long_lived_thread_with_the_callers_context():
    """Regression: gradio's changing handler threads gave each request a fresh torch thread pool (2x slower)."""
    import contextvars
    import threading

    import torch

    from apps.serving import ModelThreads

    run = ModelThreads(workers=1, torch_threads=1)
    request = contextvars.ContextVar("request", default=None)
    seen = []

    def call():
        seen.append((threading.get_ident(), torch.get_num_threads(), request.get()))
        return len(seen)

    for i in range(3):  # from three different caller threads, as gradio's worker threads
        def caller(i=i):
            request.set(f"r{i}")
            assert run(call) == i + 1
        thread = threading.Thread(target=caller)
        thread.start()
        thread.join()
    assert len({ident for ident, _, _ in seen}) == 1 and seen[0][0] != threading.get_ident()
    assert [threads for _, threads, _ in seen] == [1, 1, 1]
    assert [value for _, _, value in seen] == ["r0", "r1", "r2"]
    with pytest.raises(ZeroDivisionError):
        run(lambda: 1 / 0)

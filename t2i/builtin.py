"""Built-in default models: short names (``shapes-ldm``, ``digits-vae``, ...) -> folders.

The weights ship in the repository under ``t2i/builtin/<name>/`` (safetensors + JSON
config + a model card ``README.md``) and are reproduced by ``t2i train defaults``.
Wherever a model path is accepted, one of these names is accepted too: ``resolve`` is the one
resolver of "a path, a built-in name or a hub id" for every loader of the toolkit, and
``reference`` how a saved config names another model.

    python -c "from t2i.builtin import BUILTIN; print(sorted(BUILTIN))"
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent / "builtin"

# short name -> what it is (the folder is ROOT / name)
BUILTIN: dict[str, str] = {
    "shapes-clip": "tiny CLIP (open_clip) trained on 32 px shapes; text encoder of every shapes generator",
    "shapes-tgan": "text-conditional GAN on 32 px shapes (tgan-attn), cross-attending to shapes-clip's token states",
    "shapes-cvae": "conditional VAE on 32 px shapes, conditioned on shapes-clip's pooled text embedding",
    "shapes-vae-kl": "diffusers AutoencoderKL first stage for 32 px shapes (factor 4)",
    "shapes-ldm": "latent diffusion pipeline on 32 px shapes (shapes-vae-kl + UNet + shapes-clip)",
    "digits-ae": "MLP autoencoder on 32 px digits, 2-D code (latent-space tab)",
    "digits-vae": "MLP VAE on 32 px digits, 2-D code (latent-space tab)",
    "shapes-evaluator": "attribute evaluator of 32/64 px shapes images (colour, shape, size, position, relation)",
    "digits-classifier": "classifier of 32 px digits used to score generated digits",
}


def looks_like_hub_id(text: str) -> bool:
    """``org/name``: one slash, not an existing path (what ``from_pretrained`` looks up in the hub cache)."""
    return text.count("/") == 1 and not text.startswith(("/", ".", "~")) and not Path(text).expanduser().exists()


def resolve(path_or_name: str | Path, hub: bool = False) -> Path | str:
    """The one resolver of "a path, a built-in short name or a hub id".

    A built-in name -> its folder; an existing path -> that path; with ``hub=True`` an ``org/name``
    -> the string itself (the caller's ``from_pretrained`` loads it from the hub cache: offline, only
    what was downloaded before). Anything else is a FileNotFoundError that says what is accepted.
    """
    text = str(path_or_name)
    if text in BUILTIN:
        folder = ROOT / text
        if not folder.exists():
            raise FileNotFoundError(
                f"built-in model {text!r} is not in this checkout ({folder}); reproduce it with `t2i train defaults`")
        return folder
    path = Path(text).expanduser()
    if path.exists():
        return path
    if hub and looks_like_hub_id(text):
        return text
    raise FileNotFoundError(f"no model at {text!r}: give an existing path, one of the built-in names {sorted(BUILTIN)}"
                            + (" or a hub id (org/name)" if hub else ""))


def reference(path_or_name: str | Path) -> str:
    """How a saved config names another model: a built-in name or hub id as it is, a path made absolute
    (so the model loads from any working directory)."""
    text = str(path_or_name)
    if is_builtin(text) or not Path(text).expanduser().exists():
        return text
    return str(Path(text).expanduser().resolve())


def is_builtin(path_or_name: str | Path) -> bool:
    return str(path_or_name) in BUILTIN

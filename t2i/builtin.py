"""Built-in default models: short names (``shapes-ldm``, ``digits-vae``, ...) -> folders.

The weights ship in the repository under ``t2i/builtin/<name>/`` (safetensors + JSON
config + a model card ``README.md``) and are reproduced by ``t2i train defaults``.
Wherever a model path is accepted, one of these names is accepted too: ``resolve`` is the one
resolver of "a path, a built-in name or a hub id" for every loader of the toolkit, and
``reference`` how a saved config names another model. ``looks_like_hub_id`` / ``missing`` /
``hub_error`` keep the messages honest: a missing local path is reported as a missing path, never
as a failed download.

    python -c "from t2i.builtin import BUILTIN; print(sorted(BUILTIN))"
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "builtin"

# short name -> what it is (the folder is ROOT / name)
BUILTIN: dict[str, str] = {
    "shapes-clip": "tiny CLIP (open_clip) trained on 32 px shapes; text encoder of every shapes generator",
    "shapes-tgan": "text-conditional GAN on 32 px shapes (tgan-attn), cross-attending to shapes-clip's token states",
    "shapes-cvae": "conditional VAE on 32 px shapes, conditioned on shapes-clip's pooled text embedding",
    "shapes-vae-kl": "diffusers AutoencoderKL first stage for 32 px shapes (factor 4)",
    "shapes-ldm": "latent diffusion pipeline on 32 px shapes (shapes-vae-kl + UNet + shapes-clip)",
    "shapes-ldm-fast": "shapes-ldm with its guidance distilled: one UNet pass per step, 12 steps (shares its VAE and text encoder)",
    "shapes-ldm-6": "shapes-ldm-fast progressively distilled to 6 DDIM steps, one UNet pass each; the app's default (shares shapes-ldm's VAE and text encoder)",
    "shapes-unclip": "unCLIP (DALL-E 2 style) on 32 px shapes: a prior to shapes-clip's image embedding, then an image-embedding decoder (Kandinsky 2.2 layout)",
    "digits-ae": "MLP autoencoder on 32 px digits, 2-D code (latent-space tab)",
    "digits-vae": "MLP VAE on 32 px digits, 2-D code (latent-space tab)",
    "shapes-evaluator": "attribute evaluator of 32/64 px shapes images (colour, shape, size, position, relation)",
    "digits-classifier": "classifier of 32 px digits used to score generated digits",
}


def resolve(path_or_name: str | Path, hub: bool = False, what: str = "model") -> Path | str:
    """The one resolver of "a path, a built-in short name or a hub id".

    A built-in name -> its folder; an existing path -> that path; with ``hub=True`` an ``org/name``
    -> the local snapshot of a t2i run uploaded as its folder (``t2i.hub``), else the string itself (the
    caller's ``from_pretrained`` loads it from the hub cache: offline, only what was downloaded before).
    Anything else is ``missing(path_or_name, what)``: a FileNotFoundError that says what is accepted. A hub
    id the caller then fails to load is reported with ``hub_error``.
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
        from t2i.hub import hub_run

        return hub_run(text) or text  # a t2i run uploaded as its folder: its local snapshot
    raise missing(text, what, hub)


def reference(path_or_name: str | Path) -> str:
    """How a saved config names another model: a built-in name or hub id as it is, a path made absolute
    (so the model loads from any working directory)."""
    text = str(path_or_name)
    if is_builtin(text) or not Path(text).expanduser().exists():
        return text
    return str(Path(text).expanduser().resolve())


def is_builtin(path_or_name: str | Path) -> bool:
    return str(path_or_name) in BUILTIN


def is_installed(name: str | Path) -> bool:
    """Whether ``name`` is a built-in whose folder is in this checkout (so ``resolve`` finds it)."""
    return is_builtin(name) and (ROOT / str(name)).exists()


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")  # org/name


def looks_like_hub_id(text: str | Path) -> bool:
    """``org/name`` that is not a local path: no leading ``/``, ``.`` or ``~``, nothing at that path and
    no local folder ``org`` (``runs/x`` next to a ``runs/`` folder is a missing run, not a hub id)."""
    text = str(text)
    if not _HUB_ID.fullmatch(text) or text.startswith(".") or Path(text).exists():
        return False
    return not Path(text.split("/")[0]).is_dir()


def missing(text: str | Path, what: str, hub: bool = True) -> FileNotFoundError:
    """The error for a path that does not exist (and is not a built-in name or, with ``hub``, a hub id)."""
    return FileNotFoundError(f"no {what} at {str(text)!r}: no such file or folder; give an existing folder, "
                             f"a built-in name ({', '.join(sorted(BUILTIN))})" + (" or a hub id (org/name)" if hub else ""))


def hub_error(text: str | Path, what: str, err: BaseException) -> FileNotFoundError:
    """The error for a hub id that could not be loaded: offline, not cached, or not that kind of model."""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = ("HF_HUB_OFFLINE is set, so only the local cache is searched and it is not there" if offline
           else str(err).strip().splitlines()[0][:200])
    return FileNotFoundError(f"no {what} at {str(text)!r}: there is no such local file or folder, and as a hub id "
                             f"it could not be loaded ({why}); give an existing folder, a built-in name or a "
                             "hub id you have downloaded")

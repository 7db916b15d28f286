"""The ``t2i`` command: one dispatcher over the entry points in ``train/`` and ``apps/``.

Each subcommand is a module with ``main(argv: list[str] | None) -> int | None``; the help
line shown by ``t2i --help`` is the first line of that module's docstring, read without
importing it, so ``t2i --help`` stays fast. A subcommand whose module does not exist
yet is simply not listed. This dispatcher is the one way an entry point runs another
(``main(["train", "dcgan", ...])``): entry points never import each other.

The dispatcher is the one error boundary of the tool: a known error (a bad option or
config, a missing file, unusable data, a refused checkpoint, a stopped run; ``USER_ERRORS``)
is printed as ``t2i ...: error: MESSAGE`` with exit status 2, without a traceback;
``--debug`` anywhere on the line (or ``T2I_DEBUG=1``) shows the traceback instead. Any other
exception is a bug: its traceback is printed with a request to report it.

    t2i --help
    t2i train --help
    t2i train ae --help
    t2i train dcgan --data /nonexistent            # one line, exit status 2
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Sequence

# Exceptions that mean "the input or the environment is wrong", never "the code is wrong": their
# messages say what to fix. ValueError covers ConfigError, BadDataError, GenerationError and JSON
# or UTF-8 decoding errors; OSError covers missing files, permissions and a full disk;
# FloatingPointError covers the runtime's NonFiniteError / DivergenceError stops.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError, MemoryError)
# the same, by class name, for errors of modules the dispatcher does not import up front (torch)
USER_ERROR_NAMES = {"CheckpointError", "OutOfMemoryError"}

# command -> module (a str) or a group {name: module}
COMMANDS: dict[str, str | dict[str, str]] = {
    "data": "train.data",
    "train": {
        "ae": "train.ae",
        "vae": "train.vae",
        "cvae": "train.cvae",
        "gan": "train.gan",
        "dcgan": "train.dcgan",
        "cgan": "train.cgan",
        "tgan": "train.tgan",
        "tgan-attn": "train.tgan_attn",
        "pix2pix": "train.pix2pix",
        "cyclegan": "train.cyclegan",
        "clip": "train.clip",
        "vae-kl": "train.vae_kl",
        "ldm": "train.ldm",
        "prior": "train.prior",
        "unclip": "train.unclip",
        "distill": "train.distill",
        "evaluators": "train.evaluators",
        "defaults": "train.defaults",
    },
    "study": {
        "latent-dim": "train.studies.latent_dim",
        "latent-map": "train.studies.latent_map",
        "denoising": "train.studies.denoising",
        "embeddings": "train.studies.embeddings",
        "generation": "train.studies.generation",
        "overcomplete": "train.studies.overcomplete",
        "gan-optimum": "train.studies.gan_optimum",
        "mode-collapse": "train.studies.mode_collapse",
    },
    "sample": "train.sample",
    "translate": "train.translate",
    "eval": "train.eval",
    "bench": "train.bench",
    "models": "train.models",
    "card": "train.card",
    "app": "apps.app",
    "arena": "train.arena",
}
# a command with a sub-command of its own: (command, word) -> module (`t2i eval clip ...`)
SUBCOMMANDS: dict[tuple[str, str], str] = {("eval", "clip"): "train.eval_clip"}


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _summary(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            doc = ast.get_docstring(ast.parse(fh.read())) or ""
    except (OSError, SyntaxError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _usage(prefix: str, table: dict[str, str | dict[str, str]]) -> str:
    lines = [f"usage: {prefix} COMMAND [options] [--debug]", "", "commands:"]
    for name, target in table.items():
        if isinstance(target, dict):
            available = [n for n, m in target.items() if _exists(m)]
            if available:
                lines.append(f"  {name:<14} {', '.join(available)}  (see '{prefix} {name} --help')")
        elif _exists(target):
            lines.append(f"  {name:<14} {_summary(target)}")
    return "\n".join(lines)


def _is_user_error(err: BaseException) -> bool:
    return isinstance(err, USER_ERRORS) or any(k.__name__ in USER_ERROR_NAMES for k in type(err).__mro__)


def _message(err: BaseException) -> str:
    """The error's own message; OSErrors from open() get the path and the reason in words."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror.lower()}: {err.filename}"
        if isinstance(err, FileNotFoundError):
            text += " (check the path)"
        return text
    text = str(err).strip() or type(err).__name__
    if type(err).__name__ == "OutOfMemoryError":
        text += " (lower --batch-size, or use --grad-accum to keep the global batch)"
    return text


def _run(module: str, argv: list[str], prog: str, debug: bool = False) -> int:
    """Run one entry point inside the error boundary (module docstring)."""
    saved = sys.argv
    try:
        mod = importlib.import_module(module)
        sys.argv = [prog] + argv  # so argparse-based mains print the right program name
        result = mod.main(argv)
    except KeyboardInterrupt as err:
        if debug:
            raise
        print(f"\n{prog}: interrupted" + (f" by {err}" if str(err) else ""), file=sys.stderr)  # RunInterrupted says
        return 130
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # raise SystemExit("message"): a user error worded by the entry point
            message = exit_.code if exit_.code.startswith("t2i") else f"{prog}: error: {exit_.code}"
            message = re.sub(r"^(t2i[\w -]*?): (?!error: )", r"\1: error: ", message)  # "t2i sample: x" too
            print(message, file=sys.stderr)
            return 2
        raise
    except Exception as err:
        if debug:
            raise
        if not _is_user_error(err):
            traceback.print_exc()
            print(f"{prog}: internal error ({type(err).__name__}); this is a bug in t2i: please report it with "
                  "the traceback above", file=sys.stderr)
            return 1
        print(f"{prog}: error: {_message(err)}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved  # a command run by another (a study, the bench) leaves its caller's argv alone
    return result if isinstance(result, int) else 0  # some mains return what they wrote (a path)


_python_format = warnings.formatwarning


_OWN_CODE = tuple(str(Path(__file__).resolve().parents[1] / name) for name in ("t2i", "train", "gan_baselines", "apps"))


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings raised by this project's code (the data's skipped items, truncated prompts, ...) as one line for
    the user; every other library's as Python formats it (with its source line, for its own users)."""
    if category.__name__ == "BadItemWarning" or str(Path(filename).resolve()).startswith(_OWN_CODE):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = _format_warning
    debug = "--debug" in argv or os.environ.get("T2I_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage("t2i", COMMANDS))
        return 0
    command, rest = argv[0], argv[1:]
    target = COMMANDS.get(command)
    if target is None or (isinstance(target, str) and not _exists(target)):
        available = [n for n, t in COMMANDS.items() if isinstance(t, dict) or _exists(t)]
        print(f"t2i: unknown command {command!r}; choose one of {available}", file=sys.stderr)
        return 2
    if rest and (command, rest[0]) in SUBCOMMANDS:
        return _run(SUBCOMMANDS[command, rest[0]], rest[1:], f"t2i {command} {rest[0]}", debug)
    if isinstance(target, str):
        return _run(target, rest, f"t2i {command}", debug)
    group = {n: m for n, m in target.items() if _exists(m)}
    if not rest or rest[0] in ("-h", "--help"):
        lines = [f"usage: t2i {command} NAME [options]", "", f"{command} commands:"]
        lines += [f"  {n:<14} {_summary(m)}" for n, m in group.items()]
        print("\n".join(lines))
        return 0
    name = rest[0]
    if name not in group:
        print(f"t2i {command}: unknown name {name!r}; choose one of {sorted(group)}", file=sys.stderr)
        return 2
    return _run(group[name], rest[1:], f"t2i {command} {name}", debug)


if __name__ == "__main__":
    sys.exit(main())

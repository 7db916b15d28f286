"""Configuration: one style for every trainer.

A config is a dataclass with a comment on every field (the comment is the ``--help``
text). Presets are JSON files named by their stem; the command line overrides them with
``--key=value`` (or ``--key value``); an unknown key is an error that lists the valid ones.

    python -c "from t2i.config import demo; demo()"
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A bad key or value in a config, a preset or on the command line."""


def field_comments(cls: type) -> dict[str, str]:
    """Map each field of a dataclass (and its bases) to the ``# comment`` on its line."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        pending: list[str] = []  # comment lines directly above a field
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        line_tokens: dict[int, list[tokenize.TokenInfo]] = {}
        for tok in tokens:
            line_tokens.setdefault(tok.start[0], []).append(tok)
        for _, toks in sorted(line_tokens.items()):
            kinds = [t.type for t in toks if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
            if kinds == [tokenize.COMMENT]:
                pending.append(next(t.string for t in toks if t.type == tokenize.COMMENT).lstrip("# ").strip())
                continue
            names = [t for t in toks if t.type == tokenize.NAME]
            ops = [t for t in toks if t.type == tokenize.OP]
            if names and ops and ops[0].string == ":" and toks[0].type in (tokenize.NAME, tokenize.INDENT):
                name = names[0].string
                trailing = [t.string.lstrip("# ").strip() for t in toks if t.type == tokenize.COMMENT]
                text = " ".join(pending + trailing).strip()
                if text:
                    comments[name] = text
            pending = []
    return comments


def _resolve_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints.get(f.name, str)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Convert a string (CLI) or JSON value to the field's annotated type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        for candidate in inner:
            try:
                return _convert(value, candidate, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        allowed = list(args)
        for a in allowed:
            if value == a or str(value) == str(a):
                return a
        raise ConfigError(f"{key} must be one of {allowed}, got {value!r}")
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v != ""]
        inner = args[0] if args else str
        items = [_convert(v, inner, key) for v in value]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp in (int, float, str):
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            if tp is int and isinstance(value, str) and "e" in value.lower():
                value = float(value)  # accept 1e4 for an integer field
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return tp(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key} must be {tp.__name__}, got {value!r}") from err
    return value


def config_from_dict(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Build ``cls`` from a plain dict; an unknown key raises a ConfigError listing the valid ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {source}; valid keys: {sorted(fields)}")
    kwargs = {k: _convert(v, _resolve_type(cls, fields[k]), k) for k, v in values.items()}
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")


def load_config(cls: type[C], path: str | Path) -> C:
    return config_from_dict(cls, read_json_object(path), source=str(path))


def presets_in(folder: str | Path | None) -> dict[str, Path]:
    """Presets are JSON files; the file stem is the preset name."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {p.stem: p for p in sorted(Path(folder).glob("*.json"))}


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return repr(f.default_factory())  # type: ignore[misc]
    return "required"


def build_parser(cls: type, prog: str, description: str = "", presets: dict[str, Path] | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one ``--key`` per field, its comment as help and its default shown."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    comments = field_comments(cls)
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), default=argparse.SUPPRESS,
                            help="start from a preset (JSON file); later options override it")
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.json",
                        help="start from a JSON config file; later options override it")
    aliases = getattr(cls, "aliases", {})  # other option names of a field: {"clip": "text_encoder"}
    for f in dataclasses.fields(cls):
        flags = ["--" + f.name.replace("_", "-")]
        if "_" in f.name:
            flags.append("--" + f.name)
        flags += ["--" + alias.replace("_", "-") for alias, name in aliases.items() if name == f.name]
        help_text = comments.get(f.name, "")
        parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar="V",
                            nargs="?" if _resolve_type(cls, f) is bool else None,
                            const="true" if _resolve_type(cls, f) is bool else None,
                            help=f"{help_text} (default: {_default_text(f)})".replace("%", "%%"))
    return parser


def parse_config(cls: type[C], argv: Sequence[str] | None = None, prog: str = "t2i",
                 description: str = "", presets: dict[str, Path] | None = None) -> C:
    """Defaults < preset < --config file < command-line ``--key=value`` overrides."""
    parser = build_parser(cls, prog, description, presets)
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        valid = ", ".join("--" + f.name.replace("_", "-") for f in dataclasses.fields(cls))
        parser.error(f"unknown option(s) {unknown}; valid options: {valid}")
    given = vars(args)
    values: dict[str, Any] = {}
    try:
        if "preset" in given:
            values.update(read_json_object(presets[given.pop("preset")], "preset"))  # type: ignore[index]
        if "config" in given:
            values.update(read_json_object(given.pop("config"), "--config"))
        values.update(given)
        return config_from_dict(cls, values, source="command line")
    except ConfigError as err:
        parser.error(str(err))
        raise  # unreachable: parser.error exits


def read_json_object(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A JSON file holding one object; ConfigError (naming the file and the problem) otherwise."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r}: no such file") from None
    except OSError as err:
        raise ConfigError(f"{what} {str(path)!r}: cannot read it ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid JSON: {err.msg} at line {err.lineno}, "
                          f"column {err.colno}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a JSON object of key: value settings, "
                          f"not a {type(value).__name__}")
    return value


def demo() -> None:
    @dataclasses.dataclass
    class Demo:
        steps: int = 100  # optimisation steps
        lr: float = 1e-3  # learning rate
    print(parse_config(Demo, ["--steps=5"]))

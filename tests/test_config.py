"""The shared config style: comments as help, presets by stem, --key=value, unknown keys listed."""

import dataclasses
import json
from typing import Literal, Optional

import pytest

from t2i.config import (ConfigError, build_parser, config_from_dict, field_comments, load_config, parse_config,
                        presets_in, save_config)


@dataclasses.dataclass
class Base:
    steps: int = 10  # optimisation steps
    lr: float = 1e-3  # learning rate


@dataclasses.dataclass
class Child(Base):
    # what the code looks like
    variant: Literal["plain", "conv"] = "plain"
    hidden: tuple[int, ...] = (64, 32)  # hidden layer widths
    ema: bool = False  # keep an EMA of the weights
    limit: Optional[int] = None  # stop after this many images


def test_field_comments_include_bases_and_lines_above():
    comments = field_comments(Child)
    assert comments["steps"] == "optimisation steps"
    assert comments["variant"] == "what the code looks like"
    assert comments["hidden"] == "hidden layer widths"


def test_parse_overrides_types_and_defaults():
    cfg = parse_config(Child, ["--steps=5", "--lr", "0.5", "--variant=conv", "--hidden=8,4", "--ema", "--limit=none"])
    assert cfg == Child(steps=5, lr=0.5, variant="conv", hidden=(8, 4), ema=True, limit=None)
    assert parse_config(Child, ["--ema=false", "--limit", "3"]).limit == 3
    assert parse_config(Child, ["--steps=1e3"]).steps == 1000


def test_unknown_key_lists_valid_ones(capsys):
    with pytest.raises(SystemExit):
        parse_config(Child, ["--stepz=3"])
    err = capsys.readouterr().err
    assert "--stepz=3" in err and "--steps" in err and "--variant" in err
    with pytest.raises(ConfigError, match="valid keys"):
        config_from_dict(Child, {"nope": 1})


def test_bad_value_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        parse_config(Child, ["--variant=deep"])
    assert "must be one of ['plain', 'conv']" in capsys.readouterr().err


def test_presets_and_precedence(tmp_path):
    (tmp_path / "fast.json").write_text(json.dumps({"steps": 2, "lr": 0.1}))
    presets = presets_in(tmp_path)
    assert list(presets) == ["fast"]
    cfg = parse_config(Child, ["--preset", "fast", "--lr=0.2"], presets=presets)
    assert (cfg.steps, cfg.lr) == (2, 0.2)
    (tmp_path / "bad.json").write_text(json.dumps({"stepss": 2}))
    with pytest.raises(SystemExit):
        parse_config(Child, ["--preset", "bad"], presets=presets_in(tmp_path))


def test_help_shows_every_option_with_default(capsys):
    with pytest.raises(SystemExit):
        parse_config(Child, ["--help"], prog="t2i train demo")
    out = capsys.readouterr().out
    for text in ("--steps", "optimisation steps", "(default: 10)", "--variant", "(default: 'plain')", "(default: (64, 32))"):
        assert text in out


def test_save_load_round_trip(tmp_path):
    cfg = Child(steps=3, hidden=(1, 2))
    save_config(cfg, tmp_path / "c.json")
    assert load_config(Child, tmp_path / "c.json") == cfg


def test_an_alias_names_the_same_field():
    from gan_baselines.vae_training import CVAEConfig

    # every other text trainer takes its CLIP as --clip; cvae's field is text_encoder (a user's --clip was refused)
    assert parse_config(CVAEConfig, ["--clip", "my-clip"]).text_encoder == "my-clip"
    assert parse_config(CVAEConfig, ["--text-encoder", "my-clip"]).text_encoder == "my-clip"
    assert "--clip" in build_parser(CVAEConfig, "t2i train cvae").format_help()

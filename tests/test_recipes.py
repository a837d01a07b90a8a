"""benchmarks/recipes.yaml: every recipe must build, so no GPU session is spent on a typo."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from facevae.config import RunConfig
from facevae.models import build_model

RECIPES = yaml.safe_load((Path(__file__).resolve().parents[1] / "benchmarks" / "recipes.yaml").read_text())


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_builds_a_valid_model_at_the_protocol_size(name):
    recipe = RECIPES[name]
    assert set(recipe) <= {"note", "config", "set"} and recipe.get("note"), f"{name}: note, config, set only"
    cfg = RunConfig.load(recipe["config"]).override([str(s) for s in recipe.get("set", [])])
    cfg.validate()
    # the protocol's preprocessing; the 128 px search (c128-*) at the size its statistics were made for
    assert cfg.model.image_size == (128 if name.startswith("c128-") else 64) and cfg.data.crop == 148
    assert sum(p.numel() for p in build_model(cfg.model).parameters()) > 0


SHARP = yaml.safe_load((Path(__file__).resolve().parents[1] / "benchmarks" / "sharp_recipes.yaml").read_text())


@pytest.mark.parametrize("name", sorted(SHARP))
def test_sharp_recipe_is_a_valid_override_of_the_bundled_config(name):
    import facevae

    recipe = SHARP[name]
    assert set(recipe) <= {"note", "set"} and recipe.get("note"), f"{name}: note and set only"
    base = facevae.load(device="cpu", decoder="likelihood").config  # what sharp_search.py overrides
    cfg = base.override([str(s) for s in recipe.get("set", [])])
    assert cfg.model == base.model  # a row changes how the decoder is fine-tuned, never the model

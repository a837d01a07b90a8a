"""tools/ship_sharp_decoder.py ships a sharp decoder with the bundled model it was fine-tuned from."""
from __future__ import annotations

import importlib.util

import pytest

from facevae.errors import FacevaeError
from facevae.modelfiles import BUNDLED_NAMES
from facevae.modelfiles.checkpoint import load_model
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("ship_sharp_decoder", REPO / "tools" / "ship_sharp_decoder.py")
ship = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship)


@pytest.mark.parametrize("name", BUNDLED_NAMES)
def test_the_digest_picks_the_bundled_model_a_run_was_fine_tuned_from(name):
    run = load_model(name)  # a fine-tuned run keeps its source's weights, so it has their digest
    assert ship.bundle_of(run).source == f"bundled {name}"


def test_a_run_from_other_weights_is_refused_naming_the_bundled_models(tmp_path):
    from dataclasses import replace

    run = replace(load_model("celeba64"), digest="0" * 40, source=str(tmp_path / "sharp"))
    with pytest.raises(FacevaeError, match="not fine-tuned from a bundled model's weights .celeba64, celeba128."):
        ship.bundle_of(run)

"""benchmarks/memorisation.py checks that stored features belong to this run before it computes any."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))  # the script imports protocol_fid from its own folder
spec = importlib.util.spec_from_file_location("memorisation", REPO / "benchmarks" / "memorisation.py")
memorisation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memorisation)


def fake_extractor(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1).float() / 255  # stands in for Inception: a deterministic feature per image


def images(seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (memorisation.CHECK, 3, 4, 4), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def store(folder, feats: torch.Tensor) -> None:
    folder.mkdir()
    np.save(folder / "features-000000.npy", feats.double().numpy())


def test_features_of_other_images_stop_the_run_naming_the_folder(tmp_path):
    store(tmp_path / "gmm", fake_extractor(images(1)))
    with pytest.raises(SystemExit, match="gmm were made from other images"):
        memorisation.check_stored(tmp_path / "gmm", lambda: images(2), fake_extractor, "--seed")


def test_features_of_the_same_images_pass(tmp_path):
    store(tmp_path / "gmm", torch.cat([fake_extractor(images(1)), torch.zeros(4, 48)]))  # a longer first chunk
    memorisation.check_stored(tmp_path / "gmm", lambda: images(1), fake_extractor, "--seed")


def test_an_empty_folder_is_not_featurised_just_to_check_it(tmp_path):
    def never():
        raise AssertionError("images were made for a folder with nothing stored")

    memorisation.check_stored(tmp_path / "gmm", never, fake_extractor, "--seed")

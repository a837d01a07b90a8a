"""Which attribute vectors `edit` uses: the cache key is the data's content, and shipped vectors serve any faces."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

import facevae.cli  # noqa: F401  (registers the commands on the app)
from facevae.cli.app import app
from facevae.data import open_dataset
from facevae.modelfiles import attributes
from facevae.modelfiles.checkpoint import load_model
from tests.conftest import make_celeba, mini_slice, write_jpeg

SHIPPED = Path(attributes.__file__).resolve().parents[1] / "pretrained" / "celeba64.attribute_vectors.safetensors"


def _never_compute(*args, **kwargs):
    raise AssertionError("attribute vectors recomputed although identical ones are cached")


def test_data_key_ignores_the_folder_path(tmp_path):
    cfg = load_model(None).config
    a = open_dataset(make_celeba(tmp_path / "a" / "celeba"))
    b = open_dataset(make_celeba(tmp_path / "elsewhere" / "copy"))
    assert attributes.data_key(a, cfg) == attributes.data_key(b, cfg)
    b.attributes[0, 0] *= -1
    assert attributes.data_key(a, cfg) != attributes.data_key(b, cfg)


def test_shipped_vectors_carry_the_key_of_the_mini_celeba(celeba_root):
    cfg = load_model(None).config
    with safe_open(str(SHIPPED), framework="pt") as f:
        stored = f.metadata()["data"]
    assert stored == attributes.data_key(open_dataset(celeba_root, cfg.data.val_fraction), cfg)


def test_an_identical_copy_of_the_data_reuses_the_shipped_vectors(celeba_root, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    (copy / "img_align_celeba").mkdir(parents=True)
    for entry in os.scandir(celeba_root / "img_align_celeba"):
        os.symlink(entry.path, copy / "img_align_celeba" / entry.name)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"):
        shutil.copy(celeba_root / name, copy / name)
    monkeypatch.setattr(attributes, "_compute_from_data", _never_compute)
    loaded = load_model(None)
    bank = attributes.attribute_bank(loaded, data=copy, progress=False)
    cfg = loaded.config
    assert len(bank.names) == 40 and bank.directions.shape == (40, cfg.model.latent_dim)
    # the shipped file's numbers, exactly
    shipped = load_file(str(SHIPPED))
    for name in ("directions", "spread", "positives", "negatives"):
        torch.testing.assert_close(getattr(bank, name), shipped[name], rtol=0, atol=0, msg=name)
    # and they belong to this data: per attribute, its training faces with and without it, from the annotations
    ds = open_dataset(copy, cfg.data.val_fraction)
    labels = torch.from_numpy(ds.attributes[ds.split_indices("train")]).float()
    assert bank.names == list(ds.attr_names)
    torch.testing.assert_close(bank.positives.float(), (labels > 0).sum(0).float(), rtol=0, atol=0)
    torch.testing.assert_close(bank.negatives.float(), (labels <= 0).sum(0).float(), rtol=0, atol=0)


def _valid_only(celeba_root: Path, tmp_path: Path) -> Path:
    return mini_slice(celeba_root, tmp_path / "valid_only", n_train=0, n_valid=3)


def _plain_folder(celeba_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(3):
        write_jpeg(folder / f"face{i}.jpg", i)
    return folder


@pytest.mark.parametrize("faces", [_valid_only, _plain_folder])
def test_edit_data_without_a_training_split_uses_the_shipped_vectors(faces, celeba_root, tmp_path, monkeypatch):
    monkeypatch.setattr(attributes, "_compute_from_data", _never_compute)
    out = tmp_path / "edit.png"
    result = CliRunner().invoke(app, ["edit", "--data", str(faces(celeba_root, tmp_path)), "--split", "all",
                                      "--n", "2", "--attribute", "Smiling", "--strengths", "-1,1", "--out", str(out),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert out.is_file() and "wrote 2 faces x 2 strengths" in result.output

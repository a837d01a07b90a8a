"""tools/make_bundle.py: a new bundle is made whole before the package is touched, and only its own files go."""
from __future__ import annotations

import importlib.util
import shutil

import pytest

from facevae.modelfiles.checkpoint import load_model
from tests.conftest import REPO, train_tiny

spec = importlib.util.spec_from_file_location("make_bundle", REPO / "tools" / "make_bundle.py")
make_bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_bundle)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_tiny(tmp_path_factory)


def test_stage_writes_weights_samplers_and_vectors_named_for_the_bundle(tiny, tmp_path, monkeypatch):
    run, data = tiny
    monkeypatch.setattr(make_bundle, "SAMPLERS", ("gaussian", "gmm"))  # the neural fits take minutes
    made = make_bundle.stage(run, data, 2, tmp_path, "celeba128")
    bundle = load_model(tmp_path / "celeba128.safetensors")
    assert {p.name for p in made} == {"celeba128.safetensors", "celeba128.attribute_vectors.safetensors",
                                      f"gaussian-{bundle.weights_id}.safetensors",
                                      f"gmm-k2-{bundle.weights_id}.safetensors"}
    assert bundle.weights_id == make_bundle.weights_id(tmp_path / "celeba128.safetensors")


def test_old_files_are_this_names_own_and_spare_what_another_bundle_uses(tmp_path):
    ours, other = tmp_path / "celeba128.safetensors", tmp_path / "celeba64.safetensors"
    ours.write_bytes(b"old 128 weights")
    other.write_bytes(b"64 weights")
    ours_id, other_id = make_bundle.weights_id(ours), make_bundle.weights_id(other)
    for name in (f"gmm-k10-{ours_id}", f"gmm-k10-{other_id}", "celeba128.attribute_vectors",
                 "celeba64.attribute_vectors"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    (tmp_path / "celeba128.metrics.json").write_text("{}")
    assert {p.name for p in make_bundle.old_files(ours)} == {
        "celeba128.safetensors", f"gmm-k10-{ours_id}.safetensors", "celeba128.attribute_vectors.safetensors",
        "celeba128.metrics.json"}
    shutil.copy(other, ours)  # the same weights under both names: their samplers are shared, so they stay
    assert f"gmm-k10-{other_id}.safetensors" not in {p.name for p in make_bundle.old_files(ours)}
    assert make_bundle.old_files(tmp_path / "missing.safetensors") == []


def test_install_replaces_an_old_bundle_and_removes_only_what_it_did_not_replace(tmp_path):
    pretrained, staging = tmp_path / "pretrained", tmp_path / "staging"
    pretrained.mkdir(), staging.mkdir()
    target, other = pretrained / "celeba128.safetensors", pretrained / "celeba64.safetensors"
    target.write_bytes(b"old 128 weights")
    other.write_bytes(b"64 weights")
    old_id = make_bundle.weights_id(target)
    for name in (f"gmm-k10-{old_id}.safetensors", "celeba128.attribute_vectors.safetensors", "celeba128.metrics.json"):
        (pretrained / name).write_bytes(b"old")
    assert len(make_bundle.old_files(target)) == len(set(make_bundle.old_files(target))) == 4
    made = [staging / "celeba128.safetensors", staging / "celeba128.attribute_vectors.safetensors",
            staging / "gmm-k10-0123456789ab.safetensors"]
    for path in made:
        path.write_bytes(b"new")
    make_bundle.install(made, target)
    assert sorted(p.name for p in pretrained.iterdir()) == sorted(
        ["celeba128.safetensors", "celeba128.attribute_vectors.safetensors", "gmm-k10-0123456789ab.safetensors",
         "celeba64.safetensors"])
    assert target.read_bytes() == b"new" and other.read_bytes() == b"64 weights"
    assert not any(staging.iterdir())

"""Hub-layout model folders: save_pretrained / from_pretrained, --ckpt DIR and `facevae export` (local only)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from facevae.cli import app
from facevae.errors import FacevaeError
from facevae.models import build_model
from facevae.modelfiles import checkpoint as ckpt
from facevae.modelfiles.pretrained import from_pretrained, save_pretrained
from tests.conftest import tiny_config


@pytest.fixture
def model_cfg():
    cfg = tiny_config("model.latent_dim=6")
    torch.manual_seed(0)
    return build_model(cfg.model).eval(), cfg


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_then_from_pretrained_round_trips(model_cfg, tmp_path):
    model, cfg = model_cfg
    folder = save_pretrained(model, cfg, tmp_path / "hub")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    raw = json.loads((folder / "config.json").read_text())
    assert raw["model_type"] == "facevae" and raw["model"]["latent_dim"] == 6
    loaded = from_pretrained(str(folder))
    assert loaded.config == cfg and same_weights(loaded.model, model) and loaded.run_dir == folder


def test_folder_with_plain_weights_reads_config_json(model_cfg, tmp_path):
    """The layout PyTorchModelHubMixin writes: weights without facevae metadata, config in config.json."""
    model, cfg = model_cfg
    folder = save_pretrained(model, cfg, tmp_path / "hub")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    loaded = from_pretrained(folder)
    assert loaded.config == cfg and same_weights(loaded.model, model)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(FacevaeError, match="does not describe a facevae model"):
        from_pretrained(folder)


def test_save_pretrained_refuses_a_run_folder(model_cfg, tmp_path):
    model, cfg = model_cfg
    (tmp_path / ckpt.CHECKPOINT).write_bytes(b"a run")
    with pytest.raises(FacevaeError, match="holds a training run"):
        save_pretrained(model, cfg, tmp_path)
    assert (tmp_path / ckpt.CHECKPOINT).read_bytes() == b"a run"


def test_export_writes_card_and_sample_reads_the_folder(model_cfg, tmp_path):
    model, cfg = model_cfg
    run = tmp_path / "run"
    ckpt.save_weights(run / ckpt.WEIGHTS, cfg, model.state_dict())
    cfg.save(run / ckpt.CONFIG)
    rows = [{"kind": "train", "step": 1, "total": 9.0}, {"kind": "epoch", "step": 2, "val_total": 123.25}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps({"fid": {"prior": {"fid": 87.5}}, "timings_s": {"x": 1}}))
    out = tmp_path / "exported"
    result = CliRunner().invoke(app, ["export", "--ckpt", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: facevae\n")
    for needle in ("## Training data", "center crop 148", "latent_dim: 6", "val_total: 123.2",
                   "evaluate fid.prior.fid: 87.5", "non-commercial research"):
        assert needle in card, needle
    assert "timings" not in card
    assert same_weights(from_pretrained(out).model, model)

    png = tmp_path / "faces.png"
    result = CliRunner().invoke(app, ["sample", "--ckpt", str(out), "--n", "4", "--out", str(png), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert png.is_file()


def test_the_bundled_models_card_quotes_its_measured_fids(tmp_path):
    """The card of `facevae export` without --ckpt quotes the FID-10k figures shipped beside the weights."""
    out = tmp_path / "bundled"
    result = CliRunner().invoke(app, ["export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    for needle in ("FID-10k, GMM-10 sampler: 54.81", "FID-10k, diffusion sampler: 55.03",
                   "FID-10k, two-stage sampler: 66.08", "FID-10k, prior N(0, I): 69.56",
                   "FID-10k, reconstructions: 46.52", "vs all 24,012 mini-CelebA train images", "79655d5373c5"):
        assert needle in card, needle
    assert "No metrics were recorded" not in card
    assert "https://github.com/)" not in card  # no placeholder link: pyproject names no project URL


def test_a_bundled_card_quotes_nothing_measured_on_other_weights():
    import dataclasses

    from facevae.modelfiles.pretrained import model_card

    loaded = ckpt.load_model(None)
    other = dataclasses.replace(loaded, digest="0" * 40)  # as if the bundle changed and its metrics file did not
    card = model_card(other.model, other.config, None, bundled=other)
    assert "No metrics were recorded" in card and "54.81" not in card

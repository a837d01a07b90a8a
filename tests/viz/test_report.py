"""The evaluation report's text (viz/report.py), rendered from a metrics dict alone: no model, no Inception."""
from __future__ import annotations

from facevae.sampling import build_sampler
from facevae.viz.report import fid_label, fid_note, render_report, sampler_caption

PRIOR_SOURCE = "N(0, I), the model's prior"  # what tasks/evaluate.py records for the prior
NOT_10K = "not comparable with FID-10k, which needs --fid-samples 10000"


def metrics_dict(fid_samples: int = 500) -> dict:
    """What tasks/evaluate.py writes to metrics.json, cut to the fields the report and the CLI read."""
    def sample_fid(value: float) -> dict:
        return {"fid": value, "count": fid_samples, "reference_count": 24_012, "reference_split": "train"}

    return {
        "protocol": {"checkpoint": "runs/quick", "weights": "runs/quick/model.safetensors", "step": 1200,
                     "weights_sha1": "0" * 40, "data": "/data/celeba", "split": "valid", "split_images": 2_962,
                     "image_size": 64, "crop": 148, "device": "cpu", "seed": 0, "created": "2026-01-01T00:00:00+00:00",
                     "options": {"fid_samples": fid_samples}},
        "model": {"kind": "vae", "latent_dim": 8, "recon_loss": "gaussian"},
        "fid": {"samplers": {"prior": sample_fid(123.45), "gmm": sample_fid(98.7)},
                "reconstructions": {"fid": 46.5, "count": fid_samples, "reference_count": fid_samples,
                                    "reference_split": "valid"},
                "reference": {"count": 24_012, "split": "train", "selection": "all", "source": "computed",
                              "cache": "/cache/ref.npz"}},
        "likelihood": {"skipped": "--iw-samples 0"},
        "reconstruction": {"mse": 0.01, "psnr_db": 20.0, "psnr_db_stderr": 0.1, "ssim": 0.7, "ssim_stderr": 0.01,
                           "images": 2_962, "split": "valid"},
        "latent": {"active_units": 30, "latent_dim": 64, "active_threshold": 0.01, "images": 2_962,
                   "kl": {"total": 216.0, "mean_per_dim": 3.375, "max": 9.0, "dims_above": 31, "threshold": 0.01},
                   "aggregate_kl": 7.93},
        "samplers": {"prior": {"source": PRIOR_SOURCE, "options": build_sampler("prior", 8).options()},
                     "gmm": {"source": "fitted on the posterior means of 320 training images",
                             "options": {"latent_dim": 8, "components": 10}}},
        "timings_s": {"fid": 12.0},
        "files": {"samples_prior": "samples_prior.png", "samples_gmm": "samples_gmm.png",
                  "reconstructions": "reconstructions.png", "latent_kl": "latent_kl.png"},
    }


def test_fid_below_10k_names_its_count_and_says_it_is_not_fid_10k():
    assert fid_note(500, "24,012 train images") == f"FID-500 vs 24,012 train images; {NOT_10K}"
    assert fid_note(10_000, "24,012 train images") == "FID-10k vs 24,012 train images"
    assert [fid_label(n) for n in (4, 1_500, 2_000, 50_000)] == ["FID-4", "FID-1500", "FID-2k", "FID-50k"]


def test_prior_caption_ends_in_one_full_stop():
    prior = {"source": PRIOR_SOURCE, "options": build_sampler("prior", 8).options()}  # only latent_dim: no options
    assert sampler_caption(prior, None) == "N(0, I), the model's prior."
    gmm = {"source": "fitted on 320 images", "options": {"latent_dim": 8, "components": 10}}
    assert sampler_caption(gmm, None) == "Fitted on 320 images; components=10."
    f = {"count": 500, "reference_count": 24_012, "reference_split": "train"}
    assert sampler_caption(prior, f) == f"FID-500 vs 24,012 train images; {NOT_10K}. N(0, I), the model's prior."


def test_report_page_states_the_fid_count_and_names_both_kls(tmp_path):
    page = render_report(metrics_dict(500), tmp_path).read_text()
    assert "N(0, I), the model&#x27;s prior.</figcaption>" in page and "; ." not in page
    assert page.count(NOT_10K) == 2 + 2 + 2  # summary rows and sample captions (2 samplers), reconstructions twice
    assert '<span class="pill">FID-500 123.45</span>' in page
    assert "The mean over images of KL(q(z|x) || p(z)), summed over dimensions" in page
    assert "KL(N(m, S) || N(0, I)) for the mean m and covariance S of the aggregate posterior q(z)" in page

    page = render_report(metrics_dict(10_000), tmp_path).read_text()
    assert "not comparable" not in page and "FID-10k vs 24,012 train images" in page

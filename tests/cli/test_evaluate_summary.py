"""What `facevae evaluate` prints (cli/evaluate.py): each figure with its count, protocol and meaning."""
from __future__ import annotations

from facevae.cli.evaluate import summary_lines
from tests.viz.test_report import NOT_10K, metrics_dict


def test_fid_below_10k_is_printed_with_its_count_reference_and_caveat():
    lines = summary_lines(metrics_dict(500))
    assert f"FID prior: 123.45 (FID-500 vs 24,012 train images; {NOT_10K})" in lines
    assert f"FID reconstructions: 46.50 (FID-500 vs the same 500 valid originals; {NOT_10K})" in lines
    assert "FID gmm: 98.70 (FID-10k vs 24,012 train images)" in summary_lines(metrics_dict(10_000))


def test_both_kl_figures_say_what_they_measure():
    lines = summary_lines(metrics_dict())
    i = lines.index("latent: 30/64 active units")
    assert lines[i + 1:] == [
        "  per-image KL: 216.0 nats (the mean over images of KL(q(z|x) || p(z)), summed over dimensions)",
        "  aggregate-posterior KL: 7.93 nats "
        "(KL(N(m, S) || N(0, I)) for the mean m and covariance S of the aggregate posterior q(z))",
    ]


def test_an_autoencoder_has_only_the_aggregate_kl_and_inf_is_printed_as_such():
    m = metrics_dict()
    m["latent"].update(kl=None, aggregate_kl="inf")
    lines = summary_lines(m)
    assert not any("per-image KL" in line for line in lines)
    assert any(line.startswith("  aggregate-posterior KL: inf nats (") for line in lines)

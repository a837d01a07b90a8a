"""metrics.neighbours against brute-force answers."""
import numpy as np
import pytest

from facevae.metrics.neighbours import distance_summary, nearest


def test_nearest_matches_brute_force_across_chunks():
    rng = np.random.default_rng(0)
    ref, query = rng.normal(size=(300, 16)), rng.normal(size=(50, 16))
    idx, dist = nearest(query, ref, chunk=7)
    full = np.linalg.norm(query[:, None, :] - ref[None, :, :], axis=2)
    assert np.array_equal(idx, full.argmin(1))
    np.testing.assert_allclose(dist, full.min(1), rtol=1e-10)


def test_a_copied_row_is_found_at_distance_zero():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(40, 2048)) * 3 + 5  # large norms, where the expanded square loses digits
    idx, dist = nearest(ref[[7, 31]], ref)
    assert idx.tolist() == [7, 31] and dist.tolist() == [0.0, 0.0]


def test_exact_distances_and_ties_go_to_the_lower_index():
    ref = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]])
    idx, dist = nearest(np.array([[3.0, 4.0], [0.0, 1.0]]), ref)
    assert idx.tolist() == [1, 0] and dist.tolist() == [0.0, 1.0]


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="N x D"):
        nearest(np.zeros((2, 3)), np.zeros((4, 5)))


def test_summary_reports_exact_percentiles():
    s = distance_summary(np.arange(101, dtype=float))
    assert (s["n"], s["mean"], s["min"], s["p1"], s["p50"], s["p75"]) == (101, 50.0, 0.0, 1.0, 50.0, 75.0)

"""Evaluation metrics: FID with NVIDIA's standard Inception."""
from facevae.metrics.fid import (
    FEATURE_DIM,
    InceptionFeatures,
    cached_stats,
    default_inception_path,
    features_of,
    fid_from_features,
    frechet_distance,
    inception_identity,
    load_inception,
    stats_of,
)

__all__ = [
    "FEATURE_DIM", "InceptionFeatures", "cached_stats", "default_inception_path",
    "features_of", "fid_from_features", "frechet_distance", "inception_identity", "load_inception", "stats_of",
]

"""CelebA reading, the preprocessed image cache and device-side batching."""
from facevae.data.cache import cached_images, load_image, load_images, preprocess_image
from facevae.data.celeba import SPLITS, FaceDataset, open_dataset
from facevae.data.loader import BatchLoader, iterate_fixed, place_images, to_float

__all__ = [
    "SPLITS", "BatchLoader", "FaceDataset", "cached_images", "iterate_fixed", "load_image",
    "load_images", "open_dataset", "place_images", "preprocess_image", "to_float",
]

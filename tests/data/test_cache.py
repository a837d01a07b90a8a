import numpy as np
import pytest
from PIL import Image

from facevae.data import cache, load_image, cached_images, open_dataset
from facevae.errors import FacevaeError


def test_cache_is_built_once_and_reused(fake_celeba, tmp_path, monkeypatch):
    ds = open_dataset(fake_celeba)
    first = cached_images(ds, 32, 148, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert first.shape == (24, 3, 32, 32) and first.dtype == np.uint8
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].endswith(".npy")

    def boom(*a, **k):
        raise AssertionError("cache was rebuilt")

    monkeypatch.setattr(cache, "_build", boom)
    again = cached_images(ds, 32, 148, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(first, again)


def test_cache_key_follows_preprocessing(fake_celeba):
    ds = open_dataset(fake_celeba)
    keys = {cache.cache_key(ds, 64, 148, False), cache.cache_key(ds, 64, 140, False),
            cache.cache_key(ds, 128, 148, False), cache.cache_key(ds, 64, 148, True)}
    assert len(keys) == 4


def test_cache_matches_direct_decoding(fake_celeba, tmp_path):
    ds = open_dataset(fake_celeba)
    arr = cached_images(ds, 32, 148, cache_dir=tmp_path, workers=2, progress=False)
    direct = load_image(ds.paths([5])[0], 32, 148)
    np.testing.assert_array_equal(arr[5], direct)


def test_center_crop_then_resize():
    # left/right thirds red, centre green: a 148 crop of a 178-wide image keeps mostly green
    img = np.zeros((218, 178, 3), np.uint8)
    img[:, :15] = (255, 0, 0)
    img[:, 163:] = (255, 0, 0)
    img[:, 15:163] = (0, 255, 0)
    out = cache.preprocess_image(Image.fromarray(img), 16, 148)
    assert out.shape == (3, 16, 16)
    # the bicubic kernel reaches just past the crop box, so only the border pixels see any red
    assert out[1, :, 1:-1].min() > 250 and out[0, :, 1:-1].max() < 5 and out[0].mean() < 10


def test_corrupt_image_is_a_user_error(fake_celeba, tmp_path):
    bad = fake_celeba / "img_align_celeba" / "000003.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(FacevaeError, match="000003.jpg.*corrupt"):
        cached_images(open_dataset(fake_celeba), 32, 148, cache_dir=tmp_path / "c", workers=1, progress=False)

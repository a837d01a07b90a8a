"""Fixtures shared by the metric tests."""
import pytest

from facevae.metrics import fid


@pytest.fixture(scope="module")
def inception():
    path = fid.default_inception_path()
    if path is None or not path.is_file():
        pytest.skip(f"FID Inception not installed: {fid.INSTALL_HINT}")
    return fid.InceptionFeatures(path, device="cpu")

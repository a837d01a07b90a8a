import numpy as np
import pytest

from facevae.data import open_dataset
from facevae.errors import FacevaeError

from tests.conftest import make_celeba, write_jpeg


@pytest.mark.parametrize("crlf", [True, False])
def test_reads_original_layout_with_crlf_or_lf(tmp_path, crlf):
    ds = open_dataset(make_celeba(tmp_path / "c", n=12, crlf=crlf))
    assert len(ds) == 12 and ds.missing == 0
    assert ds.attr_names == ["Smiling", "Eyeglasses", "Male"]
    assert ds.attributes.shape == (12, 3) and set(np.unique(ds.attributes)) <= {-1, 1}
    assert list(ds.split_indices("valid")) == [0, 4, 8]
    assert len(ds.split_indices("train")) == 9
    assert ds.identity is not None and ds.identity[3] == 3


def test_missing_images_are_dropped_and_counted(tmp_path):
    ds = open_dataset(make_celeba(tmp_path / "c", n=10, missing=3))
    assert len(ds) == 7 and ds.missing == 3
    assert ds.filenames[-1] == "000007.jpg"
    assert ds.attributes.shape == (7, 3)


def test_bad_attribute_row_names_the_line(tmp_path):
    root = make_celeba(tmp_path / "c", n=5)
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    lines[4] = "000003.jpg 1 0 1"  # 0 is not a CelebA value
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(FacevaeError, match="list_attr_celeba.txt line 5 is malformed"):
        open_dataset(root)


def test_short_attribute_row(tmp_path):
    root = make_celeba(tmp_path / "c", n=5)
    with open(root / "list_attr_celeba.txt", "a") as f:
        f.write("000009.jpg 1 -1\n")
    with pytest.raises(FacevaeError, match="line 8"):
        open_dataset(root)


def test_bad_partition_row(tmp_path):
    root = make_celeba(tmp_path / "c", n=5)
    (root / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(FacevaeError, match="list_eval_partition.txt line 1"):
        open_dataset(root)


@pytest.mark.parametrize("name", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_missing_annotation_file(tmp_path, name):
    root = make_celeba(tmp_path / "c", n=5)
    (root / name).unlink()
    with pytest.raises(FacevaeError, match=f"annotation file {name} is missing"):
        open_dataset(root)


def test_identity_file_is_optional(tmp_path):
    root = make_celeba(tmp_path / "c", n=5)
    (root / "identity_CelebA.txt").unlink()
    assert open_dataset(root).identity is None


def test_plain_folder_of_images(tmp_path):
    for i in range(10):
        write_jpeg(tmp_path / f"face{i}.jpg", i, size=(90, 110))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = open_dataset(tmp_path, val_fraction=0.2)
    assert len(ds) == 10 and not ds.is_celeba
    assert len(ds.split_indices("valid")) == 2


def test_not_a_celeba_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(FacevaeError, match="not a CelebA folder"):
        open_dataset(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(FacevaeError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")


def test_real_mini_celeba(celeba_root):
    ds = open_dataset(celeba_root)
    assert len(ds) == 24792 and ds.missing == 0
    assert len(ds.attr_names) == 40 and "Smiling" in ds.attr_names
    assert len(ds.split_indices("train")) == 24012
    assert len(ds.split_indices("valid")) == 780
    with pytest.raises(FacevaeError, match="holds no images"):
        ds.split_indices("test")

"""A corrupt image that passes the cheap scan: what the pipeline does when it reaches it."""
import io

import numpy as np
import pytest
from PIL import Image

from ppt_ms.config import load_config
from ppt_ms.data import create_dataset


def data_cfg(root, **overrides):
    """The data section of the defaults with every augmentation off, for `root`."""
    cfg = load_config(overrides=[f"data.path={root}", "data.batch_size=2", "data.num_workers=1",
                                 "data.auto_augment=null", "data.reprob=0", "data.mixup=0", "data.cutmix=0",
                                 "data.label_smoothing=0"]).data.to_dict()
    cfg.update(overrides)
    return cfg


@pytest.fixture
def folder_with_truncated_jpeg(tmp_path):
    """val/a: two good JPEGs; val/b: one good JPEG and cut.jpg, the first half of a JPEG (not empty,
    so the default scan keeps it)."""
    rng = np.random.default_rng(0)
    for cls, names in (("a", ["0", "1"]), ("b", ["0"])):
        (tmp_path / "val" / cls).mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / "val" / cls / f"{name}.jpg")
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    cut = tmp_path / "val" / "b" / "cut.jpg"
    cut.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    return tmp_path, cut


def images_of(dataset):
    return sum(images.shape[0] for images, _ in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_jpeg_stops_the_pipeline_naming_the_file(folder_with_truncated_jpeg, workers):
    root, cut = folder_with_truncated_jpeg
    dataset = create_dataset(data_cfg(root, num_workers=workers), "val", 16, 2, training=False)
    with pytest.raises(RuntimeError) as error:
        images_of(dataset)
    assert f"cannot decode image '{cut}'" in str(error.value)


def test_verify_images_skips_the_truncated_jpeg_with_a_warning(folder_with_truncated_jpeg):
    root, cut = folder_with_truncated_jpeg
    with pytest.warns(UserWarning, match=f"skipped 1 unreadable images.*{cut.name}"):
        dataset = create_dataset(data_cfg(root, verify_images=True), "val", 16, 2, training=False)
    assert images_of(dataset) == 3


def test_the_decode_error_hint_can_be_followed_from_a_config():
    cfg = load_config(overrides=["data.verify_images=true"])
    assert cfg.data.verify_images is True

"""Image-folder data sets never follow symbolic links out of the data directory."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.datasets import DatasetError, load_dataset


def _class_dir(directory: Path, count: int = 2) -> Path:
    directory.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((4, 6), 10 * i, np.uint8)).save(directory / f"{i}.png")
    return directory


@pytest.fixture()
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(data directory holding the data set `imgs` with class `cat`, a directory outside it)."""
    data_dir = tmp_path / "data"
    _class_dir(data_dir / "imgs" / "cat")
    outside = _class_dir(tmp_path / "secrets" / "dog")
    return data_dir, outside


def test_a_class_directory_linking_outside_the_data_directory_is_refused(
    layout: tuple[Path, Path],
) -> None:
    data_dir, outside = layout
    (data_dir / "imgs" / "dog").symlink_to(outside, target_is_directory=True)
    entry = data_dir / "imgs" / "dog"
    with pytest.raises(DatasetError, match=re.escape(f"{entry}: a symbolic link leading outside")):
        load_dataset({"name": "folder", "path": "imgs"}, data_dir)


def test_an_image_linking_outside_the_data_directory_is_refused(
    layout: tuple[Path, Path],
) -> None:
    data_dir, outside = layout
    _class_dir(data_dir / "imgs" / "dog", count=1)
    entry = data_dir / "imgs" / "dog" / "leak.png"
    entry.symlink_to(outside / "0.png")
    with pytest.raises(DatasetError, match=re.escape(f"{entry}: a symbolic link leading outside")):
        load_dataset({"name": "folder", "path": "imgs"}, data_dir)


def test_links_that_stay_inside_the_data_directory_are_followed(
    layout: tuple[Path, Path],
) -> None:
    data_dir, _ = layout
    shared = _class_dir(data_dir / "shared" / "dog")
    (data_dir / "imgs" / "dog").symlink_to(shared, target_is_directory=True)
    data = load_dataset({"name": "folder", "path": "imgs"}, data_dir)
    assert data.class_names == ["cat", "dog"]
    assert data.x_train.shape == (4, 1, 4, 6)

"""core.ingest: uploaded data sets are summarised when good and refused, with the right kind and
a message naming the entry, when bad. Every archive is generated here in tmp_path."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.ingest import (
    DatasetSummary,
    IngestError,
    IngestLimits,
    extract_archive,
    inspect_archive,
    inspect_npz,
)
from tests.support.archives import (
    png_header_only,
    save_npz,
    solid,
    special,
    write_tar,
    write_zip,
)
from tests.support.images import encode_image

# --- builders ------------------------------------------------------------------------------


def noise(seed: int, height: int, width: int, rgb: bool = True) -> np.ndarray:
    shape = (height, width, 3) if rgb else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


TWO_CLASSES = {"cats/a.png": solid(10), "dogs/b.png": solid(30)}


def refused(kind: str, call: Callable[..., object], *args: object) -> IngestError:
    """The IngestError ``call(*args)`` raises, checked to be of ``kind``."""
    with pytest.raises(IngestError) as caught:
        call(*args)
    assert caught.value.kind == kind, str(caught.value)
    return caught.value


# --- good archives -------------------------------------------------------------------------


def test_grey_tar_gz_summary_worked_by_hand(tmp_path: Path) -> None:
    summary = inspect_archive(write_tar(tmp_path / "d.tar.gz", TWO_CLASSES))
    # 4 pixels of 10 and 4 of 30: mean 20, every deviation 10 -> std 10.
    assert summary == DatasetSummary(
        format="tar.gz",
        samples=2,
        classes=("cats", "dogs"),
        class_counts={"cats": 1, "dogs": 1},
        channels=1,
        min_height=2,
        max_height=2,
        min_width=2,
        max_width=2,
        mean=(20.0,),
        std=(10.0,),
        splits={},
    )


def test_mixed_zip_rgb_and_grey_png_and_jpeg_mixed_sizes(tmp_path: Path) -> None:
    images = {
        "cats/a.png": noise(1, 6, 8),
        "cats/b.jpg": noise(2, 12, 5),
        "dogs/c.png": noise(3, 7, 7, rgb=False),
        "dogs/d.jpeg": noise(4, 3, 9, rgb=False),
    }
    files = {
        name: encode_image(pixels, "JPEG" if name.endswith(("jpg", "jpeg")) else "PNG")
        for name, pixels in images.items()
    }
    summary = inspect_archive(write_zip(tmp_path / "d.zip", files, dirs=("cats/", "dogs/")))
    # Oracle: decode each file with Pillow, grey replicated to RGB, all pixels pooled.
    decoded = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in files.values()]
    pooled = np.concatenate([d.reshape(-1, 3) for d in decoded]).astype(np.float64)
    assert summary.format == "zip"
    assert summary.channels == 3
    assert (summary.samples, summary.classes) == (4, ("cats", "dogs"))
    assert summary.class_counts == {"cats": 2, "dogs": 2}
    assert (summary.min_height, summary.max_height) == (3, 12)
    assert (summary.min_width, summary.max_width) == (5, 9)
    np.testing.assert_allclose(summary.mean, pooled.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(summary.std, pooled.std(axis=0), rtol=1e-12)


def test_plain_tar_with_train_test_split_and_dot_prefix(tmp_path: Path) -> None:
    files = {
        "./train/cats/a.png": solid(1),
        "./train/cats/b.png": solid(2),
        "./train/dogs/c.png": solid(3),
        "./test/cats/d.png": solid(4),
    }
    summary = inspect_archive(write_tar(tmp_path / "d.tar", files))
    assert summary.format == "tar"
    assert summary.splits == {"train": 3, "test": 1}
    assert summary.class_counts == {"cats": 3, "dogs": 1}
    assert summary.to_dict()["classes"] == ["cats", "dogs"]


def test_format_is_told_by_content_not_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "upload.bin", TWO_CLASSES)
    assert inspect_archive(path).format == "zip"


# --- bad entries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/cats/a.png", "absolute path"),
        ("cats/../../a.png", "'..'"),
        ("cats//a.png", "empty or '.'"),
        ("a.png", "outside the layout"),
        ("x/cats/a.png", "outside the layout"),
        ("train/cats/deep/a.png", "outside the layout"),
    ],
)
def test_entry_paths_outside_the_layout_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    path = write_tar(tmp_path / "d.tar", {name: solid(1), **TWO_CLASSES})
    error = refused("bad_entry", inspect_archive, path)
    assert name in str(error) and reason in str(error)


def test_absolute_path_in_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("/cats/a.png"), solid(1))
    assert "absolute path" in str(refused("bad_entry", inspect_archive, path))


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (special("cats/link.png", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (special("cats/hard.png", tarfile.LNKTYPE, "dogs/b.png"), "hard link"),
        (special("cats/dev.png", tarfile.CHRTYPE), "device"),
        (special("cats/blk.png", tarfile.BLKTYPE), "device"),
        (special("cats/fifo.png", tarfile.FIFOTYPE), "fifo"),
    ],
)
def test_links_and_devices_in_a_tar_are_refused(
    tmp_path: Path, info: tarfile.TarInfo, reason: str
) -> None:
    path = write_tar(tmp_path / "d.tar.gz", TWO_CLASSES, info)
    error = refused("bad_entry", inspect_archive, path)
    assert info.name in str(error) and reason in str(error)


def test_symlink_in_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in TWO_CLASSES.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("cats/link.png")
        link.create_system = 3  # unix: the high 16 bits of external_attr are st_mode
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    assert "symbolic link" in str(refused("bad_entry", inspect_archive, path))


def test_the_same_path_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.tar"
    write_tar(path, {**TWO_CLASSES, "./cats/a.png": solid(5)})
    assert "twice" in str(refused("bad_entry", inspect_archive, path))


def test_flat_and_split_layouts_mixed_are_refused(tmp_path: Path) -> None:
    files = {"train/cats/a.png": solid(1), "train/dogs/b.png": solid(2), "birds/c.png": solid(3)}
    error = refused("bad_entry", inspect_archive, write_zip(tmp_path / "d.zip", files))
    assert "birds/c.png" in str(error) and "one layout" in str(error)


# --- bombs and limits ----------------------------------------------------------------------

SMALL = IngestLimits(ratio_floor_bytes=64 * 1024, max_compression_ratio=20)


def test_zip_entry_over_the_compression_ratio_is_a_bomb(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", {**TWO_CLASSES, "cats/zeros.png": bytes(1024 * 1024)})
    error = refused("bomb", inspect_archive, path, SMALL)
    assert "max_compression_ratio 20" in str(error)
    assert error.exhausts_resources


def test_tar_gz_unpacking_past_the_ratio_stops_as_a_bomb(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "d.tar.gz", {**TWO_CLASSES, "cats/zeros.png": bytes(1024 * 1024)})
    assert "compression bomb" in str(refused("bomb", inspect_archive, path, SMALL))


def test_tiny_archives_are_never_bombs_under_the_floor(tmp_path: Path) -> None:
    # A 4 KiB all-black PNG in a 10 KiB tar record compresses far past ratio 20.
    files = {"cats/a.png": solid(0, 64, 64), "dogs/b.png": solid(0, 64, 64)}
    assert inspect_archive(write_tar(tmp_path / "d.tar.gz", files), SMALL).samples == 2


def test_too_many_files(tmp_path: Path) -> None:
    files = {f"cats/{i}.png": solid(i) for i in range(3)} | {"dogs/x.png": solid(9)}
    path = write_zip(tmp_path / "d.zip", files)
    error = refused("too_large", inspect_archive, path, IngestLimits(max_files=3))
    assert "more than 3 files" in str(error)


def test_upload_over_max_bytes(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", TWO_CLASSES)
    error = refused("too_large", inspect_archive, path, IngestLimits(max_bytes=100))
    assert "upload limit of 100" in str(error)


def test_image_side_over_the_limit_is_read_from_the_png_header(tmp_path: Path) -> None:
    files = {**TWO_CLASSES, "cats/huge.png": png_header_only(100_000, 1)}
    error = refused("too_large", inspect_archive, write_zip(tmp_path / "d.zip", files))
    assert "cats/huge.png" in str(error) and "100000x1" in str(error) and "4096" in str(error)


def test_decoded_pixels_over_the_total(tmp_path: Path) -> None:
    # 2x2 + 2x2 = 8 pixels, over a limit of 7.
    path = write_zip(tmp_path / "d.zip", TWO_CLASSES)
    error = refused("too_large", inspect_archive, path, IngestLimits(max_decoded_pixels=7))
    assert "max_decoded_pixels" in str(error)


def test_encoded_image_over_max_image_bytes(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", TWO_CLASSES)
    error = refused("too_large", inspect_archive, path, IngestLimits(max_image_bytes=10))
    assert "max_image_bytes 10" in str(error)


def test_more_classes_than_max_classes(tmp_path: Path) -> None:
    files = {f"c{i}/a.png": solid(i) for i in range(3)}
    path = write_zip(tmp_path / "d.zip", files)
    assert "max_classes" in str(
        refused("too_large", inspect_archive, path, IngestLimits(max_classes=2))
    )


@pytest.mark.parametrize("field", ["max_bytes", "max_files", "max_compression_ratio"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=f"IngestLimits.{field} must be a number > 0"):
        IngestLimits(**{field: 0})


# --- undecodable images and classes --------------------------------------------------------


def test_a_file_that_is_not_an_image_is_undecodable(tmp_path: Path) -> None:
    files = {**TWO_CLASSES, "cats/notes.png": b"just some text"}
    error = refused("undecodable", inspect_archive, write_zip(tmp_path / "d.zip", files))
    assert "cats/notes.png" in str(error)


def test_a_truncated_png_is_undecodable(tmp_path: Path) -> None:
    whole = encode_image(noise(5, 32, 32))
    files = {**TWO_CLASSES, "dogs/cut.png": whole[: len(whole) // 2]}
    error = refused("undecodable", inspect_archive, write_tar(tmp_path / "d.tar", files))
    assert "dogs/cut.png" in str(error)


def test_one_class_only(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", {"cats/a.png": solid(1), "cats/b.png": solid(2)})
    assert "at least 2" in str(refused("classes", inspect_archive, path))


def test_an_empty_class_directory(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", TWO_CLASSES, dirs=("birds/",))
    assert "'birds' has no images" in str(refused("classes", inspect_archive, path))


def test_a_class_only_in_test_has_no_training_images(tmp_path: Path) -> None:
    files = {
        "train/cats/a.png": solid(1),
        "train/dogs/b.png": solid(2),
        "test/owls/c.png": solid(3),
    }
    error = refused("classes", inspect_archive, write_tar(tmp_path / "d.tar", files))
    assert "train/owls/" in str(error)


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    path.write_bytes(b"hello, not an archive at all" * 30)
    assert "not a .zip, .tar or .tar.gz" in str(refused("format", inspect_archive, path))


# --- npz -----------------------------------------------------------------------------------


def test_npz_uint8_nchw_with_class_names(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 4, 5), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    path = save_npz(tmp_path / "d.npz", x=x, y=y, class_names=np.array(["a", "b", "c"]))
    summary = inspect_npz(path)
    values = x.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64)
    assert (summary.format, summary.samples, summary.channels) == ("npz", 6, 3)
    assert summary.classes == ("a", "b", "c")
    assert summary.class_counts == {"a": 2, "b": 2, "c": 2}
    assert (summary.max_height, summary.max_width) == (4, 5)
    np.testing.assert_allclose(summary.mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(summary.std, values.std(axis=1), rtol=1e-12)


def test_npz_float32_nhw_compressed_without_class_names(tmp_path: Path) -> None:
    # Pixels 0 and 100 in equal numbers: mean 50, std 50.
    x = np.zeros((4, 3, 3), dtype=np.float32)
    x[::2] = 100.0
    path = save_npz(tmp_path / "d.npz", True, x=x, y=np.array([0, 1, 1, 0], dtype=np.uint8))
    summary = inspect_npz(path)
    assert summary.classes == ("0", "1")
    assert (summary.channels, summary.mean, summary.std) == (1, (50.0,), (50.0,))


def test_npz_labels_out_of_range(tmp_path: Path) -> None:
    x = np.zeros((3, 2, 2), dtype=np.uint8)
    path = save_npz(
        tmp_path / "d.npz", x=x, y=np.array([0, 1, 2]), class_names=np.array(["a", "b"])
    )
    error = refused("labels", inspect_npz, path)
    assert "0..1" in str(error) and "label 2 at index 2" in str(error)


def test_npz_negative_label(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "d.npz", x=np.zeros((2, 2, 2), np.uint8), y=np.array([1, -1]))
    assert "label -1 at index 1" in str(refused("labels", inspect_npz, path))


def test_npz_label_count_must_match_images(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "d.npz", x=np.zeros((3, 2, 2), np.uint8), y=np.array([0, 1]))
    assert "2 labels for 3 images" in str(refused("labels", inspect_npz, path))


def test_npz_one_class_only(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "d.npz", x=np.zeros((2, 2, 2), np.uint8), y=np.array([0, 0]))
    assert "at least 2" in str(refused("classes", inspect_npz, path))


def test_npz_empty_class(tmp_path: Path) -> None:
    names = np.array(["a", "b", "c"])
    path = save_npz(
        tmp_path / "d.npz", x=np.zeros((2, 2, 2), np.uint8), y=np.array([0, 2]), class_names=names
    )
    assert "no samples: ['b']" in str(refused("classes", inspect_npz, path))


def test_npz_pickled_object_array_is_refused_unread(tmp_path: Path) -> None:
    objects = np.array([{"evil": 1}, None], dtype=object)
    path = save_npz(tmp_path / "d.npz", x=objects, y=np.array([0, 1]))
    error = refused("format", inspect_npz, path)
    assert "pickled" in str(error) and "x" in str(error)


def test_npz_unknown_dtype_and_missing_array(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "a.npz", x=np.zeros((2, 2, 2), np.int16), y=np.array([0, 1]))
    assert "uint8 or float32" in str(refused("format", inspect_npz, path))
    path = save_npz(tmp_path / "b.npz", x=np.zeros((2, 2, 2), np.uint8))
    assert "missing array 'y'" in str(refused("format", inspect_npz, path))


def test_npz_float_pixels_outside_0_255(tmp_path: Path) -> None:
    x = np.zeros((2, 2, 2), np.float32)
    x[1, 0, 0] = np.nan
    path = save_npz(tmp_path / "d.npz", x=x, y=np.array([0, 1]))
    assert "sample 1" in str(refused("format", inspect_npz, path))


def test_npz_image_side_and_pixels_checked_from_the_header(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "d.npz", x=np.zeros((2, 1, 5000), np.uint8), y=np.array([0, 1]))
    assert "<= 4096" in str(refused("too_large", inspect_npz, path))
    limits = IngestLimits(max_decoded_pixels=7)
    path = save_npz(tmp_path / "e.npz", x=np.zeros((2, 2, 2), np.uint8), y=np.array([0, 1]))
    assert "max_decoded_pixels" in str(refused("too_large", inspect_npz, path, limits))


# --- zip details ---------------------------------------------------------------------------


def test_one_zip_entry_over_the_ratio_in_a_modest_archive_is_a_bomb(tmp_path: Path) -> None:
    # The archive as a whole is fine (~300 KiB from ~200 KiB); one entry is 100 KiB of zeros.
    files = {"cats/zeros.png": bytes(100 * 1024), "dogs/noise.png": noise(7, 256, 256).tobytes()}
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cats/zeros.png", files["cats/zeros.png"], zipfile.ZIP_DEFLATED)
        archive.writestr("dogs/noise.png", files["dogs/noise.png"], zipfile.ZIP_STORED)
    error = refused("bomb", inspect_archive, path, SMALL)
    assert "cats/zeros.png" in str(error)


def test_zip_directory_with_too_many_entries_is_refused_before_it_is_parsed(
    tmp_path: Path,
) -> None:
    files = {f"cats/{i}.png": solid(1) for i in range(8)}
    path = write_zip(tmp_path / "d.zip", files)
    error = refused("too_large", inspect_archive, path, IngestLimits(max_files=1, max_classes=1))
    # 1 file + 3 x 1 class folders + train/ and test/ = 6 entries at most.
    assert "8 entries in the zip directory, more than 6" in str(error)


def test_zip_entries_in_other_compression_methods_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cats/a.png", solid(1), zipfile.ZIP_BZIP2)
    assert "compression method 12" in str(refused("bad_entry", inspect_archive, path))


def test_a_corrupt_gzip_stream_is_a_format_error(tmp_path: Path) -> None:
    whole = write_tar(tmp_path / "d.tar.gz", TWO_CLASSES).read_bytes()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(whole[: len(whole) // 2])
    assert "corrupt tar.gz archive" in str(refused("format", inspect_archive, path))


def test_npz_with_an_unexpected_array(tmp_path: Path) -> None:
    x = np.zeros((2, 2, 2), np.uint8)
    path = save_npz(tmp_path / "d.npz", x=x, y=np.array([0, 1]), x_test=x)
    assert "x_test.npy: unexpected" in str(refused("format", inspect_npz, path))


# --- extraction ----------------------------------------------------------------------------


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_extract_a_flat_archive_into_train(tmp_path: Path) -> None:
    files = {"cats/x y.png": solid(1), "dogs/b.jpg": encode_image(noise(1, 4, 4), "JPEG")}
    dest = tmp_path / "store" / "cats-1"
    dest.parent.mkdir()
    summary = extract_archive(write_zip(tmp_path / "d.zip", files), dest)
    assert summary == inspect_archive(tmp_path / "d.zip")
    assert tree(dest) == ["train/cats/000000.png", "train/dogs/000001.jpg"]
    assert (dest / "train/cats/000000.png").read_bytes() == files["cats/x y.png"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cats-1"]


def test_extract_keeps_the_split(tmp_path: Path) -> None:
    files = {
        "train/cats/a.png": solid(1),
        "train/dogs/b.png": solid(2),
        "test/dogs/c.png": solid(3),
    }
    dest = tmp_path / "out"
    extract_archive(write_tar(tmp_path / "d.tar.gz", files), dest)
    assert tree(dest) == ["test/dogs/000002.png", "train/cats/000000.png", "train/dogs/000001.png"]


def test_a_refused_extraction_leaves_nothing_behind(tmp_path: Path) -> None:
    # The empty class is only found at the end, after every image was written to staging.
    path = write_zip(tmp_path / "d.zip", TWO_CLASSES, dirs=("birds/",))
    store = tmp_path / "store"
    store.mkdir()
    refused("classes", extract_archive, path, store / "new")
    assert list(store.iterdir()) == []


def test_extract_never_overwrites(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(FileExistsError):
        extract_archive(write_zip(tmp_path / "d.zip", TWO_CLASSES), dest)


# --- statistics over images larger than one block ------------------------------------------


def test_npz_planes_larger_than_a_block_are_streamed_in_bands(tmp_path: Path) -> None:
    # 600 x 2000 = 1.2 M values per plane, over the 1 M-value block: bands of 300 rows.
    x = np.random.default_rng(3).integers(0, 256, (2, 3, 600, 2000), dtype=np.uint8)
    path = save_npz(tmp_path / "d.npz", x=x, y=np.array([0, 1]))
    summary = inspect_npz(path)
    values = x.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(summary.mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(summary.std, values.std(axis=1), rtol=1e-12)


def test_archive_images_larger_than_a_block_are_folded_in_bands(tmp_path: Path) -> None:
    big = noise(8, 1100, 1000)  # 1.1 M pixels per channel: two bands of rows
    files = {"cats/big.png": encode_image(big), "dogs/small.png": encode_image(noise(9, 3, 3))}
    summary = inspect_archive(write_zip(tmp_path / "d.zip", files))
    pooled = np.concatenate([big.reshape(-1, 3), noise(9, 3, 3).reshape(-1, 3)])
    np.testing.assert_allclose(summary.mean, pooled.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(summary.std, pooled.astype(np.float64).std(axis=0), rtol=1e-12)


def test_a_zip_end_record_understating_its_entries_is_still_caught(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", {f"cats/{i}.png": solid(1) for i in range(8)})
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = struct.pack("<HH", 1, 1)  # claims 1 entry; the directory has 8
    path.write_bytes(bytes(data))
    error = refused("too_large", inspect_archive, path, IngestLimits(max_files=1, max_classes=1))
    assert "more than 6" in str(error)


@pytest.mark.parametrize(
    ("block", "path_taken"),
    [(1 << 20, "whole samples"), (3 * 5 * 7 * 2 + 1, "whole samples"), (40, "bands of rows")],
)
def test_npz_statistics_are_numpys_whatever_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, path_taken: str
) -> None:
    """The moments are streamed whole samples at a time (several per block) or, for a sample
    larger than a block, a band of rows at a time: both give numpy's mean and std, and a bad
    float pixel is reported by its sample index wherever its block starts."""
    import core.ingest.npz as npz_module

    monkeypatch.setattr(npz_module, "VALUES_PER_BLOCK", block)
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 255, (23, 3, 5, 7)).astype(np.float32)
    path = save_npz(tmp_path / "d.npz", x=x, y=np.arange(23) % 2)
    summary = inspect_npz(path)
    np.testing.assert_allclose(summary.mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(summary.std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-9)
    x[17, 2, 4, 6] = 256.0
    path = save_npz(tmp_path / "bad.npz", x=x, y=np.arange(23) % 2)
    assert "sample 17 has values outside 0..255" in str(refused("format", inspect_npz, path))

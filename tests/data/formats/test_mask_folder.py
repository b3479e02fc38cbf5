"""`mask_folder`: images/ + masks/ with matching stems, read and checked as a user's medical set would be."""

import numpy as np
import pytest
import torch
from PIL import Image

import zrenie
from zrenie.config import DataConfig
from zrenie.data.formats.mask_folder import mask_folder
from zrenie.errors import DataError


def _write(root, n=10, values=(0, 1, 2), size=(20, 24), palette=False, seed=0):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        h, w = size
        image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        mask = rng.choice(values, (h, w)).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"case{i:02d}.jpg" if i % 2 else root / "images" / f"case{i:02d}.png")
        m = Image.fromarray(mask)
        if palette:
            m = m.convert("P")
            m.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * 759)
        m.save(root / "masks" / f"case{i:02d}.png")
    return root


def test_pairs_classes_and_pixels(tmp_path):
    root = _write(tmp_path / "set")
    splits = mask_folder(DataConfig(name="mask_folder", root=str(root), val_fraction=0.2, size=16))
    assert splits.classes == ["background", "class_1", "class_2"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 2)
    image, mask = splits.test[0]
    path_image, path_mask = splits.test.pairs[0]
    assert torch.equal(mask.as_subclass(torch.Tensor), torch.from_numpy(np.array(Image.open(path_mask))).long())
    assert image.shape == (3, 20, 24)
    all_pairs = splits.train.pairs + splits.val.pairs + splits.test.pairs
    assert len({p for p, _ in all_pairs}) == 10  # disjoint splits covering the pool


def test_binary_masks_saved_as_0_255_are_read_as_0_1_and_names_come_from_classes_txt(tmp_path):
    root = _write(tmp_path / "isic", values=(0, 255))
    (root / "classes.txt").write_text("skin\nlesion\n")
    splits = mask_folder(DataConfig(name="mask_folder", root=str(root), size=16))
    assert splits.classes == ["skin", "lesion"]
    assert set(torch.unique(splits.train[0][1].as_subclass(torch.Tensor)).tolist()) <= {0, 1}


def test_palette_masks_are_read_as_indices(tmp_path):
    root = _write(tmp_path / "voc_like", palette=True)
    splits = mask_folder(DataConfig(name="mask_folder", root=str(root), size=16))
    assert set(torch.unique(splits.train[0][1].as_subclass(torch.Tensor)).tolist()) <= {0, 1, 2}


def test_bad_masks_are_one_line_errors_naming_the_file(tmp_path):
    root = _write(tmp_path / "a")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "case00.png")
    splits = mask_folder(DataConfig(name="mask_folder", root=str(root), size=16, val_fraction=0.0))
    index = [i for i, (p, _) in enumerate(splits.train.pairs) if "case00" in p][0]
    with pytest.raises(DataError, match=r"mask .*case00.png is 5x5 but its image .*case00.png is 24x20"):
        splits.train[index]
    root = _write(tmp_path / "b")
    (root / "classes.txt").write_text("background\nobject\n")
    with pytest.raises(DataError, match="mask value 2 is outside the 2 classes"):
        mask_folder(DataConfig(name="mask_folder", root=str(root)))


def test_images_without_masks_are_counted_or_refused(tmp_path):
    root = _write(tmp_path / "c")
    (root / "masks" / "case03.png").unlink()
    with pytest.warns(UserWarning, match="skipped 1 image\\(s\\) without a mask"):
        splits = mask_folder(DataConfig(name="mask_folder", root=str(root), size=16))
    assert sum(len(s) for s in (splits.train, splits.val, splits.test)) == 9
    with pytest.raises(DataError, match="case03.* has no mask"):
        mask_folder(DataConfig(name="mask_folder", root=str(root), strict=True))


def test_segment_trains_and_predicts_on_a_mask_folder(tmp_path):
    root = _write(tmp_path / "set", n=12)
    run = zrenie.train("segment", out=str(tmp_path / "run"), epochs=1, progress=False, tensorboard=False,
                       report=False, **{"data.name": "mask_folder", "data.root": str(root), "data.size": 16,
                                        "data.workers": 0, "data.batch_size": 4, "model.width": 4,
                                        "model.kwargs": {"depth": 2}})
    assert {"miou", "iou/class_2"} <= set(run["test"])
    (result,) = zrenie.predict(run["run_dir"], [root / "images" / "case01.jpg"])
    assert result.mask.shape == (20, 24)


def _write_voc(root, names_train, names_val):
    from zrenie.data.formats.mask_folder import VOC_CLASSES

    rng = np.random.default_rng(1)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    palette = [0] * 768
    for k in range(len(VOC_CLASSES)):  # any palette: the indices are what counts
        palette[3 * k:3 * k + 3] = [k * 10, 255 - k * 10, k * 5]
    palette[765:768] = [224, 224, 192]  # VOC's border colour, index 255
    for name in names_train + names_val:
        Image.fromarray(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        mask = rng.choice([0, 15, 12, 255], (12, 16)).astype(np.uint8)  # background, person, dog, border
        m = Image.fromarray(mask).convert("P")  # indices = the grey levels
        m.putpalette(palette)
        m.save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(names_train) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(names_val) + "\n")


def test_voc_seg_reads_palette_indices_keeps_255_as_ignore_and_tests_on_val(tmp_path):
    from zrenie.data.formats.mask_folder import voc_seg

    root = tmp_path / "VOC2012"
    _write_voc(root, [f"2007_{i:06d}" for i in range(8)], ["2008_000001", "2008_000002"])
    splits = voc_seg(DataConfig(name="voc_seg", root=str(root), val_fraction=0.25, size=16))
    assert len(splits.classes) == 21 and splits.classes[15] == "person"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 2)
    assert all("2008_" in image for image, _ in splits.test.pairs)
    values = set(torch.unique(splits.test[0][1].as_subclass(torch.Tensor)).tolist())
    assert values <= {0, 12, 15, 255} and 255 in values
    (root / "SegmentationClass" / "2008_000002.png").unlink()
    with pytest.raises(DataError, match="1 listed file\\(s\\) missing, e.g. .*2008_000002.png"):
        voc_seg(DataConfig(name="voc_seg", root=str(root)))


def test_a_mask_without_an_image_and_two_files_of_one_name_are_one_line(tmp_path):
    root = _write(tmp_path / "d", n=4)
    (root / "images" / "case01.jpg").unlink()
    with pytest.raises(DataError, match=r"mask .*case01.png has no image of the same name"):
        mask_folder(DataConfig(name="mask_folder", root=str(root)))
    root = _write(tmp_path / "e", n=4)
    Image.new("RGB", (24, 20)).save(root / "images" / "case00.jpg")  # beside case00.png
    with pytest.raises(DataError, match=r"case00.jpg and .*case00.png share the name 'case00'"):
        mask_folder(DataConfig(name="mask_folder", root=str(root)))


def test_0_255_masks_with_more_classes_listed_keep_255_as_ignore(tmp_path):
    root = _write(tmp_path / "f", n=6, values=(0, 255))
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    splits = mask_folder(DataConfig(name="mask_folder", root=str(root), size=16, val_fraction=0.0))
    assert splits.classes == ["background", "cat", "dog"]
    image_path, mask_path = splits.train.pairs[0]
    values = set(torch.unique(splits.train[0][1].as_subclass(torch.Tensor)).tolist())
    assert values == set(np.unique(np.array(Image.open(mask_path))).tolist()) == {0, 255}


def test_voc_seg_mask_value_outside_the_classes_is_one_line_naming_the_file(tmp_path):
    from zrenie.data.formats.mask_folder import voc_seg

    root = tmp_path / "VOC2012"
    _write_voc(root, [f"2007_{i:06d}" for i in range(4)], ["2008_000001"])
    Image.fromarray(np.full((12, 16), 40, np.uint8)).save(root / "SegmentationClass" / "2008_000001.png")
    splits = voc_seg(DataConfig(name="voc_seg", root=str(root), size=16))
    with pytest.raises(DataError, match=r"mask .*2008_000001.png: value 40 is outside the 21 classes"):
        splits.test[0]

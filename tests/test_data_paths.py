"""Issue 12: image paths of training data stay inside their image root.

`data.paths.inside_root` refuses `../`, absolute paths and symlinks pointing
out (a symlinked root is fine); the CrisisMMD and MEDIC readers raise
`CrisisMMDFormatError` naming the file and line; `allow_outside_root` (the
TrainConfig field, `train --allow-outside-root`) accepts them.
"""

import os

import pytest

from conftest import pair_row
from crisis_keras.data.crisismmd import CrisisMMDFormatError, load_crisismmd, read_split_file
from crisis_keras.data.medic import read_medic_file
from crisis_keras.data.paths import OutsideRootError, inside_root


@pytest.fixture
def tree(tmp_path):
    """root/ (images, a symlink out, a symlink in) and outside/secret.jpg."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "data_image" / "ev").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    (root / "data_image" / "ev" / "a.jpg").write_bytes(b"x")
    os.symlink(outside, root / "data_image" / "out")
    os.symlink(root / "data_image" / "ev" / "a.jpg", root / "data_image" / "alias.jpg")
    return root, outside


@pytest.mark.parametrize("name", ["data_image/ev/a.jpg", "data_image/ev/missing.jpg",
                                  "data_image/alias.jpg", "data_image/ev/../ev/a.jpg"])
def test_paths_inside_the_root_are_accepted(tree, name):
    root, _ = tree
    assert inside_root(root, name) == root / name


@pytest.mark.parametrize("name, why", [
    ("../outside/secret.jpg", "climbs out with '..'"),
    ("../../../../../../../etc/passwd", "climbs out with '..'"),
    ("data_image/ev/../../../outside/secret.jpg", "climbs out with '..'"),
    ("/etc/passwd", "is absolute"),
    ("data_image/out/secret.jpg", "passes through a symlink"),
])
def test_paths_resolving_outside_are_refused(tree, name, why):
    root, outside = tree
    with pytest.raises(OutsideRootError, match="outside the image root") as err:
        inside_root(root, name)
    assert why in str(err.value) and "--allow-outside-root" in str(err.value)
    assert inside_root(root, name, allow_outside=True) == root / name


def test_a_symlinked_root_and_absolute_paths_inside_it(tree, tmp_path):
    root, _ = tree
    link = tmp_path / "link_to_root"
    os.symlink(root, link)
    assert inside_root(link, "data_image/ev/a.jpg") == link / "data_image/ev/a.jpg"
    assert inside_root(root, str(root / "data_image/ev/a.jpg")) == root / "data_image/ev/a.jpg"


def _tsv(write_crisismmd_tsv, folder, images):
    rows = [pair_row(f"{100 + i}_0", "flood in town", "informative") for i in range(len(images))]
    rows = [r[:4] + (image,) + r[5:] for r, image in zip(rows, images)]
    return write_crisismmd_tsv(folder / "task_informative_text_img_dev.tsv", rows)


def test_crisismmd_reader_names_the_line_of_a_path_outside(tree, write_crisismmd_tsv):
    root, outside = tree
    path = _tsv(write_crisismmd_tsv, root, ["data_image/ev/a.jpg", "data_image/ev/a.jpg",
                                            "../outside/secret.jpg"])
    with pytest.raises(CrisisMMDFormatError, match=r"line 4: column image: image path "
                       r"'\.\./outside/secret\.jpg' climbs out"):
        read_split_file(path, "informative", image_root=root)
    frame = read_split_file(path, "informative", image_root=root, allow_outside_root=True)
    assert frame["image_path"].iloc[2] == str(root / "../outside/secret.jpg")
    # through load_crisismmd and the default image root (the folder holding data_image/)
    with pytest.raises(CrisisMMDFormatError, match="line 4"):
        load_crisismmd(root, "informative", splits=("dev",))
    data = load_crisismmd(root, "informative", splits=("dev",), allow_outside_root=True)
    assert len(data["dev"]) == 3


def test_medic_reader_refuses_a_symlink_out(tree):
    root, _ = tree
    path = root / "medic_train.tsv"
    path.write_text("image_id\timage\tdamage_severity\n"
                    "1\tdata_image/ev/a.jpg\tsevere\n"
                    "2\tdata_image/out/secret.jpg\tmild\n")
    with pytest.raises(CrisisMMDFormatError, match="line 3: column image: .*passes through a "
                                                   "symlink"):
        read_medic_file(path, "severity", image_root=root)
    frame = read_medic_file(path, "severity", image_root=root, allow_outside_root=True)
    assert len(frame) == 2


def test_train_flag_and_config_reach_the_reader(tree, write_crisismmd_tsv):
    from crisis_keras.train import build_parser, config_from_args
    from crisis_keras.training.config import TrainConfig
    from crisis_keras.training.trainer import load_data

    root, _ = tree
    _tsv(write_crisismmd_tsv, root, ["data_image/ev/a.jpg", "/etc/hostname"])
    base = ["--task", "informative", "--data-dir", str(root)]
    assert config_from_args(build_parser().parse_args(base)).allow_outside_root is False
    config = config_from_args(build_parser().parse_args(base + ["--allow-outside-root"]))
    assert config.allow_outside_root is True
    assert TrainConfig().allow_outside_root is False
    with pytest.raises(CrisisMMDFormatError, match="line 3: column image: image path "
                                                   "'/etc/hostname' is absolute"):
        load_data(TrainConfig(task="informative", data_dir=str(root)))
    assert len(load_data(config)["dev"]) == 2

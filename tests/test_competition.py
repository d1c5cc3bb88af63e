import json

import pandas as pd
import pytest

from src.data.competition import ClassMap, load_class_maps, load_competition, save_class_maps
from src.core.config import DataOptions
from src.core.errors import KitError
from src.data.splits import load_or_make_split, make_split, split_report
from tests.conftest import make_folder_competition, write_image


def test_folder_layout_labels_test_order_and_schema(tmp_path):
    root = make_folder_competition(tmp_path / "c", test_order=["t3.jpg", "t0.jpg", "t4.jpg", "t1.jpg", "t2.jpg"])
    comp = load_competition(DataOptions(data=str(root)))
    assert comp.layout == "folders" and comp.target == "Category"
    assert comp.class_maps["Category"].values == (0, 1, 2)  # folder names "0".."2" become ints
    assert len(comp.train) == 18 and set(comp.train["Category"]) == {0, 1, 2}
    assert list(comp.test["id"]) == ["t3.jpg", "t0.jpg", "t4.jpg", "t1.jpg", "t2.jpg"]  # the sample's order
    assert all(p.endswith("/test_upload/" + i) for p, i in zip(comp.test["path"], comp.test["id"]))
    assert comp.schema.id_column == "Id" and comp.schema.target_column == "Category"
    assert {"width", "height", "orientation"} <= set(comp.train.columns)


def test_string_class_folders_keep_their_names(tmp_path):
    root = make_folder_competition(tmp_path / "c", classes=("audi a4", "bmw", "007"))
    comp = load_competition(DataOptions(data=str(root)))
    assert comp.class_maps["Category"].values == ("007", "audi a4", "bmw")


def test_csv_layout_multiple_label_columns_ids_without_extension(csv_comp):
    comp = load_competition(DataOptions(data=str(csv_comp), label_column="make_id,model_id"))
    assert comp.layout == "csv" and comp.label_columns == ["make_id", "model_id"]
    assert comp.target == "model_id"  # the column the sample submission asks for
    assert comp.class_maps["make_id"].values == (0, 1)
    assert comp.class_maps["model_id"].values == ("audi a4", "audi a6", "bmw x5")
    assert comp.train["path"].str.endswith(".jpg").all()
    assert list(comp.test["id"]) == ["x2", "x0", "x1"]


def test_csv_layout_with_explicit_flags(csv_comp):
    opts = DataOptions(data=str(csv_comp), labels_csv="train.csv", id_column="filename",
                       label_column="model_id", images_dir=str(csv_comp / "images"))
    comp = load_competition(opts)
    assert comp.label_columns == ["model_id"] and len(comp.train) == 18


def test_class_map_round_trip_keeps_types(tmp_path, csv_comp):
    comp = load_competition(DataOptions(data=str(csv_comp), label_column="make_id,model_id"))
    path = save_class_maps(tmp_path / "run" / "class_map.json", comp.target, comp.class_maps)
    target, maps = load_class_maps(path)
    assert target == "model_id" and maps == comp.class_maps
    assert maps["make_id"].decode([1, 0]) == [1, 0] and isinstance(maps["make_id"].decode([1])[0], int)
    assert maps["model_id"].decode([2]) == ["bmw x5"]
    assert list(maps["model_id"].encode(["audi a6", "bmw x5"])) == [1, 2]
    with pytest.raises(KitError, match="'tesla' is not a known class"):
        maps["model_id"].encode(["tesla"])


def test_split_is_stratified_seeded_and_reused(tmp_path):
    root = make_folder_competition(tmp_path / "c", per_class=10)
    opts = DataOptions(data=str(root), val_fraction=0.2, seed=3)
    comp = load_competition(opts)
    split = load_or_make_split(comp, opts)
    report = split_report(split, "Category")
    assert list(report.loc[[0, 1, 2], "val"]) == [2, 2, 2] and report.loc["total", "total"] == 30
    again = make_split(comp.train, "Category", opts)
    assert (again["fold"].to_numpy() == split["fold"].to_numpy()).all()  # same seed, same split
    saved = list((tmp_path / "runs" / "splits").glob("*.csv"))
    assert len(saved) == 1
    assert not pd.read_csv(saved[0])["path"].str.startswith("/").any()  # relative: data can move
    reused = load_or_make_split(load_competition(opts), opts)
    assert (reused["split"] == split["split"]).all()


def test_saved_split_for_other_images_is_refused(tmp_path):
    root = make_folder_competition(tmp_path / "c")
    opts = DataOptions(data=str(root), split_file=str(tmp_path / "s.csv"))
    load_or_make_split(load_competition(opts), opts)
    write_image(root / "train" / "0" / "new.jpg")
    with pytest.raises(KitError, match="was made for other training images"):
        load_or_make_split(load_competition(opts), opts)


def test_k_folds_and_groups_stay_on_one_side(csv_comp):
    opts = DataOptions(data=str(csv_comp), label_column="model_id", group_column="car", folds=3, fold=1)
    comp = load_competition(opts)
    split = load_or_make_split(comp, opts)
    assert sorted(split["fold"].unique()) == [0, 1, 2]
    assert (split.groupby("group")["fold"].nunique() == 1).all()
    assert set(split.loc[split["split"] == "val", "fold"]) == {1}


def test_min_class_count_drops_and_reports(tmp_path, capsys):
    root = make_folder_competition(tmp_path / "c", classes=("a", "b", "rare"))
    for extra in range(4):
        write_image(root / "train" / "a" / f"more{extra}.jpg")
    (root / "train" / "rare" / "rare_5.jpg").unlink()
    comp = load_competition(DataOptions(data=str(root), min_class_count=6))
    assert comp.class_maps["Category"].values == ("a", "b") and "rare" not in set(comp.train["Category"])
    assert "dropped 1 class(es), 5 image(s): {'rare': 5}" in capsys.readouterr().out


def test_single_image_class_needs_min_class_count(tmp_path):
    root = make_folder_competition(tmp_path / "c")
    for path in list((root / "train" / "2").iterdir())[1:]:
        path.unlink()
    opts = DataOptions(data=str(root))
    with pytest.raises(KitError, match=r"class\(es\) \[2\] have fewer than 2 images.*--min-class-count 2"):
        load_or_make_split(load_competition(opts), opts)


def test_class_map_json_is_plain(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"target": "y", "maps": [ClassMap("y", (3, 5)).to_json()]}))
    assert load_class_maps(path)[1]["y"].values == (3, 5)


def test_sample_decides_the_targets_isic_metadata_is_not_a_label(isic_comp, capsys):
    """Issue 20 item 4: ISIC 2020's train.csv carries patient_id, sex (some empty), age_approx beside target."""
    comp = load_competition(DataOptions(data=str(isic_comp)))
    out = capsys.readouterr().out
    assert comp.label_columns == ["target"] and comp.target == "target" and comp.class_maps["target"].values == (0, 1)
    assert out.count("metadata: ") == 1 and "metadata: patient_id, sex, age_approx of train.csv" in out
    assert len(comp.train) == 50 and int(comp.train["target"].sum()) == 2  # no row lost to an empty sex cell

    opts = DataOptions(data=str(isic_comp), group_column="patient_id")
    comp = load_competition(opts)
    assert "metadata: sex, age_approx of train.csv" in capsys.readouterr().out
    split = load_or_make_split(comp, opts)
    assert (split.groupby("group")["split"].nunique() == 1).all()  # a patient on one side only
    assert set(split["group"]) == {f"IP_{p:03d}" for p in range(10)} and (split["split"] == "val").any()

    explicit = load_competition(DataOptions(data=str(isic_comp), label_column="age_approx"))
    assert explicit.label_columns == ["age_approx"] and explicit.target == "age_approx"  # --label-column wins
    with pytest.raises(KitError, match=r"train.csv: empty label in column 'sex' at row 5"):
        load_competition(DataOptions(data=str(isic_comp), label_column="target,sex"))

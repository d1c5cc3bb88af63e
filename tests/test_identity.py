"""Identity competitions (issue 32): the new answer found, every identity kept, unseen ones held out,
the embedding head, nearest neighbours with a new-answer threshold."""
from __future__ import annotations

import pandas as pd
import pytest

from src.core.settings import TrainConfig
from src.data.identity_demo import NEW, write_identity_competition


@pytest.fixture(scope="module")
def identity_data(tmp_path_factory):
    """A generated Happywhale-like competition: 30 identities at 32 px, some with one photo, unseen ones in test,
    a species column (3 species) beside Id in train.csv."""
    return write_identity_competition(tmp_path_factory.mktemp("identity") / "whales", identities=30, size=32, seed=1,
                                      species=3)


def test_identity_found_in_the_sample_and_every_identity_kept(identity_data, capsys):
    from src.core.task_kind import settle_task
    from src.kinds.identity.reading import unseen_identities
    from src.data.splits import prepare_split

    data = prepare_split(TrainConfig(data=str(identity_data)))
    assert data.class_map.new_label == NEW
    labels = pd.read_csv(identity_data / "train.csv")
    assert set(data.class_map.values) == set(labels["Id"])  # no --min-class-count needed, none dropped
    _, kind = settle_task(TrainConfig(data=str(identity_data)), data.class_map, "",
                          data.comp.train[data.target].value_counts())
    singles = set(labels["Id"].value_counts().loc[lambda c: c == 1].index)
    assert kind.name == "identity"
    said = capsys.readouterr().out
    assert f"task: identity, 30 identities in column Id ({len(singles)} with one image), new answer '{NEW}'" in said
    val = data.split[data.split["split"] == "val"]
    assert not set(val["Id"]) & singles  # a single-image identity trains, never held out
    unseen = unseen_identities(data.split, "Id")
    assert unseen and set(val["Id"]) - unseen  # both unseen and known identities are scored
    known = set(val["Id"]) - unseen
    assert known <= set(data.train["Id"])


def test_new_label_flag_and_its_training_rows(tmp_path, capsys):
    """--new-label names the answer when the sample does not; Humpback's new_whale training images leave."""
    from src.data.competition import load_competition

    root = write_identity_competition(tmp_path / "humpback", identities=12, size=16, seed=2)
    labels = pd.read_csv(root / "train.csv")
    labels.loc[:2, "Id"] = "new_whale"
    labels.to_csv(root / "train.csv", index=False)
    (root / "sample_submission.csv").unlink()
    assert not load_competition(TrainConfig(data=str(root)), with_test=False).class_maps["Id"].new_label
    comp = load_competition(TrainConfig(data=str(root), new_label="new_whale"), with_test=False)
    assert comp.class_maps["Id"].new_label == "new_whale" and "new_whale" not in comp.class_maps["Id"].values
    assert "3 training image(s) labelled 'new_whale' left out" in capsys.readouterr().out


def humpback_like(root, placeholders):
    """Humpback Whale Identification's shape: new_whale a training label like the others; every sample row
    'new_whale <placeholders> <training ids>', five in all; return root."""
    root = write_identity_competition(root, identities=12, size=16, seed=2)
    labels = pd.read_csv(root / "train.csv")
    labels.loc[:4, "Id"] = "new_whale"
    labels.to_csv(root / "train.csv", index=False)
    known = sorted(set(labels["Id"]) - {"new_whale"})[:4 - len(placeholders)]
    sample = pd.read_csv(root / "sample_submission.csv")
    sample.assign(Id=" ".join(["new_whale", *placeholders, *known])).to_csv(root / "sample_submission.csv",
                                                                             index=False)
    return root


def test_issue_38_5_a_sample_of_placeholder_ids_is_top_k_labels_and_the_task_line_says_why(tmp_path, capsys):
    """Humpback: w_1287fbc and w_98baff9 are ids the training set lacks, placeholders: top-5 labels (new_whale one
    of them), not an identity task whose new answer is w_1287fbc."""
    from src.core.task_kind import settle_task
    from src.data.competition import load_competition

    root = humpback_like(tmp_path / "humpback", ["w_1287fbc", "w_98baff9"])
    cmap = load_competition(TrainConfig(data=str(root)), with_test=False).class_maps["Id"]
    assert cmap.new_label == "" and "new_whale" in cmap.values
    _, kind = settle_task(TrainConfig(data=str(root)), cmap)
    assert kind.name == "label"
    assert "(read from the labels; top 5: the sample's 2 ids absent from training are placeholders, not a new " \
        "answer; --new-label NAME names one)" in capsys.readouterr().out
    one = humpback_like(tmp_path / "one", ["w_1287fbc"])  # one, not named new
    cmap = load_competition(TrainConfig(data=str(one)), with_test=False).class_maps["Id"]
    assert cmap.new_label == "" and "id 'w_1287fbc', absent from training, is a placeholder" in cmap.new_from


def test_issue_38_5_a_happywhale_sample_names_its_new_answer(tmp_path, capsys):
    """Happywhale: training labels are individual ids; every sample row 'new_individual id1 id2 ...' with
    new_individual absent from training: identities, new answer new_individual."""
    from src.core.task_kind import settle_task
    from src.data.competition import load_competition
    from src.kinds.identity.reading import says_new

    root = write_identity_competition(tmp_path / "happy", identities=12, size=16, seed=3)
    cmap = load_competition(TrainConfig(data=str(root)), with_test=False).class_maps["Id"]
    assert (cmap.new_label, cmap.new_from) == (NEW, "from the sample sample_submission.csv")
    _, kind = settle_task(TrainConfig(data=str(root)), cmap)
    assert kind.name == "identity" and f"new answer '{NEW}' (from the sample" in capsys.readouterr().out
    assert all(map(says_new, ["new_whale", "new_individual", "unknown", "new", "other", "Unknown_fish"]))
    assert not any(map(says_new, ["w_1287fbc", "newt", "brother", "37c7aba965a5"]))


def test_issue_41_7_a_new_label_neither_the_sample_nor_training_holds_is_refused(tmp_path, capsys):
    """--new-label new_whale where the sample's new answer is new_individual: refused, naming the flag and the
    sample's value; a value training holds (Humpback's new_whale) or the sample's own is taken."""
    from src.core.errors import KitError
    from src.data.competition import load_competition

    root = write_identity_competition(tmp_path / "happy", identities=12, size=16, seed=3)
    with pytest.raises(KitError, match=f"--new-label new_whale: neither sample_submission.csv nor the training "
                                       f"labels hold 'new_whale'; the sample's value absent from training is '{NEW}'"
                                       f".*expected --new-label {NEW}"):
        load_competition(TrainConfig(data=str(root), new_label="new_whale"), with_test=False)
    comp = load_competition(TrainConfig(data=str(root), new_label=NEW), with_test=False)
    assert comp.class_maps["Id"].new_label == NEW
    humpback = humpback_like(tmp_path / "humpback", ["w_1287fbc", "w_98baff9"])
    assert load_competition(TrainConfig(data=str(humpback), new_label="new_whale"),
                            with_test=False).class_maps["Id"].new_label == "new_whale"
    assert "warning" not in capsys.readouterr().out


def test_identity_folds_hold_unseen_identities_out_whole(identity_data):
    from src.kinds.identity.reading import make_identity_split

    labels = pd.read_csv(identity_data / "train.csv")
    fold = make_identity_split(labels, "Id", 3, 0.2, seed=0)
    frame = labels.assign(fold=fold)
    counts = labels["Id"].value_counts()
    assert (frame.loc[frame["Id"].map(counts) == 1, "fold"] == -1).all()
    for k in range(3):
        held, kept = frame[frame["fold"] == k], frame[frame["fold"] != k]
        assert len(held) and set(held["Id"]) - set(kept["Id"])  # each fold holds some identities whole


def test_margin_loss_widens_the_true_identity_angle():
    """With margin 0 the ArcFace loss is the cross-entropy of the scaled cosines; a margin makes it larger."""
    import keras
    import numpy as np

    from src.models.embedding import ArcFaceLoss

    y = np.eye(3, dtype="float32")[[0, 2]]
    logits = 10.0 * np.array([[0.8, 0.1, -0.2], [0.3, 0.2, 0.5]], "float32")
    plain = keras.losses.CategoricalCrossentropy(from_logits=True)(y, logits)
    assert float(ArcFaceLoss(0.0, 10.0)(y, logits)) == pytest.approx(float(plain), rel=1e-5)
    assert float(ArcFaceLoss(0.3, 10.0)(y, logits)) > float(plain) + 0.5


def test_identity_network_gem_embedding_subcenters_and_its_cut(identity_data):
    """--head arcface --subcenters 2: GeM on the feature map, a 24-wide embedding; the cut drops the margin head."""
    import numpy as np

    from src.core.config import parse_config
    from src.core.task_kind import kind_named
    from src.models.backbones import get_spec
    from src.models.classifier import HeadSpec, build_classifier
    from src.kinds.identity.neighbours import head_scores
    from src.models.embedding import ArcMarginHead, GeM, embedding_model, margin_centres

    cfg = parse_config(TrainConfig, ["--head", "arcface", "--subcenters", "2", "--embedding-dim", "24"])
    model = build_classifier(get_spec("tiny_resnet"), (32, 32), 7, "none", HeadSpec.from_config(cfg, kind_named("identity")))
    assert isinstance(model.get_layer("gem"), GeM) and isinstance(model.get_layer("head"), ArcMarginHead)
    assert tuple(model.get_layer("head").centers.shape) == (24, 14)
    logits = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert logits.shape == (2, 7) and np.abs(logits).max() <= 30.0 + 1e-3  # scale * cosine
    cut = embedding_model(model)
    assert cut.output.shape[-1] == 24 and not any(isinstance(layer, ArcMarginHead) for layer in cut.layers)
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    centres = margin_centres(model)  # what --identity-blend reads: (width, identities, sub-centers), the closest kept
    assert centres.shape == (24, 7, 2)
    assert 30.0 * head_scores(cut.predict(images, verbose=0), centres, np.ones(7, bool)) == pytest.approx(
        model.predict(images, verbose=0), abs=1e-3)
    with pytest.raises(Exception, match="--head arcface"):
        HeadSpec.from_config(cfg, kind_named("label"))


def test_the_threshold_moves_the_new_answer_and_is_chosen_by_map():
    """A high threshold puts the new answer first, a low one last; the chosen one is the grid's best MAP@5,
    the same MAP@5 that ranking with it scores."""
    import numpy as np

    from src.kinds.identity.neighbours import GRID, choose_threshold, map_at_k, map_by_threshold, rank_with_new

    scores = np.array([[0.9, 0.2, 0.1], [0.3, 0.35, 0.2]], np.float32)
    assert (rank_with_new(scores, 0.95, 3)[:, 0] == 3).all()          # above every identity: first
    assert rank_with_new(scores, 0.5, 3).tolist() == [[0, 3, 1], [3, 1, 0]]
    assert not (rank_with_new(scores, -1.0, 3) == 3).any()          # below every identity: out of the top 3
    rng = np.random.default_rng(0)
    scores = np.round(rng.uniform(-0.2, 1, (60, 8)), 1).astype(np.float32)  # ties with the grid too
    truth = np.where(rng.uniform(size=60) < 0.3, 8, scores.argmax(axis=1))  # a third are new
    chosen = choose_threshold(scores, truth, 5)
    by_hand = [map_at_k(rank_with_new(scores, t, 5), truth) for t in GRID.astype(np.float32)]
    assert map_by_threshold(scores, truth, 5) == pytest.approx(by_hand)  # every threshold, ties included
    assert chosen.score == pytest.approx(max(by_hand)) == pytest.approx(map_at_k(rank_with_new(
        scores, chosen.threshold, 5), truth))
    assert chosen.without == pytest.approx(map_at_k(rank_with_new(scores, -2.0, 5), truth))
    assert chosen.without < chosen.score


def test_joined_embeddings_average_the_models_cosines():
    """Runs and folds join by concatenating normalised embeddings: the cosine is the mean of each model's."""
    import numpy as np

    from src.kinds.identity.neighbours import identity_scores, joined, normalise

    rng = np.random.default_rng(1)
    a_query, a_gallery, b_query, b_gallery = (rng.normal(size=(n, d)) for n, d in ((3, 4), (5, 4), (3, 6), (5, 6)))
    mean = (normalise(a_query) @ normalise(a_gallery).T + normalise(b_query) @ normalise(b_gallery).T) / 2
    assert joined([a_query, b_query]) @ joined([a_gallery, b_gallery]).T == pytest.approx(mean, abs=1e-5)
    classes = np.array([0, 1, 1, 2, 2])
    best = identity_scores(joined([a_query, b_query]), joined([a_gallery, b_gallery]), classes, 4)
    assert best[:, 1] == pytest.approx(mean[:, 1:3].max(axis=1), abs=1e-5) and (best[:, 3] == -2.0).all()


@pytest.fixture(scope="module")
def identity_run(identity_data, tmp_path_factory):
    """One tiny identity run (sub-center ArcFace, a species head beside it), shared: its folder and what training
    printed."""
    import contextlib
    import io
    import os

    from src.core.config import parse_config
    from src.training.two_stage import train

    out = tmp_path_factory.mktemp("identity_run")
    said, here = io.StringIO(), os.getcwd()
    os.chdir(out)
    try:
        with contextlib.redirect_stdout(said):
            train(parse_config(TrainConfig, [
                "--data", str(identity_data), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
                "--stages", "1", "--stage1-size", "32", "32", "--stage1-epochs", "3", "--stage1-lr", "1e-2",
                "--batch-size", "16", "--embedding-dim", "32", "--subcenters", "2",
                "--targets", "Id,species", "--loss-weights", "1,0.5", "--out", str(out / "run")]))
    finally:
        os.chdir(here)
    return out / "run", said.getvalue()


def test_identity_run_trains_the_margin_head_and_keeps_the_gallery(identity_run, identity_data):
    """--targets Id,species --loss-weights 1,0.5: the identity's margin head and a species softmax head train on one
    embedding; the species head answers its column on the holdout, said."""
    import json

    import numpy as np

    from src.kinds.identity.neighbours import embeddings_file, identity_file

    run, said = identity_run
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "identity" and (config["targets"], config["loss_weights"]) == ("Id,species", "1,0.5")
    history = pd.read_csv(run / "history-stage1.csv")
    assert history["Id_loss"].iloc[-1] < history["Id_loss"].iloc[0]  # the ArcFace head learns
    assert history[["species_loss", "val_species_accuracy"]].notna().all().all()  # the species head trains beside
    assert "auxiliary heads: species (3 classes, loss weight 0.5): softmax heads on the embedding beside Id's " \
        "margin head (loss weight 1)" in said
    saved = np.load(embeddings_file(run))
    assert set(saved["ids"]) == set(pd.read_csv(identity_data / "train.csv")["Image"])  # single-photo ones too
    assert saved["embeddings"].shape[1] == 32  # the embedding, not the 30 identities' margin logits
    chosen = json.loads(identity_file(run).read_text())
    assert f"new answer '{NEW}' ranked above identities whose best similarity is at most {chosen['threshold']:.2f}" \
        in said and chosen["unseen_images"] > 0
    holdout = pd.read_csv(run / "holdout_predictions.csv")
    assert (holdout["label"] == NEW).sum() == chosen["unseen_images"]
    species = pd.read_csv(identity_data / "train.csv").set_index("Image")["species"]
    assert (holdout["species"] == holdout["id"].map(species)).all()
    assert holdout["species_predicted"].isin(species.unique()).all()
    accuracy = (holdout["species"] == holdout["species_predicted"]).mean()
    assert chosen["auxiliary_accuracy"] == {"species": pytest.approx(accuracy)}
    assert f"auxiliary head species: holdout accuracy {accuracy:.4f}" in said


def test_identity_submission_searches_training_and_holdout_with_the_new_answer(identity_run, identity_data, tmp_path,
                                                                                 monkeypatch, capsys):
    import json

    from src.core.config import parse_config
    from src.core.submit_settings import SubmitConfig
    from src.inference.submission import submit

    run, _ = identity_run
    monkeypatch.chdir(run.parent)  # the run's split file sits under runs/splits there
    result = submit(parse_config(SubmitConfig, ["--data", str(identity_data), "--run", str(run), "--tta", "default",
                                                "--name", "whales", "--out", str(tmp_path)]))
    frame = pd.read_csv(tmp_path / "whales.csv")
    train = pd.read_csv(identity_data / "train.csv")
    assert result["gallery_images"] == len(train)  # the holdout's images joined the gallery
    assert frame["Id"].str.split().str.len().eq(5).all() and frame["Id"].str.contains(NEW).any()
    manifest = json.loads((tmp_path / "whales.json").read_text())
    assert manifest["task"] == "identity" and manifest["threshold"] == result["threshold"]
    from src.reports.ledger import manifest_row

    row = manifest_row(tmp_path / "whales.json", manifest)  # the ledger lists it, with its holdout MAP@5
    assert row["metric"] == "map@5" and row["score"] == pytest.approx(manifest["holdout"][-1]["score"])
    assert "identity+hflip" in capsys.readouterr().out and manifest["identity_blend"] == 0  # the default
    # --identity-blend 1: the margin head's cosines to the centres rank the identities it trained on, and the
    # threshold is chosen again on them (the nearest neighbours' best cosines sit near 1, the head's well below)
    blended = submit(parse_config(SubmitConfig, ["--data", str(identity_data), "--run", str(run), "--name", "blend",
                                                 "--out", str(tmp_path), "--identity-blend", "1"]))
    assert json.loads((tmp_path / "blend.json").read_text())["identity_blend"] == 1.0
    assert "--identity-blend 1: each identity's score is 0 x its nearest neighbours' best cosine + 1 x the margin " \
        "head's cosine to its centre" in capsys.readouterr().out
    assert blended["threshold"] != result["threshold"]


def test_auxiliary_heads_are_dropped_at_prediction_and_chained_is_refused(identity_run, identity_data, tmp_path,
                                                                           monkeypatch):
    """The trained network has the species head and the margin head; the network src.submit embeds with has neither.
    --head-scheme chained with an identity's --targets is refused, naming the flag, before any folder is written."""
    from src.core.config import parse_config
    from src.core.errors import KitError
    from src.inference.prediction import build_run_model, load_run
    from src.models.embedding import ArcMarginHead, embedding_model
    from src.training.two_stage import train

    run, _ = identity_run
    network = build_run_model(load_run(run))
    names = {layer.name for layer in network.layers}
    assert {"head", "head_species", "embedding"} <= names and isinstance(network.get_layer("head"), ArcMarginHead)
    cut = {layer.name for layer in embedding_model(network).layers}
    assert "embedding" in cut and not {"head", "head_species", "head_bn_species"} & cut
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KitError, match="--head-scheme chained: column Id is an identity"):
        train(parse_config(TrainConfig, ["--data", str(identity_data), "--backbone", "tiny_resnet", "--weights", "none",
                                         "--targets", "Id,species", "--head-scheme", "chained", "--out", "chained"]))
    assert not (tmp_path / "chained").exists()


def test_identity_blend_mixes_the_margin_head_into_the_ranking():
    """(1-W) x nearest neighbours + W x the head's cosine: W=0 is the nearest neighbours' ranking unchanged, a larger
    W moves the identity the head prefers up; an identity with no centre takes the image's best head cosine, one
    with no gallery photo stays out; the threshold is then chosen on the blended scores. Not for a non-identity run."""
    import types

    import numpy as np

    from src.core.errors import KitError
    from src.inference.combine import check_combination
    from src.kinds.identity.neighbours import (MISSING, blend_scores, choose_threshold, mean_head_scores,
                                          rank_with_new)

    nearest = np.array([[0.9, 0.8, 0.7, MISSING]], np.float32)   # identities A, B, C, D (D: no gallery photo)
    head = np.array([[0.1, 0.9, np.nan, 0.95]], np.float32)       # C: the head never trained on it
    assert blend_scores(nearest, head, 0.0) is nearest             # W=0: today's scores, the same object
    assert rank_with_new(blend_scores(nearest, head, 0.0), -1.0, 3).tolist() == [[0, 1, 2]]
    half = blend_scores(nearest, head, 0.5)                        # C's head part: the best of A's and B's, 0.9
    assert half[0].tolist() == pytest.approx([0.5, 0.85, 0.8, MISSING])
    assert rank_with_new(half, -1.0, 3).tolist() == [[1, 2, 0]]   # B first, C above A, D never
    assert rank_with_new(half, 0.55, 4).tolist() == [[1, 2, 4, 0]]  # the new answer (index 4) above A only
    closer = blend_scores(np.array([[0.9, 0.8, 0.95, MISSING]], np.float32), head, 0.5)
    assert rank_with_new(closer, -1.0, 3).tolist() == [[2, 1, 0]]  # C's photo the nearest: against B, neighbours decide
    assert rank_with_new(blend_scores(nearest, head, 1.0), -1.0, 3).tolist() == [[1, 2, 0]]
    truth = np.array([1])                                          # B is right: only the blend ranks it first
    assert choose_threshold(nearest, truth, 5).score == pytest.approx(0.5)
    assert choose_threshold(half, truth, 5).score == pytest.approx(1.0)
    both = mean_head_scores([np.array([[0.2, np.nan, 0.4]]), np.array([[0.4, np.nan, np.nan]])])
    assert both[0, 0] == pytest.approx(0.3) and np.isnan(both[0, 1]) and both[0, 2] == pytest.approx(0.4)
    run = types.SimpleNamespace(class_map=types.SimpleNamespace(column="label"))
    with pytest.raises(KitError, match="--identity-blend 0.5: .* column label is no identity"):
        check_combination(types.SimpleNamespace(identity_blend=0.5, blend="mean", select_runs=False), [run], "accuracy")


def test_a_run_cut_before_it_wrote_its_gallery_is_submitted_with_the_gallery_embedded_at_submit(
        identity_run, identity_data, tmp_path, monkeypatch, capsys):
    import shutil

    from src.core.config import parse_config
    from src.core.submit_settings import SubmitConfig
    from src.kinds.identity.neighbours import embeddings_file
    from src.inference.submission import submit

    run, _ = identity_run
    cut = run.parent / "cut-run"  # beside it: the same split file under runs/splits
    shutil.copytree(run, cut, dirs_exist_ok=True)
    embeddings_file(cut).unlink()  # what a run --time-limit cut after its stage 1 lacks (src.auto submits it)
    monkeypatch.chdir(run.parent)
    answers = {}
    for name, folder in (("whole", run), ("cut", cut)):
        submit(parse_config(SubmitConfig, ["--data", str(identity_data), "--run", str(folder), "--tta-views", "identity",
                                           "--name", name, "--out", str(tmp_path)]))
        answers[name] = pd.read_csv(tmp_path / f"{name}.csv")["Id"]
    assert "no embeddings.npz (the run was cut before it ended): its" in capsys.readouterr().out
    assert (answers["cut"] == answers["whole"]).mean() > 0.95  # the same weights, the same gallery (float noise)


def test_identity_folds_score_out_of_fold_and_join_at_submit(identity_data, tmp_path, monkeypatch, capsys):
    """--folds 2: each fold's holdout holds identities whole, cv.csv scores the folds' answers; src.submit joins
    the folds' embeddings (their cosines averaged) and chooses the threshold on the out-of-fold holdout."""
    import json

    from src.core.config import parse_config
    from src.core.submit_settings import SubmitConfig
    from src.inference.submission import submit
    from src.training.cross_validation import train_folds

    monkeypatch.chdir(tmp_path)
    summary = train_folds(parse_config(TrainConfig, [
        "--data", str(identity_data), "--backbone", "tiny_resnet", "--weights", "none", "--augment", "none",
        "--stages", "1", "--stage1-size", "24", "24", "--stage1-epochs", "1", "--batch-size", "32",
        "--embedding-dim", "16", "--folds", "2", "--out", str(tmp_path / "cv")]))
    assert summary["metric"] == "map@5" and 0 <= summary["cv_mean"] <= 1
    oof = pd.read_csv(tmp_path / "cv" / "oof_predictions.csv")
    assert (oof["label"] == NEW).any()  # each fold held some identities out whole
    result = submit(parse_config(SubmitConfig, ["--data", str(identity_data), "--run", str(tmp_path / "cv"),
                                                "--name", "cv", "--out", str(tmp_path / "subs")]))
    assert "2 folds joined" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "subs" / "cv.json").read_text())
    assert manifest["holdout"][0]["threshold"] == result["threshold"]
    assert len(pd.read_csv(tmp_path / "subs" / "cv.csv")) == len(pd.read_csv(identity_data / "solution.csv"))

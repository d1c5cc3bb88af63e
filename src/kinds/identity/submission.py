"""src.submit for an identity task: embeddings (TTA views averaged), nearest neighbours, the new answer inserted.

    frame, report, record = predict_identities(runs, comp, fmt, views, cfg)

Each run's network is cut at its embedding. The holdout (out of fold for a K-fold run) is searched against
the training side's embeddings, the test against every labelled image's (training and holdout: the gallery
grows at submit). Several runs and folds are joined: their normalised embeddings concatenated, so a cosine
is the mean of theirs (src.kinds.identity.neighbours.joined). --identity-blend W mixes each identity's score with
the margin head's cosine to its centre (each run's, folds' averaged) before the new answer's threshold is chosen
on the joined holdout for the metric, and said.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import staged_files, write_csv, write_json
from src.core.provenance import git_commit, package_versions
from src.inference.manifests import manifest_file, now_text
from src.kinds.identity.neighbours import (answer_texts, blend_scores, choose_threshold, embeddings_file, head_scores,
                                      identity_scores, identity_truth, joined, map_at_k, mean_head_scores, rank_with_new)
from src.inference.prediction import build_run_model, holdout_frame, predict_views
from src.models.embedding import embedding_model, margin_centres


def gallery_of(member, ids: list, got: dict) -> np.ndarray:
    """Return the run's embeddings of `ids`: saved (RUN/embeddings.npz, written when the run ended), else the ones
    member_embeddings computed (a run --time-limit cut after a finished stage ends without the file)."""
    path = embeddings_file(member.folder.path)
    saved = np.load(path) if path.is_file() else got["gallery"]
    lookup = pd.Index(saved["ids"].astype(str)).get_indexer(ids)
    if (lookup < 0).any():
        raise KitError(f"{path}: no embedding of image {ids[int(np.argmax(lookup < 0))]!r}: the run was trained on "
                       "other images than the competition's training images now")
    return saved["embeddings"][lookup]


def member_embeddings(member, comp, views, blend: float = 0.0) -> dict:
    """Return one run's (or fold's) embeddings: its holdout (TTA), the test (TTA), and the gallery's; with
    --identity-blend, its margin head's centres and which identities it trained on (their training photos)."""
    if any("@" in view for view in views):
        raise KitError("--tta-scales: an identity run embeds at its own size; leave --tta-scales out")
    network = build_run_model(member)
    centres = margin_centres(network) if blend else None
    if blend and centres is None:
        raise KitError(f"--identity-blend {blend:g}: --run {member.folder.path} has no margin head (trained with "
                       "--head dense), so no identity centres to blend; leave --identity-blend out (0)")
    model = embedding_model(network)
    val = holdout_frame(member, comp)
    train_ids = member.split.loc[member.split["split"] == "train", "id"].astype(str).tolist()
    labels = comp.train.set_index(comp.train["id"].astype(str))[member.target]
    trained = np.bincount(member.class_map.encode(labels.loc[train_ids]), minlength=len(member.class_map.values)) > 0
    gallery = None
    if not embeddings_file(member.folder.path).is_file():  # a cut run: its labelled images embedded here, one view
        print(f"{member.folder.path}: no {embeddings_file(member.folder.path).name} (the run was cut before it "
              f"ended): its {len(comp.train)} labelled images embedded now with its {member.stage} weights")
        gallery = {"ids": comp.train["id"].astype(str).to_numpy(),
                   "embeddings": predict_views(member, comp.train, ["identity"], 0, model)[0]}
    return {"val": val, "train_ids": train_ids, "gallery": gallery, "centres": centres, "trained": trained,
            "val_emb": predict_views(member, val, views, 0, model).mean(axis=0) if len(val) else None,
            "test_emb": predict_views(member, comp.test, views, 0, model).mean(axis=0)}


def head_of(got: dict, embeddings: np.ndarray):
    """Return a member's margin-head scores of these embeddings (src.kinds.identity.neighbours.head_scores), None unblended."""
    return None if got["centres"] is None else head_scores(embeddings, got["centres"], got["trained"])


def holdout_scores(run, comp, found: list, blend: float = 0.0) -> tuple:
    """Return (holdout ids, identity scores, truth) of a run or K-fold run: each image by the member holding it out,
    its scores blended with that member's margin head by --identity-blend."""
    class_map = run.class_map
    labels = comp.train.set_index(comp.train["id"].astype(str))[run.target]
    ids, scores, truth = [], [], []
    for member, got in zip(run.members, found):
        if got["val_emb"] is None:
            continue
        gallery = gallery_of(member, got["train_ids"], got)
        nearest = identity_scores(got["val_emb"], gallery, class_map.encode(labels.loc[got["train_ids"]]),
                                  len(class_map.values))
        scores.append(blend_scores(nearest, head_of(got, got["val_emb"]), blend))
        truth.append(identity_truth(got["val"][run.target], class_map, set(labels.loc[got["train_ids"]].astype(str))))
        ids += got["val"]["id"].astype(str).tolist()
    if not ids:
        return [], None, None
    order = np.argsort(ids, kind="stable")
    return [ids[i] for i in order], np.concatenate(scores)[order], np.concatenate(truth)[order]


def predict_identities(runs, comp, fmt, views, cfg) -> tuple:
    """Return (the filled submission frame, the holdout report rows, what NAME.json records)."""
    class_map, k = runs[0].class_map, fmt.k
    all_ids = comp.train["id"].astype(str).tolist()
    gallery_classes = class_map.encode(comp.train[runs[0].target])
    rows, holdouts, tests, galleries, heads = [], [], [], [], []
    blend = cfg.identity_blend
    if blend:
        print(f"--identity-blend {blend:g}: each identity's score is {1 - blend:g} x its nearest neighbours' best "
              f"cosine + {blend:g} x the margin head's cosine to its centre (runs' and folds' averaged)")
    for number, run in enumerate(runs, start=1):
        print(f"[{number}/{len(runs)}] {run.folder}: embeddings of {len(comp.test)} test images, "
              f"{len(views)} view(s) averaged" + (f", {len(run.members)} folds joined" if run.is_cv else ""), flush=True)
        found = [member_embeddings(member, comp, views, blend) for member in run.members]
        ids, scores, truth = holdout_scores(run, comp, found, blend)
        if scores is not None:
            chosen = choose_threshold(scores, truth, k)
            name = f"{run.folder} ({len(run.members)}-fold CV)" if run.is_cv else str(run.folder)  # the ledger's
            rows.append({"run": name, "views": "+".join(views), "threshold": chosen.threshold,
                         "score": chosen.score, "never_new": chosen.without})
            holdouts.append((ids, scores, truth))
        tests += [got["test_emb"] for got in found]
        heads += [head_of(got, got["test_emb"]) for got in found] if blend else []
        galleries += [gallery_of(member, all_ids, got) for member, got in zip(run.members, found)]
    shared = holdouts and all(h[0] == holdouts[0][0] for h in holdouts)
    if not holdouts:
        raise KitError("an identity submission chooses its new answer's threshold on a holdout: the runs have none "
                       "(full-fit runs); add the run they were refitted from")
    if not shared:
        print("the runs held out different images: the threshold is the first run's holdout's")
    scores = np.mean([h[1] for h in holdouts], axis=0) if shared else holdouts[0][1]
    chosen = choose_threshold(scores, holdouts[0][2], k)
    print(chosen.line(class_map.new_label, cfg.metric))
    rows.append({"run": "ensemble", "views": "+".join(views),  # the row the ledger reads, one run or several
                 "threshold": chosen.threshold, "score": chosen.score, "never_new": chosen.without})
    test_scores = identity_scores(joined(tests), joined(galleries), gallery_classes, len(class_map.values))
    test_scores = blend_scores(test_scores, mean_head_scores(heads) if blend else None, blend)
    ranked = rank_with_new(test_scores, chosen.threshold, k)
    frame = comp.schema.sample.copy()
    frame[fmt.columns[0]] = answer_texts(ranked, class_map)
    new_share = float((ranked[:, 0] == len(class_map.values)).mean())
    print(f"gallery: {len(all_ids)} labelled images (training and holdout); the new answer first in "
          f"{new_share:.0%} of the test rows")
    record = {"threshold": chosen.threshold, "new_label": class_map.new_label, "gallery_images": len(all_ids),
              "identity_blend": blend, "new_first_share": new_share,
              "holdout_map": map_at_k(rank_with_new(scores, chosen.threshold, k), holdouts[0][2])}
    return frame, rows, record


def write_identity_submission(cfg, runs, comp, fmt, views, validate, record: dict) -> dict:
    """Write NAME.csv (checked by validate, as every submission), NAME.json and NAME.holdout.csv; return the result.

    record: what NAME.json records besides (the hardware).
    """
    frame, rows, found = predict_identities(runs, comp, fmt, views, cfg)
    validate(frame, comp.schema, runs[0].class_map, fmt)
    out, report = Path(cfg.out), pd.DataFrame(rows)
    manifest = {"runs": [str(r.folder) for r in runs], "stages": [r.stage for r in runs], "views": list(views),
                "tta": cfg.tta, "holdout": report.to_dict(orient="records"),
                "ensemble_weights": [1.0 / len(runs)] * len(runs), "metric": cfg.metric, "task": "identity",
                **found, **record, "versions": package_versions(), "git_commit": git_commit(), "date": now_text()}
    with staged_files(out, cfg.name) as stage:
        write_csv(stage / f"{cfg.name}.holdout.csv", report)
        write_json(manifest_file(stage, cfg.name), manifest)
        write_csv(stage / f"{cfg.name}.csv", frame)
    print(report.to_string(index=False))
    print(f"wrote {out / f'{cfg.name}.csv'} ({len(frame)} rows)")
    return {"path": str(out / f"{cfg.name}.csv"), "scores": rows, "weights": [1.0] * len(runs), **found}

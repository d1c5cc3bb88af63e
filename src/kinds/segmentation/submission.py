"""src.submit for masks: TTA views undone and averaged, sizes restored, the run's post-processing, run-length rows.

    result = write_mask_submission(cfg, runs, comp, fmt, views, record)

Each run (each fold of a K-fold run) predicts the test images at its own size, every view (--tta: identity, hflip,
vflip) turned back onto the image before the views are averaged; the probabilities are resized back to each
image's own size and averaged over the runs there. The first run's post-processing (RUN/segmentation.json: a
threshold, minimum object size and empty-mask gate per class, chosen on its holdout) makes the masks; the holdout
is predicted the same way and scored with it, beside the empty mask's Dice. The rows are the sample's, in its
order: a row per image (HuBMAP's id,rle) or per image and class (Severstal's ImageId,EncodedPixels,ClassId), each
mask run-length encoded in the run's order (column-major unless the labels were row-major), an empty one as the
sample writes it (an empty cell, or -1). Every string is decoded back at its image's size before anything is
written; the CSV, NAME.json and NAME.holdout.csv are written together or not at all.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import staged_files, write_csv, write_json
from src.core.provenance import git_commit, package_versions
from src.inference.manifests import manifest_file, now_text
from src.inference.prediction import holdout_frame
from src.inference.reference import Reference, compare
from src.kinds.segmentation.masks import file_size
from src.kinds.segmentation.metrics import mean_score
from src.kinds.segmentation.outputs import EMPTY_ANSWER, predict_probabilities, read_settings, settings_file
from src.kinds.segmentation.postprocess import ClassRule, PostProcess, choose_postprocess
from src.kinds.segmentation.reading import empty_token, mask_table, sample_class_column
from src.kinds.segmentation.rle import decode, encode
from src.kinds.segmentation.tiles import check_view, resize
from src.kinds.segmentation.training import stage_arrays, unet_network, unet_size
from src.models.backbones import get_spec
from src.models.classifier import load_checked

FLIP_VIEWS = ("identity", "hflip", "vflip")
SAME_SHAPE = ("identity", "hflip", "vflip", "rot180")  # views that keep a non-square image's shape


def mask_views(cfg, sizes) -> tuple:
    """Return the TTA views of a mask submission: --tta-views, else the flips with --tta, else identity; each one a
    view a mask can be turned back from (tiles.VIEWS), quarter turns only for square run sizes."""
    if str(cfg.tta_scales).strip() not in ("1", "1.0"):
        raise KitError(f"--tta-scales {cfg.tta_scales}: a mask run predicts at its own size; leave --tta-scales out")
    named = tuple(v.strip() for v in cfg.tta_views.split(",") if v.strip())
    views = named or (FLIP_VIEWS if cfg.tta else ("identity",))
    for view in views:
        check_view(view)
    turned = [v for v in views if v not in SAME_SHAPE]
    odd = [size for size in sizes if size[0] != size[1]]
    if turned and odd:
        raise KitError(f"--tta-views {turned[0]}: the U-Net predicts {odd[0][0]}x{odd[0][1]} images, and a quarter "
                       f"turn or transpose changes their shape; use {', '.join(SAME_SHAPE)}")
    if cfg.tta == "auto" and not named:
        print("--tta auto: a mask submission averages the flips (identity, hflip, vflip); views are not chosen on "
              "the holdout for masks")
    return views


def check_mask_submit(cfg) -> None:
    """Refuse the submit flags a mask submission has no use for, naming each."""
    refused = {"--tta-random": cfg.tta_random > 0, "--tta-mean geometric": cfg.tta_mean == "geometric",
               "--ensemble-weights fit": cfg.ensemble_weights == "fit", "--blend rank": cfg.blend == "rank",
               "--select-runs": cfg.select_runs, "--identity-blend": cfg.identity_blend > 0,
               "--solution": bool(cfg.solution), "--submission-format": bool(cfg.submission_format)}
    for flag, given in refused.items():
        if given:
            raise KitError(f"{flag}: a mask submission averages its runs' probabilities with equal weights and "
                           "writes the sample's run-length rows; leave it out")


def member_model(member):
    """Return (the run's U-Net with its final weights, its size)."""
    spec = get_spec(member.config.backbone)
    model = unet_network(member.config, spec, member.size, member.class_map, "none", False)
    load_checked(model, member.weights, f"{member.folder.config_file} and {member.folder.class_map_file}")
    return model, unet_size(spec, member.size)


def predict_full(model, size, frame: pd.DataFrame, sizes: list, table, views, batch_size: int) -> list:
    """Return each row's (H, W, classes) probabilities at its own size: views undone and averaged at the run's size."""
    images, _ = stage_arrays(frame, table, size, masks=False)
    return [resize(p, s) for p, s in zip(predict_probabilities(model, images, views, batch_size), sizes)]


def add(total: dict, ids, probs) -> None:
    """Add probabilities per id into total {id: [sum, count]}."""
    for image_id, p in zip(ids, probs):
        found = total.setdefault(image_id, [0.0, 0])
        found[0], found[1] = found[0] + p, found[1] + 1


def mean_of(total: dict) -> dict:
    return {image_id: value / count for image_id, (value, count) in total.items()}


def predict_runs(runs, comp, views) -> tuple:
    """Return ({test id: probabilities}, [{holdout id: probabilities} per run]) averaged over members and views."""
    table = mask_table(comp.root)
    test_ids = comp.test["id"].astype(str).tolist()
    test_sizes = [file_size(Path(path)) for path in comp.test["path"]]  # the files' own pixels, as masks are
    test, holdouts = {}, []
    for number, run in enumerate(runs, start=1):
        print(f"[{number}/{len(runs)}] {run.folder}: masks of {len(test_ids)} test images, {len(views)} view(s) "
              f"averaged ({'+'.join(views)})" + (f", {len(run.members)} folds" if run.is_cv else ""), flush=True)
        held = {}
        for member in run.members:
            model, size = member_model(member)
            batch = member.config.batch_size  # as the run validated
            add(test, test_ids, predict_full(model, size, comp.test, test_sizes, table, views, batch))
            val = holdout_frame(member, comp)
            ids = val["id"].astype(str).tolist()
            add(held, ids, predict_full(model, size, val, [table.image_size(i) for i in ids], table, views, batch))
        holdouts.append(mean_of(held))
    return mean_of(test), holdouts


def holdout_rows(runs, holdouts: list, table, rules, views) -> list:
    """Return the holdout table: each run's Dice with the post-processing, the ensemble's on the shared images, and
    the empty mask's."""
    rows, shared = [], set.intersection(*(set(h) for h in holdouts)) if holdouts else set()
    for run, held in zip(runs, holdouts):
        if held:
            ids = sorted(held)
            truths = [table.mask(i) for i in ids]
            rows.append({"run": f"{run.folder}" + (f" ({len(run.members)}-fold CV)" if run.is_cv else ""),
                         "views": "+".join(views), "images": len(ids),
                         "score": mean_score(truths, [rules.apply(held[i]) for i in ids]),
                         "empty_mask": mean_score(truths, [np.zeros_like(t) for t in truths])})
    if shared:
        ids = sorted(shared)
        truths = [table.mask(i) for i in ids]
        mean = [np.mean([h[i] for h in holdouts], axis=0) for i in ids]
        rows.append({"run": "ensemble", "views": "+".join(views), "images": len(ids),
                     "score": mean_score(truths, [rules.apply(p) for p in mean]),
                     "empty_mask": mean_score(truths, [np.zeros_like(t) for t in truths])})
    return rows


def fill_masks(schema, masks: dict, classes, order: str) -> pd.DataFrame:
    """Return the sample with its target column filled: each row's mask (its image's, its class's channel) in
    run-length text, an empty mask as the sample writes one."""
    sample, target = schema.sample, schema.target_column
    class_column, token = sample_class_column(sample), empty_token(sample, target)
    if class_column is None and len(classes) != 1:
        raise KitError(f"{schema.path}: a row per image, but the run's masks have {len(classes)} classes "
                       f"({', '.join(map(str, classes))}): expected a class column (ClassId) beside {target}")
    channel = {str(name): index for index, name in enumerate(classes)}
    texts, names = [], sample[class_column].astype(str) if class_column else [None] * len(sample)
    for row, (image_id, name) in enumerate(zip(sample[schema.id_column].astype(str), names)):
        index = 0 if name is None else channel.get(name.strip())
        if index is None:
            raise KitError(f"{schema.path}: row {row + 2} asks for class {name!r}, which the run never learned "
                           f"(its classes: {', '.join(channel)})")
        texts.append(encode(masks[image_id][..., index], order) or token)
    frame = sample.copy()
    frame[target] = texts
    return frame


def check_masks(frame: pd.DataFrame, schema, sizes: dict, order: str) -> None:
    """Refuse a submission whose rows are not the sample's (ids, classes, order) or whose strings are not valid
    run-length text for their image's size, naming the first row."""
    sample = schema.sample
    if len(frame) != len(sample) or list(frame.columns) != list(sample.columns):
        raise KitError(f"submission: {len(frame)} rows and columns {list(frame.columns)}, but {schema.path} has "
                       f"{len(sample)} rows and {list(sample.columns)}")
    keys = [c for c in sample.columns if c != schema.target_column]
    differs = (frame[keys].astype(str).to_numpy() != sample[keys].astype(str).to_numpy()).any(axis=1)
    if differs.any():
        row = int(np.argmax(differs))
        raise KitError(f"submission: row {row + 2} is {frame[keys].iloc[row].tolist()} where {schema.path} has "
                       f"{sample[keys].iloc[row].tolist()}")
    for row, (image_id, text) in enumerate(zip(frame[schema.id_column].astype(str), frame[schema.target_column])):
        decode(text, sizes[image_id], order, f"submission: row {row + 2} (id {image_id!r})")


def cut_run_rules(path, holdout: dict, table, classes) -> PostProcess:
    """Return the post-processing of a run cut before it wrote RUN/segmentation.json (src.auto submits a cut run's
    stage 1): chosen now on its holdout's probabilities (as the run would have), else the defaults; said."""
    ids = sorted(holdout)
    if not ids:
        print(f"post-processing: the defaults ({settings_file(path)} is missing: the run was cut, and it has no holdout)")
        return PostProcess(classes, tuple(ClassRule() for _ in classes))
    rules = choose_postprocess([holdout[i] for i in ids], [table.mask(i) for i in ids], classes)
    print(f"post-processing chosen now on the holdout ({len(ids)} images; {settings_file(path)} is missing: the run "
          f"was cut before it wrote it): {rules.describe()}", flush=True)
    return rules


def write_mask_submission(cfg, runs, comp, fmt, views, record: dict) -> dict:
    """Write NAME.csv (checked), NAME.json and NAME.holdout.csv; return src.submit's result."""
    check_mask_submit(cfg)
    views = mask_views(cfg, [m.size for run in runs for m in run.members])
    first = runs[0].members[0]
    classes = tuple(map(str, runs[0].class_map.values))
    kept = settings_file(first.folder.path).is_file()  # not when --time-limit cut the run (src.auto keeps stage 1)
    settings = read_settings(first.folder.path) if kept else {"order": mask_table(comp.root).order}
    rules, order = settings.get("postprocess"), settings.get("order", "column")
    if kept:
        print(f"post-processing: {rules.describe()} ({settings_file(first.folder.path)}"
              + (", the first run's, applied to the runs' average)" if len(runs) > 1 or runs[0].is_cv else ")"))
    test, holdouts = predict_runs(runs, comp, views)
    if not kept:
        rules = cut_run_rules(first.folder.path, holdouts[0], mask_table(comp.root), classes)
        settings.update(classes=list(classes), rules=[dataclasses.asdict(rule) for rule in rules.rules])
    masks = {image_id: rules.apply(p) for image_id, p in test.items()}
    frame = fill_masks(comp.schema, masks, classes, order)
    check_masks(frame, comp.schema, {i: m.shape[:2] for i, m in masks.items()}, order)
    rows = holdout_rows(runs, holdouts, mask_table(comp.root), rules, views)
    verdict = {}
    if rows:  # the kept row (the ensemble's, else the run's) beside the empty mask's Dice, as every submission says
        reference = Reference(rows[-1]["empty_mask"], EMPTY_ANSWER)
        line, worse = compare(rows[-1]["score"], reference, "dice", "the submission")
        verdict = {"holdout_score": rows[-1]["score"], **reference.as_record(), "no_better": worse}
        print(line, flush=True)
    empty = sum(not m.any() for m in masks.values())
    print(f"masks: {len(masks) - empty} of {len(masks)} test images with a mask; {len(frame)} rows "
          f"({comp.schema.rows or 'a row per image'}), {order}-major run-length strings")
    out, report = Path(cfg.out), pd.DataFrame(rows)
    manifest = {"runs": [str(r.folder) for r in runs], "stages": [r.stage for r in runs], "views": list(views),
                "tta": cfg.tta, "holdout": report.to_dict(orient="records"),
                "ensemble_weights": [1.0 / len(runs)] * len(runs), "metric": cfg.metric, "task": "segmentation",
                "postprocess": {k: settings[k] for k in ("classes", "rules", "order")}, "verdict": verdict,
                "empty_test_images": int(empty), **record, "versions": package_versions(), "git_commit": git_commit(),
                "date": now_text()}
    with staged_files(out, cfg.name) as stage:
        write_csv(stage / f"{cfg.name}.holdout.csv", report)
        write_json(manifest_file(stage, cfg.name), manifest)
        write_csv(stage / f"{cfg.name}.csv", frame)
    if rows:  # one run's ensemble row is that run's again: kept in the files (the ledger reads it), not shown
        print(report[(report["run"] != "ensemble") | (len(runs) > 1)].to_string(index=False))
    print(f"wrote {out / f'{cfg.name}.csv'} ({len(frame)} rows)")
    return {"path": str(out / f"{cfg.name}.csv"), "scores": rows, "weights": [1.0 / len(runs)] * len(runs),
            "no_better": verdict.get("no_better", False)}

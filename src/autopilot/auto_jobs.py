"""The auto run's steps as kit jobs: screening, training (K folds or a holdout), --tta auto, the second backbone.

    backbone = run_screen(cfg, state, plan, out, accelerator)      # the candidates ranked by the metric
    runs = run_training(cfg, state, plan, speed, counts, data, deadline, table, callbacks)
    run_submit(cfg, state, runs, speed, counts, folds, deadline)    # offered by its holdout (out-of-fold) score
    more = run_head(...) + run_second(...)                          # a number's ridge, the screen's runner-up
    run_blend(cfg, state, runs, more, speed, counts, folds, deadline)    # every finished run, selected and weighted

Each step is one of src.training's jobs given the plan's numbers (src.autopilot.planning) and recorded in
auto_state.json (src.runs.auto_state), so a resumed session skips what finished and resumes what did not.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from src.core.settings import ScreenConfig, TrainConfig
from src.core.submit_settings import SubmitConfig
from src.inference.submission import submit
from src.pipeline.sampling import sampling_hint
from src.runs.auto_state import better, candidate_score
from src.runs.folder import RunFolder
from src.training.cross_validation import train_folds
from src.training.embedding_head import fit_embedding_head
from src.autopilot.planning import Speed, fold_epochs, head_seconds, plan_row, predict_seconds
from src.training.screening import screen
from src.training.two_stage import train


def run_screen(cfg, state, plan, out: Path, accelerator) -> str:
    """Screen the candidates on cached features by the metric; return the winner (kept on resume)."""
    if state.done("screen"):
        print(f"screen: finished earlier, {state.steps['screen']['backbone']} kept")
        return state.steps["screen"]["backbone"]
    row = next(r for r in plan.rows if r["step"] == "screen")
    size = tuple(int(v) for v in row["size"].split("x"))
    screen_cfg = ScreenConfig(**shared(cfg), backbones=",".join(plan.backbones), epochs=3, mode="features",
                              augment="none", weights=cfg.weights, out=str(out / "screen"),
                              features_cache=str(out / "features"), resume=True, metric=cfg.metric,
                              image_size=size, batch_size=cfg.batch_size, accelerator=cfg.accelerator)
    with state.step("screen", row["minutes"]) as record:
        table = screen(screen_cfg)
        good = table[table["error"] == ""]
        record.update(backbone=str(good.iloc[0]["backbone"]), score=float(good.iloc[0]["best_score"]),
                      ranking=[str(b) for b in good["backbone"]])
    return record["backbone"]


def shared(cfg) -> dict:
    """Return the data settings every job of the auto run shares (one split file, one seed)."""
    names = ("data", "labels_csv", "id_column", "label_column", "images_dir", "test_dir", "val_fraction",
             "group_column", "min_class_count", "seed", "strict_images", "split_file")
    return {name: getattr(cfg, name) for name in names}


def recipe(cfg, data, epochs: tuple, table) -> dict:
    """Return the recipe options the auto run trains with, each said with why."""
    options, why = {"schedule": "cosine"}, ["cosine: the schedule sized to the planned epochs"]
    if min(epochs[0], epochs[1] if epochs[1] else epochs[0]) >= 3:
        options["lr_warmup_epochs"] = 1.0
        why[0] = "cosine with a warm-up epoch: the schedule sized to the planned epochs"
    if cfg.weights == "none":  # from scratch, on the cosine schedule and its warm-up (the reference 1e-6 is for
        # pretrained weights): the rates src.auto's held-back checks measured; src.train's exponential schedule
        # starts lower (src.runs.stages.RATES), where 3e-3 left small_resnet near chance
        options.update(stage1_lr=3e-3, stage2_lr=1e-3)
        why.append("rates for random weights on the cosine schedule (3e-3, 1e-3)")
    probe = dataclasses.replace(TrainConfig(), sampling="natural")
    if sampling_hint(probe, data.comp.train[data.target], data.class_map, cfg.metric):
        options["sampling"] = "balanced"
        why.append("balanced: a class under 5% and a ranking metric")
    if table.metadata:
        options["metadata"] = True
        why.append("metadata: the table's features beside the image's")
    flags = ", ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in options.items())
    print(f"recipe: {flags} ({'; '.join(why)})", flush=True)
    return options


def run_training(cfg, state, plan, speed: Speed, counts, data, deadline: float, table, callbacks,
                 step: str = "train") -> list:
    """Train the planned run (K folds or one holdout) until its reserve for prediction; return the run folders to
    submit: the run, or what a cut run finished (salvage); [] when no model finished."""
    folder = Path(cfg.out) / f"train-{speed.backbone}"
    if state.done(step):
        print(f"{step}: finished earlier, {folder} kept")
        return [Path(state.steps[step]["run"])]
    row = next(r for r in plan.rows if r["step"] == step)
    # prediction's measured time, half again for what timed batches miss (decoding, views), and one start-up
    reserve = 1.5 * predict_seconds(speed, counts, plan.folds, cfg.startup_seconds) + cfg.startup_seconds
    hours = max(deadline - reserve - time.monotonic(), 1.0) / 3600
    split = {"split_file": str(Path(cfg.out) / f"split-{plan.folds}folds.csv")} if plan.folds else {}
    train_cfg = TrainConfig(**{**shared(cfg), **split}, backbone=speed.backbone, weights=cfg.weights, out=str(folder),
                            stage1_size=speed.sizes[0], stage2_size=speed.sizes[1], stage1_epochs=plan.epochs[0],
                            stage2_epochs=max(plan.epochs[1], 1), folds=plan.folds, fold=-1, resume=True,
                            time_limit=hours, metric=cfg.metric, batch_size=cfg.batch_size,
                            accelerator=cfg.accelerator, **recipe(cfg, data, plan.epochs, table))
    with state.step(step, row["minutes"]) as record:
        summary = train_folds(train_cfg, callbacks) if plan.folds else train(train_cfg, callbacks)
        record["run"] = str(folder)
        if summary.get("stopped"):
            record["status"] = "cut"
            return salvage(folder, plan.folds)
        if summary.get("far_folds"):
            summary = retrain_far_folds(train_cfg, summary, folder, row["minutes"] * 60 / plan.folds, deadline - reserve,
                                        callbacks)
            record["retrained_folds"] = summary.get("retrained", [])
        record["score"] = summary.get("cv_mean", summary.get("best", {}).get(summary.get("kept", ""), None))
    return [folder]


def retrain_far_folds(train_cfg, summary: dict, folder: Path, fold_seconds: float, until: float, callbacks) -> dict:
    """Train each fold far below its siblings (cross_validation.far_folds) once more, when the budget left before
    `until` holds it; keep whichever of its two runs scored better on its holdout and return the K-fold summary
    written last.

    The first run moves aside to fold-<i>.first (never deleted while the second trains); a session cut during the
    second finds it there and puts it back before trying again.
    """
    retrained, metric = [], summary["metric"]
    for fold in summary["far_folds"]:
        run = RunFolder(folder).fold(fold)
        first = run.path.with_name(run.path.name + ".first")
        if first.is_dir():  # a cut retrain: the first run comes back, the half-trained second goes
            shutil.rmtree(run.path, ignore_errors=True)
            first.rename(run.path)
        if time.monotonic() + fold_seconds > until:
            print(f"fold {fold}: far below its siblings, but training it again ({fold_seconds / 60:.1f} min) would "
                  "pass the budget's end; kept as it is")
            continue
        before = holdout_score(run)
        run.path.rename(first)
        print(f"fold {fold}: trained again ({fold_seconds / 60:.1f} min planned); the first run is in {first}", flush=True)
        again = train_folds(dataclasses.replace(train_cfg, resume=True,
                                                time_limit=max(until - time.monotonic(), 1.0) / 3600), callbacks)
        after = None if again.get("stopped") else holdout_score(run)
        if after is None or not better(after, before, metric):  # the second did no better: the first comes back
            shutil.rmtree(run.path, ignore_errors=True)
            first.rename(run.path)
            again = train_folds(dataclasses.replace(train_cfg, resume=True), callbacks)  # the CV of the first again
        else:
            shutil.rmtree(first, ignore_errors=True)
        print(f"fold {fold}: {metric} {shown(before)} first, {shown(after)} trained again"
              f"{' (cut by the budget)' if after is None else ''}; the "
              f"{'second' if after is not None and better(after, before, metric) else 'first'} kept", flush=True)
        summary = again if not again.get("stopped") else summary
        retrained.append(fold)
    return {**summary, "retrained": retrained}


def shown(value) -> str:
    return "?" if value is None else f"{value:.4f}"


def holdout_score(run: RunFolder):
    """Return a finished run's holdout --metric with its final weights (state.json's verdict), else None."""
    if not run.state_file.is_file():
        return None
    return run.state().verdict.get("holdout_score")


def salvage(folder: Path, folds: int) -> list:
    """Return the runs to submit from a run --time-limit cut: its finished folds (their test predictions averaged),
    or the run itself with its finished stage 1 kept (a later session resumes stage 2, which then chooses again);
    [] when none finished."""
    kept = []
    for run in [RunFolder(folder).fold(i) for i in range(folds)] if folds else [RunFolder(folder)]:
        state = run.state() if run.state_file.is_file() else None
        if state is None or "stage1" not in state.finished:
            continue
        whole = bool(state.kept)  # a fold that ended before the cut keeps the stage its --final-stage chose
        if not whole:
            state.keep("stage1", by="auto: the budget cut stage 2")
            run.save_state(state)
        print(f"the budget cut training: {run.path} is submitted with its {state.kept} weights" +
              (f" (it finished; {state.kept} kept by --final-stage {state.kept_by})" if whole else ""))
        kept.append(run.path)
    if not kept:
        print("the budget cut training before any model finished: no new submission")
    return kept


def run_submit(cfg, state, runs: list, speed, counts, folds: int, deadline: float, step: str = "submit") -> None:
    """Predict with --tta auto and keep the submission when it scores better on the holdout than the kept one
    (several runs: a cut K-fold run's finished folds, their test predictions averaged)."""
    seconds = predict_seconds(speed, counts, folds, cfg.startup_seconds) * (len(runs) if step == "blend" else 1)
    if time.monotonic() + seconds > deadline:
        print(f"submit: {seconds / 60:.1f} min of prediction would pass the budget's end; the kept submission stays")
        return
    name = f"auto-{runs[0].name}" if len(runs) == 1 else "auto-blend" if step == "blend" else \
        f"auto-{runs[0].parent.name}-{len(runs)}folds"
    sub_cfg = SubmitConfig(**{k: v for k, v in shared(cfg).items() if k != "split_file"}, run=tuple(map(str, runs)),
                           name=name, out=str(state.path.parent / "candidates"), tta="auto", overwrite=True,
                           metric=cfg.metric, solution=cfg.solution, accelerator=cfg.accelerator,
                           select_runs=step == "blend", calibrate="auto",
                           ensemble_weights="fit" if step == "blend" else "equal")
    with state.step(step, round(seconds / 60, 2)) as record:
        result = submit(sub_cfg)
        record.update(score=candidate_score(result["scores"]), candidate=result["path"],
                      no_better=bool(result.get("no_better")))
        if "test_accuracy" in result:
            record["test_accuracy"] = result["test_accuracy"]
    state.offer(record["candidate"], record["score"], step, record.get("no_better", False))


def run_second(cfg, state, plan, speeds: list, counts, data, deadline: float, table, callbacks, first: list) -> list:
    """Train the screen's runner-up when the budget left holds it at the first run's folds (so the runs share their
    holdout, or out-of-fold images, and can be blended); return [its run] or [] (said why not)."""
    ranking = state.steps.get("screen", {}).get("ranking", [])
    runner = next((s for s in speeds if len(ranking) > 1 and s.backbone == ranking[1] and not s.error), None)
    if runner is None or not state.done("train") or len(first) != 1:
        return []
    if not state.done("train2"):
        # the blend predicts the runs again; this run's own prediction is inside its run seconds
        left = deadline - time.monotonic() - predict_seconds(speeds[0], counts, plan.folds, cfg.startup_seconds)
        epochs = fold_epochs(runner, counts, left * (1 - cfg.margin), plan.folds, cfg.startup_seconds, cfg.max_epochs)
        if epochs is None:
            print(f"second backbone: {runner.backbone}, the screen's runner-up, does not fit in the {left / 60:.1f} "
                  f"min left; one backbone submitted")
            return []
        minutes = (left * (1 - cfg.margin)) / 60
        plan = dataclasses.replace(plan, epochs=epochs,
                                   rows=[plan_row("train2", runner.backbone, runner.sizes, plan.folds, epochs,
                                                  minutes * 60, plan.usable)])
        print(f"second backbone: {runner.backbone} ({'+'.join(map(str, epochs))} epochs) fits in the "
              f"{left / 60:.1f} min left; then blended with the first", flush=True)
    second = run_training(cfg, state, plan, runner, counts, data, deadline, table, callbacks, step="train2")
    return second if state.done("train2") else []


def run_head(cfg, state, plan, speed: Speed, counts, deadline: float, first: list) -> list:
    """A number: fit --head ridge on the backbone's pooled features (PetFinder's regressors on embeddings) as its
    own holdout run, to be blended with the network; return [its run] or [] (K folds: a holdout run cannot be
    blended with out-of-fold predictions; no time: said)."""
    folder = Path(cfg.out) / f"head-ridge-{speed.backbone}"
    if state.done("head"):
        return [Path(state.steps["head"]["run"])]
    if plan.folds or not state.done("train") or len(first) != 1:
        return []
    seconds = head_seconds(speed, counts, cfg.startup_seconds)
    if time.monotonic() + seconds + 2 * predict_seconds(speed, counts, 0, cfg.startup_seconds) > deadline:
        print(f"head: a ridge on the features ({seconds / 60:.1f} min) and the blend would pass the budget's end")
        return []
    head_cfg = TrainConfig(**shared(cfg), backbone=speed.backbone, weights=cfg.weights, out=str(folder),
                           head="ridge", stage1_size=speed.sizes[1], metric=cfg.metric, batch_size=cfg.batch_size,
                           accelerator=cfg.accelerator, resume=folder.exists())
    with state.step("head", round(seconds / 60, 2)) as record:
        summary = fit_embedding_head(head_cfg)
        record.update(run=str(folder), score=summary["holdout_score"])
    return [folder]


def run_blend(cfg, state, first: list, more: list, speed: Speed, counts, folds: int, deadline: float) -> None:
    """Submit the first run with the runs trained after it (more: a number's ridge, the runner-up) together: greedy
    selection and weights fitted for the metric on their shared holdout (out of fold for K folds), offered like
    any submission; again when a run was added since. Nothing when no run came after (a cut run's folds were
    submitted together already)."""
    runs = list(map(str, first + more))
    if not more or state.steps.get("blend", {}).get("runs") == runs:
        return
    run_submit(cfg, state, first + more, speed, counts, folds, deadline, step="blend")
    if "blend" in state.steps:  # not when its prediction would have passed the deadline
        state.steps["blend"]["runs"] = runs
        state.save()

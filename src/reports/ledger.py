"""Every run and submission in one table, with Kaggle's scores beside the local ones (`python -m src.ledger`).

    python -m src.ledger                                   # runs/ and submissions/ -> runs/runs.csv
    python -m src.ledger --competition dogs-vs-cats        # fetch Kaggle's public/private scores first
    python -m src.ledger --runs runs --runs runs/kernels/me-train/output --submissions submissions
    python -m src.ledger --runs other                      # -> other/runs.csv, beside the runs it lists

Runs (rows from src.reports.run_rows) and submissions (their NAME.json; Kaggle's scores from
kaggle_scores.csv beside them, matched by the name each upload's description starts with) are
each sorted by score in the metric's direction (log_loss: lowest first), printed (a damaged row's
reason under the table), and written as one table, OUT/runs.csv (OUT: --out, else beside the runs
listed), whose `kind` column says run or submission. cv_vs_lb.png plots the local score against
the public score per submission, with the Spearman rank correlation in its title: whether the
holdout ranks submissions as the leaderboard does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.core.files import write_csv
from src.core.metric_choice import check_metric, higher_is_better
from src.core.plots import plot_cv_vs_lb
from src.inference.manifests import find_manifests, read_manifest, written_at
from src.reports.run_rows import UNREADABLE, describe, run_row
from src.kaggle.client import fetch_scores
from src.kaggle.scores import read_scores, scores_file
from src.runs.folder import RunFolder
from src.runs.search import JOB_PREFIX, find_runs, run_kind

TABLE = "runs.csv"
PLOT = "cv_vs_lb.png"
COLUMNS = ["kind", "name", "status", "metric", "score", "std", "scored_on", "public_score", "private_score",
           "backbone", "sizes", "epochs", "final_stage", "seconds", "seconds_estimated", "commit", "options",
           "runs", "views", "date", "submitted", "kaggle_status", "uploads", "folder"]
DONE = ("finished", "written")


def write_ledger(cfg) -> pd.DataFrame:
    """Print the ledger and write OUT/runs.csv (and cv_vs_lb.png when public scores are known); return the table."""
    scores = kaggle_scores(cfg)
    found, skipped = find_runs(cfg.runs)
    runs = sort_rows([run_row(run, label(run.path, cfg.runs)) for run in found])
    submissions = sort_rows(submission_rows(cfg.submissions, scores))
    table = pd.concat([runs, submissions], ignore_index=True).reindex(columns=COLUMNS)
    # True/False for runs, empty for submissions, in every pandas (2.2's concat turns the bools into 0.0/1.0)
    table["seconds_estimated"] = [v if isinstance(v, str) or pd.isna(v) else bool(v) for v in table["seconds_estimated"]]
    table["uploads"] = pd.to_numeric(table["uploads"]).astype("Int64")  # 2, not 2.0, beside blanks
    print_ledger(runs, submissions, skipped)
    out = write_where_possible(table, ledger_places(cfg))
    plot_submissions(submissions, out / PLOT)
    print(f"wrote {out / TABLE} ({len(runs)} run(s), {len(submissions)} submission(s))")
    return table


def ledger_places(cfg) -> list:
    """Return the folders runs.csv may go to, in order: --out alone (asked for: a refusal is an error), else beside
    the runs, then the submissions folder. Why: the runs of a Kaggle kernel's attached output are read-only, and
    the ledger only reports on them; a kernel's submissions folder is its working folder, which it can write."""
    first = ledger_folder(cfg)
    return [first] if cfg.out or Path(cfg.submissions) == first else [first, Path(cfg.submissions)]


def write_where_possible(table: pd.DataFrame, places: list) -> Path:
    """Write runs.csv into the first place that takes it, saying why an earlier one did not; return that folder.

    A refused write (read-only, permissions, full disk) moves on to the next place; the last one's is raised.
    """
    *earlier, last = places
    for out, following in zip(earlier, places[1:]):
        try:
            write_table(table, out / TABLE)
            return out
        except KitError as err:
            if getattr(err, "os_error", None) is None:
                raise
            print(f"{err}; the ledger goes to {following} instead")
    write_table(table, last / TABLE)
    return last


def ledger_folder(cfg) -> Path:
    """Return where runs.csv goes: --out, else beside the runs it lists (the first --runs folder, or the folder
    holding it when it is a run), so `--runs other/` never replaces runs/runs.csv with other/'s rows."""
    if cfg.out:
        return Path(cfg.out)
    first = Path(cfg.runs[0]) if cfg.runs else Path("runs")
    return first.parent if run_kind(RunFolder(first)) == "run" else first


def label(path: Path, places) -> str:
    """Return a run's name: its path under the --runs folder it was found in (the folder's own path if it is one)."""
    for place in map(Path, places):
        if path == place:
            return str(path)
        if path.is_relative_to(place):
            return str(path.relative_to(place))
    return str(path)


def kaggle_scores(cfg) -> pd.DataFrame:
    """Return the kept Kaggle scores, fetched first with --competition; a failed fetch is said, not hidden."""
    if cfg.competition:
        try:
            rows = fetch_scores(cfg.competition, cfg.submissions)
            print(f"fetched {len(rows)} submission(s) of {cfg.competition} from Kaggle; kept in "
                  f"{scores_file(cfg.submissions)}")
        except KitError as err:
            print(f"could not fetch the scores of {cfg.competition} from Kaggle ({err}); showing those kept in "
                  f"{scores_file(cfg.submissions)}")
    scores = read_scores(cfg.submissions)
    return scores[scores["competition"] == cfg.competition] if cfg.competition else scores


def submission_rows(folder, scores: pd.DataFrame) -> list:
    """Return a row per kit submission in the folder, with its latest Kaggle upload's scores.

    Uploads named by their description but without a NAME.json here are rows too ("on Kaggle only").
    """
    rows, names = [], set()
    if not Path(folder).is_dir():
        print(f"submissions: no folder {folder}")
    for path in find_manifests(folder):
        names.add(path.stem)
        try:
            row = manifest_row(path, read_manifest(path))
        except UNREADABLE as err:
            row = {"kind": "submission", "name": path.stem, "status": f"damaged: {describe(err)}",
                   "folder": str(path)}
        rows.append({**row, **kaggle_columns(scores, path.stem)})
    for name in sorted(set(scores["name"]) - names - {""}):
        rows.append({"kind": "submission", "name": name, "status": f"on Kaggle only: no {name}.json in {folder}",
                     **kaggle_columns(scores, name)})
    unnamed = int((scores["name"] == "").sum())
    if unnamed:
        print(f"{unnamed} Kaggle submission(s) whose description names no kit submission (not uploaded by the "
              f"kit): kept in {scores_file(folder)}, not listed")
    return rows


def manifest_row(path: Path, manifest: dict) -> dict:
    """Return a submission's row: runs and weights, views, the ensemble's holdout or out-of-fold score, date."""
    holdout = manifest["holdout"]
    ensemble = [r for r in holdout if str(r.get("run", "")).startswith("ensemble")]
    if not ensemble:
        raise KitError(f"{path}: no ensemble row among its holdout scores")
    runs, weights = manifest["runs"], manifest.get("ensemble_weights") or []
    blend = runs[0] if len(runs) == 1 else " + ".join(f"{w:.2f} {r}" for w, r in zip(weights, runs))
    out_of_fold = any("-fold CV)" in str(r.get("run", "")) for r in holdout)
    score = ensemble[-1].get("score")
    return {"kind": "submission", "name": path.stem, "status": "written", "metric": check_metric(manifest["metric"]),
            "score": np.nan if score is None else float(score), "scored_on": "out-of-fold" if out_of_fold else
            "holdout", "runs": blend, "views": " | ".join(map(str, manifest.get("views", []))),
            "date": written_at(path, manifest), "commit": (manifest.get("git_commit") or "")[:7],
            "folder": str(path.with_suffix(".csv"))}


def kaggle_columns(scores: pd.DataFrame, name: str) -> dict:
    """Return the latest upload's public and private scores, date and status, and how many uploads had the name."""
    part = scores[scores["name"] == name].sort_values(["date", "ref"], kind="stable")
    if part.empty:
        return {}
    last = part.iloc[-1]
    status = last["status"] + (f": {last['error']}" if last["error"] else "")
    return {"public_score": last["public_score"], "private_score": last["private_score"], "submitted": last["date"],
            "kaggle_status": status, "uploads": len(part)}


def sort_rows(rows: list) -> pd.DataFrame:
    """Return the rows as a table: readable ones first, by metric, best score first in the metric's direction."""
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    if frame.empty:
        return frame
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    signs = [(-1.0 if higher_is_better(m) else 1.0) if isinstance(m, str) and m else 1.0 for m in frame["metric"]]
    key = (frame["score"] * signs).fillna(np.inf)
    order = np.lexsort((key.to_numpy(), frame["metric"].fillna("").astype(str).to_numpy(),
                        ~frame["status"].isin(DONE).to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def write_table(table: pd.DataFrame, path: Path) -> Path:
    """Write runs.csv; a file of that name the ledger did not write is never replaced."""
    if path.is_file():
        with open(path) as handle:
            first = handle.readline()
        if not first.startswith("kind,name,"):
            raise KitError(f"{path} exists and is not the ledger's table: move it, or pass --out another folder")
    return write_csv(path, table)


def print_ledger(runs: pd.DataFrame, submissions: pd.DataFrame, skipped: list) -> None:
    """Print the runs, then the submissions, as aligned tables; name folders that are not runs."""
    runs, reasons = short_statuses(runs)
    submissions, more = short_statuses(submissions)
    print(f"runs ({len(runs)}):")
    print(shown(runs, {"name": "run", "status": "status", "backbone": "backbone", "sizes": "sizes",
                       "epochs": "epochs", "metric": "metric", "score": "score", "std": "std",
                       "final_stage": "final", "seconds": "time", "commit": "commit", "options": "options"}))
    print(f"submissions ({len(submissions)}):")
    print(shown(submissions, {"name": "submission", "status": "status", "metric": "metric", "score": "local",
                              "scored_on": "on", "public_score": "public", "private_score": "private",
                              "runs": "runs", "views": "views", "date": "written", "submitted": "submitted"}))
    for name, why in reasons + more:
        print(f"damaged: {name}: {why}")
    jobs = [f"{folder} ({why.removeprefix(JOB_PREFIX)})" for folder, why in skipped if why.startswith(JOB_PREFIX)]
    if jobs:
        print(f"other jobs' folders, not runs: {', '.join(jobs)}")
    for folder, why in skipped:
        if not why.startswith(JOB_PREFIX):
            print(f"not a run: {folder} ({why})")


def short_statuses(frame: pd.DataFrame) -> tuple:
    """Return (the table with each damaged row's status cut to "damaged", [(name, reason)]): a reason is a path and
    a sentence, too wide for a column; it is printed under the table (runs.csv keeps the whole status)."""
    if frame.empty:
        return frame, []
    damaged = frame["status"].astype(str).str.startswith("damaged: ")
    reasons = [(name, status.removeprefix("damaged: ")) for name, status in frame.loc[damaged, ["name", "status"]]
               .itertuples(index=False)]
    return frame.assign(status=frame["status"].mask(damaged, "damaged")), reasons


def shown(frame: pd.DataFrame, columns: dict) -> str:
    """Return the table as text: scores to 4 places, times as minutes and seconds (~ estimated), blanks as '-'."""
    if frame.empty:
        return "  (none)"
    text = pd.DataFrame(index=frame.index)
    for column, title in columns.items():
        values = frame[column]
        if column in ("score", "std", "public_score", "private_score"):
            values = pd.to_numeric(values, errors="coerce").map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
        elif column == "seconds":
            values = [duration(s, e) for s, e in zip(frame["seconds"], frame["seconds_estimated"])]
        else:
            values = values.map(lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) or v == ""
                                else str(v))
        text[title] = list(values)
    return aligned(text, {columns[c] for c in ("score", "std", "public_score", "private_score", "seconds")
                          if c in columns})


def aligned(text: pd.DataFrame, numbers: set) -> str:
    """Return the text table with numbers right-aligned and words left-aligned (pandas aligns all right)."""
    widths = {c: max([len(c), *map(len, text[c])]) for c in text.columns}

    def line(cells: dict) -> str:
        return "  ".join(str(v).rjust(widths[c]) if c in numbers else str(v).ljust(widths[c])
                         for c, v in cells.items()).rstrip()

    return "\n".join([line({c: c for c in text.columns}), *(line(dict(row)) for _, row in text.iterrows())])


def duration(seconds, estimated) -> str:
    if seconds is None or pd.isna(seconds):
        return "-"
    minutes, rest = divmod(int(round(float(seconds))), 60)
    return f"{'~' if estimated is True else ''}{minutes}m{rest:02d}s"


def plot_submissions(submissions: pd.DataFrame, path: Path) -> None:
    """Draw cv_vs_lb.png from the submissions with a local and a public score (the most common metric's)."""
    scored = submissions.dropna(subset=["score", "public_score"]) if not submissions.empty else submissions
    if scored.empty:
        print(f"{path.name} not drawn: no submission has both a local and a public score yet "
              "(--competition SLUG fetches Kaggle's)")
        return
    metric = scored["metric"].value_counts().index[0]
    left_out = scored[scored["metric"] != metric]
    if len(left_out):
        print(f"{path.name}: {len(left_out)} submission(s) scored with another metric left out "
              f"({', '.join(left_out['name'])})")
    scored = scored[scored["metric"] == metric]
    rho = rank_correlation(scored["score"].astype(float), scored["public_score"].astype(float))
    title = f"{metric}: local vs public, Spearman {rho} (n={len(scored)})"
    plot_cv_vs_lb(scored["score"].astype(float), scored["public_score"].astype(float), list(scored["name"]),
                  path, title)
    print(f"wrote {path} ({title})")


def rank_correlation(local: pd.Series, public: pd.Series) -> str:
    """Return the Spearman rank correlation as text, or why there is none (fewer than 2 points, ties only)."""
    if len(local) < 2:
        return "undefined: one submission"
    if local.nunique() < 2 or public.nunique() < 2:
        return "undefined: one score repeated"
    from scipy.stats import spearmanr

    return f"rho {spearmanr(local, public).statistic:.2f}"

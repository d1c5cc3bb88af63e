"""Full-fit runs (`python -m src.train --full-fit RUN`) in src.submit: no holdout, so their reference run's score.

    check_full_fits(cfg, runs, multi_label)    # what needs a holdout is refused, naming the flag
    ref = run_reference(group)                 # None, or the reference's score and its line

A full-fit trained on every training image: its own holdout is empty, and nothing (views,
weights, thresholds, temperature) can be fitted on it. What it can say is the score its reference
run's holdout gave the same recipe, which the report names as such.
"""
from __future__ import annotations

from src.core.errors import KitError
from src.runs.reference import full_fit_reference, reference_score


def run_reference(group) -> dict | None:
    """Return the reference score (src.runs.reference.reference_score) of a full-fit run, None for any other run."""
    ref = full_fit_reference(group.members[0].folder.path)
    return None if ref is None else reference_score(ref)


def check_full_fits(cfg, runs, multi_label: bool) -> None:
    """Refuse, naming the flag, what would be fitted on the holdout of a full-fit run, which has none."""
    marked = [run_reference(run) is not None for run in runs]
    if not any(marked):
        return
    first = runs[marked.index(True)].folder
    needs = {"--tta auto (views chosen on the holdout)": cfg.tta == "auto",
             "--ensemble-weights fit": cfg.ensemble_weights == "fit", "--select-runs": cfg.select_runs,
             "a multi-label target (thresholds per tag fitted on the holdout)": multi_label}
    for what, asked in needs.items():
        if asked:
            raise KitError(f"{what}: needs the runs' holdout, and --run {first} is a full-fit (trained on every "
                           "image, no holdout); name views with --tta-views and blend with equal weights")
    if not all(marked):
        other = runs[marked.index(False)].folder
        raise KitError(f"--run {first} is a full-fit (no holdout) and --run {other} is not: their holdouts cannot "
                       "be put side by side; submit full-fit runs together, or each alone")

"""src.auto on held-back competitions of every kind: `python benchmarks/auto_heldback.py [OUT] [BUDGET] [KINDS]`.

Issue 33's check: four generated competitions, each with its metric recorded as `python -m src.kaggle_api
download` records it (kaggle_metric.json) and its solution moved out of the data folder, run with only
`--budget` (plus --weights none: no pretrained weights offline, the kit's own small_resnet as in the demo):
- table: ISIC 2024's layout, rare positives, metadata and patients (pAUC above 80% TPR);
- grades: APTOS's layout, five grades scored by quadratic weighted kappa;
- number: PetFinder's layout, RMSE;
- identity: Happywhale's layout, MAP@5 with new_individual.
Each submission is scored against its held-back solution beside a constant baseline. About 4 x BUDGET here
(default 3m). The last line is one JSON object: per kind the metric, test score, baseline, the minutes taken
and the budget.
"""
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.number_competition import draw, write_number_competition  # noqa: E402
from src.auto import main as auto_main  # noqa: E402
from src.core.auto_settings import budget_seconds  # noqa: E402
from src.core.files import write_csv  # noqa: E402
from src.data.demo_table import write_table_competition  # noqa: E402
from src.data.identity_demo import write_identity_competition  # noqa: E402
from src.inference.metrics import score  # noqa: E402

KAGGLE_METRICS = {"table": "pAUC above TPR", "grades": "Quadratic Weighted Kappa", "number": "Root Mean Squared Error",
                  "identity": "MAP@{K}"}


def write_grades_competition(root: Path, train: int = 500, test: int = 150, size: int = 32, seed: int = 4) -> Path:
    """Write an APTOS-like competition: train_images/<id>.png, train.csv id_code,diagnosis (0-4, grade 0 most
    common), test_images/, sample_submission.csv (diagnosis 0), solution.csv; the grade sets the square's size."""
    rng = np.random.default_rng(seed)
    grades = rng.choice(5, train + test, p=[0.45, 0.15, 0.2, 0.1, 0.1])
    ids = [f"{rng.bytes(5).hex()}" for _ in grades]
    for i, (image_id, grade) in enumerate(zip(ids, grades)):
        folder = root / ("train_images" if i < train else "test_images")
        folder.mkdir(parents=True, exist_ok=True)
        draw(10 + 20 * grade + rng.normal(0, 4), size, rng).save(folder / f"{image_id}.png")
    frame = pd.DataFrame({"id_code": ids, "diagnosis": grades})
    write_csv(root / "train.csv", frame.iloc[:train])
    write_csv(root / "sample_submission.csv", frame.iloc[train:].assign(diagnosis=0))
    write_csv(root / "solution.csv", frame.iloc[train:])
    return root


def write_competition(kind: str, root: Path) -> tuple:
    """Write one kind's competition; return (its folder, the id column, the answer column)."""
    if kind == "table":
        write_table_competition(root, patients=80, test_patients=25, seed=0, size=24)
        return root, "isic_id", "target"
    if kind == "grades":
        return write_grades_competition(root), "id_code", "diagnosis"
    if kind == "number":
        return write_number_competition(root, train=400, test=150, size=32, seed=3), "Id", "Pawpularity"
    return write_identity_competition(root, identities=80, size=32, seed=1), "Image", "Id"


def map_at_5(predicted: pd.Series, truth: pd.Series) -> float:
    """Return MAP@5 of space-separated answers against the true one."""
    return float(np.mean([1 / (p.split()[:5].index(t) + 1) if t in p.split()[:5] else 0.0
                          for p, t in zip(predicted, truth)]))


def test_score(kind: str, merged: pd.DataFrame, column: str) -> tuple:
    """Return (the kit's metric, the submission's score, a constant baseline's) on the held-back answers."""
    guess, truth = merged[column], merged[f"{column}_true"]
    if kind == "table":
        y = truth.to_numpy(int)
        return "pauc@0.8", score(np.stack([1 - guess, guess], 1), y, "pauc@0.8"), \
            score(np.full((len(y), 2), 0.5), y, "pauc@0.8")
    if kind == "grades":
        from sklearn.metrics import cohen_kappa_score

        return "qwk", float(cohen_kappa_score(truth.to_numpy(int), guess.to_numpy(int), weights="quadratic")), 0.0
    if kind == "number":
        rmse = float(np.sqrt(np.mean((guess - truth) ** 2)))
        return "rmse", rmse, float(np.sqrt(np.mean((truth - truth.mean()) ** 2)))
    return "map@5", map_at_5(guess, truth), map_at_5(pd.Series(["new_individual"] * len(truth)), truth)


def check(kind: str, out: Path, budget: str) -> dict:
    """Write the competition, hold its solution back, run src.auto with --budget only; return its scores."""
    data, id_column, column = write_competition(kind, out / "data" / kind)
    (data / "kaggle_metric.json").write_text(json.dumps({"competition": kind,
                                                         "evaluation_metric": KAGGLE_METRICS[kind]}))
    solution = out / f"{kind}-solution.csv"
    shutil.move(str(data / "solution.csv"), solution)  # held back: not in the data
    started = time.monotonic()
    result = auto_main(["--data", str(data), "--budget", budget, "--weights", "none", "--out", str(out / kind)])
    minutes = (time.monotonic() - started) / 60
    merged = pd.read_csv(result["file"]).merge(pd.read_csv(solution), on=id_column, suffixes=("", "_true"))
    metric, test, baseline = test_score(kind, merged, column)
    steps = {name: step.get("status") for name, step in result["steps"].items()}
    print(f"{kind}: test {metric} {test:.4f} (constant answer {baseline:.4f}), holdout {result['score']:.4f}, "
          f"{minutes:.1f} min of a {budget} budget, steps {steps}", flush=True)
    return {"metric": metric, "test": round(test, 4), "baseline": round(baseline, 4),
            "holdout": round(result["score"], 4), "minutes": round(minutes, 2),
            "budget_minutes": budget_seconds(budget) / 60, "rows": len(merged), "steps": steps}


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/auto_heldback")
    budget = sys.argv[2] if len(sys.argv) > 2 else "3m"
    kinds = sys.argv[3].split(",") if len(sys.argv) > 3 else list(KAGGLE_METRICS)
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({kind: check(kind, out, budget) for kind in kinds}))

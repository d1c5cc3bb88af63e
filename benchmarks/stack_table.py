"""Images alone, the table alone, --metadata and the stack on a generated ISIC-2024-like competition (issue 30).

    python benchmarks/stack_table.py [--work /tmp/stack_table] [--patients 150] [--epochs 8] [--folds 5]

Writes the competition (src.data.demo_table: the image's brightness holds one part of the risk, a colour
relative to the patient's other lesions another), trains two K-fold runs with only --metric pauc@0.8,
--sampling balanced and --group-column patient_id (plain images; the same with --metadata), submits the
--metadata run, then runs src.stack over the plain run (LightGBM, the logistic regression and their blend,
the best out of fold kept). Prints out-of-fold and test pAUC (above 80% TPR, Kaggle's 0-0.2 scale) of each,
the stack's candidates each and the one it kept; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def both(p, y) -> dict:
    """Return pAUC above 80% TPR and AUC of positive-class probabilities p against 0/1 labels y."""
    from src.inference.metrics import score

    probs = np.stack([1 - np.asarray(p), np.asarray(p)], axis=1)
    return {"pauc": round(score(probs, np.asarray(y), "pauc@0.8"), 4), "auc": round(score(probs, np.asarray(y), "auc"), 4)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/stack_table")
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from src.data.demo_table import write_table_competition
    from src.stack import main as stack_command
    from src.submit import main as submit_command
    from src.train import main as train_command

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    data = work / "isic-2024"
    made = write_table_competition(data, args.patients, args.patients // 3, args.seed)
    solution = pd.read_csv(data / "solution.csv")
    truth = pd.read_csv(data / "train-metadata.csv", dtype={"isic_id": str}).set_index("isic_id")["target"]
    common = ["--data", str(data), "--metric", "pauc@0.8", "--sampling", "balanced", "--group-column", "patient_id",
              "--folds", str(args.folds), "--backbone", "tiny_resnet", "--weights", "none", "--stages", "1",
              "--stage1-size", "16", "16", "--stage1-epochs", str(args.epochs), "--stage1-lr", "3e-3",
              "--batch-size", "32", "--split-file", str(work / "split.csv")]
    start, rows = time.time(), {}
    train_command([*common, "--out", str(work / "runs" / "images")])
    train_command([*common, "--metadata", "--out", str(work / "runs" / "metadata")])
    submit_command(["--data", str(data), "--run", str(work / "runs" / "metadata"), "--out", str(work / "subs"),
                    "--name", "metadata"])
    oof = pd.read_csv(work / "runs" / "metadata" / "oof_predictions.csv", dtype={"id": str})
    test = pd.read_csv(work / "subs" / "metadata.csv")
    rows["metadata"] = {"oof": both(oof["prob_1"], truth.loc[oof["id"]].to_numpy()),
                        "test": both(test["target"], solution["target"])}
    stacked = stack_command(["--data", str(data), "--runs", str(work / "runs" / "images"), "--out", str(work / "subs"),
                             "--name", "stack", "--solution", str(data / "solution.csv"), "--seeds", "3"])
    stack_oof = pd.read_csv(work / "subs" / "stack.oof.csv", dtype={"id": str})
    y = truth.loc[stack_oof["id"]].to_numpy()
    for found in stacked["scores"]:
        name = found["features"] if found["features"] in ("images", "table") else f"stack {found['model']}"
        rows[name] = {"oof": {"pauc": round(found["score"], 4)}, "test": {"pauc": round(found["test_score"], 4)}}
    kept = next(r for r in stacked["scores"] if r["kept"])
    rows["stack kept"] = {"oof": {"pauc": round(kept["score"], 4), "auc": both(stack_oof["oof_probability"], y)["auc"]},
                          "test": {"pauc": round(kept["test_score"], 4)}, "kept": f"{kept['features']} {kept['model']}"}
    print(f"\nISIC-2024-like: {made['train']} training lesions ({made['positives']:.1%} positive), {made['test']} test "
          f"lesions of new patients; {args.folds} folds grouped by patient; pAUC above 80% TPR (0-0.2), "
          f"{time.time() - start:.0f} s")
    print(f"{'features':<16}{'oof pAUC':>10}{'test pAUC':>11}")
    for name in ("images", "table", "metadata", "stack lightgbm", "stack logistic", "stack blend", "stack kept"):
        print(f"{name:<16}{rows[name]['oof']['pauc']:>10.4f}{rows[name]['test']['pauc']:>11.4f}"
              + (f"  ({rows[name]['kept']})" if name == "stack kept" else ""))
    result = {"benchmark": "stack_table", "data": made, "folds": args.folds, "epochs": args.epochs, "scores": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

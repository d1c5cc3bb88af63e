"""A number target end to end, in one sitting: `python benchmarks/regression_table.py` (issue 31's must-show).

Writes a generated Pawpularity-like competition (benchmarks/number_competition.py: a bright square whose
size and brightness follow an integer score 1-100, the score carrying noise of sd 6 the image cannot
show) and scores on its test images (solution.csv), by RMSE:
  mean        always the training mean (what the kit's old class reading lost to)
  network     small_resnet from random weights, --loss mse, one 32x32 stage (the kit's src.train)
  bce-scaled  the same with --loss bce-scaled (sigmoid output, cross-entropy on the 0-1 target)
  ridge, svr  --head ridge / --head svr on the network's backbone at random weights (pooled features)
  blend       src.submit of network + svr, weights fitted for rmse on the holdout
Each run's holdout RMSE is src.submit's (identity view); test is the submission against solution.csv.
One seed, one split. Writes regression_table.csv and .png into --out; the last line is one JSON
object {row: {"holdout", "test"}}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.number_competition import write_number_competition  # noqa: E402


def train_args(data: Path, out: Path, split: Path, *extra) -> list:
    return ["--data", str(data), "--backbone", "small_resnet", "--weights", "none", "--augment", "light",
            "--no-flip", "--stages", "1", "--stage1-size", "32", "32", "--stage1-epochs", "12", "--stage1-lr", "3e-3",
            "--stage1-patience", "4", "--batch-size", "32", "--split-file", str(split), "--out", str(out), *extra]


def submit_row(data: Path, runs: list, out: Path, name: str) -> dict:
    """Return {"holdout", "test"} of a submission of runs (holdout: the ensemble row, or the one run's)."""
    from src.submit import main as submit_main

    args = ["--data", str(data), "--out", str(out), "--name", name, "--ensemble-weights", "fit",
            "--solution", str(data / "solution.csv"), "--overwrite"]
    for run in runs:
        args += ["--run", str(run)]
    result = submit_main(args)
    holdout = [r["score"] for r in result["scores"] if r["run"] == "ensemble"][0]
    return {"holdout": round(float(holdout), 3), "test": round(float(result["test_score"]), 3),
            **({"weights": [round(w, 3) for w in result["weights"]]} if len(runs) > 1 else {})}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/regression_table")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--test", type=int, default=300)
    args = parser.parse_args(argv)
    from src.train import main as train_main

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    data = write_number_competition(out / "data", train=args.train, test=args.test, size=40, seed=0)
    split = out / "split.csv"
    truth = pd.read_csv(data / "solution.csv")["Pawpularity"].to_numpy(float)
    mean = float(pd.read_csv(data / "train.csv")["Pawpularity"].mean())
    rows = {"mean": {"holdout": None, "test": round(float(np.sqrt(np.mean((truth - mean) ** 2))), 3)}}
    for name, extra in (("network", ["--loss", "mse"]), ("bce-scaled", ["--loss", "bce-scaled"]),
                        ("ridge", ["--head", "ridge"]), ("svr", ["--head", "svr"])):
        train_main(train_args(data, out / name, split, *extra))
        rows[name] = submit_row(data, [out / name], out / "subs", name)
    rows["blend"] = submit_row(data, [out / "network", out / "svr"], out / "subs", "blend")
    table = pd.DataFrame([{"row": k, **v} for k, v in rows.items()])
    table.to_csv(out / "regression_table.csv", index=False)
    draw(table, out / "regression_table.png")
    print(table.to_string(index=False))
    print(json.dumps(rows))
    return rows


def draw(table: pd.DataFrame, path: Path) -> None:
    """Draw the test RMSE of each row as a bar (lower is better)."""
    from src.core.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(table["row"], table["test"], color="#4a78b0")
    ax.set_ylabel("test RMSE (lower is better)")
    ax.set_title("a generated number-target competition")
    save(fig, path)


if __name__ == "__main__":
    main()

"""The recipe options against the plain recipe on the demo, in one sitting: `python benchmarks/recipe_table.py`.

Trains small_resnet from random weights on data/demo (built if missing; data/demo/solution.csv
holds the test labels) with a shortened `make demo` recipe (--augment light --no-flip: a
mirrored digit is another digit; stage 1 24x24 for 4 epochs at 3e-3, stage 2 32x32 for 2 epochs
at 1e-3, --decay-steps 100), every run on the same split file and seed, then submits each with
--solution. Rows:
  plain     the recipe as is
  ema       + --ema 0.98: the average's horizon, 1/(1-0.98) = 50 updates (~1.4 epochs of the
            demo's ~36 batches), fits inside stage 2's ~72 updates; 0.99 (100) would still lean
            on stage 1's weights at the end, 0.999 on the random start
  cosine    + --schedule cosine --lr-warmup-epochs 1
  dihedral  the plain run submitted with the eight dihedral views (digits are not rotation-
            invariant: whatever it shows, it shows)
  full-fit  --full-fit of the plain run: every training image, the plain run's chosen epochs;
            no holdout (its submit names the plain run's as the reference, not shown here)
Holdout: src.submit's holdout score of the run's kept stage (the kit's metric, accuracy here)
with the row's views; test: the submission scored against solution.csv. train_s and submit_s
are wall seconds (dihedral reuses the plain run's training: train_s 0). One seed, one split:
read differences of a point or two as noise. Writes recipe_table.csv and recipe_table.png
into --out; the last line is one JSON object {variant: {"holdout", "test", "train_s", "submit_s"}}.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

DIHEDRAL = "identity,hflip,vflip,rot90,rot180,rot270,transpose,transpose_rot90"
EXTRA = {"plain": [], "ema": ["--ema", "0.98"], "cosine": ["--schedule", "cosine", "--lr-warmup-epochs", "1"]}


def recipe(args) -> list:
    """Return the shared training flags: the shortened demo recipe on one split file and seed."""
    return ["--data", args.data, "--backbone", "small_resnet", "--weights", "none", "--augment", "light",
            "--no-flip", "--stage1-size", str(args.stage1_size), str(args.stage1_size),
            "--stage1-epochs", str(args.stage1_epochs), "--stage1-lr", "3e-3",
            "--stage2-size", str(args.stage2_size), str(args.stage2_size),
            "--stage2-epochs", str(args.stage2_epochs), "--stage2-lr", "1e-3", "--decay-steps", "100",
            "--seed", str(args.seed)]


def train_run(argv: list) -> tuple:
    """Train one run from flags; return (seconds, the training summary)."""
    from src.core.config import parse_config
    from src.core.settings import TrainConfig
    from src.training.two_stage import train

    start = time.perf_counter()
    summary = train(parse_config(TrainConfig, argv))
    return time.perf_counter() - start, summary


def submit_run(args, run: Path, name: str, views: str = "") -> tuple:
    """Submit one run against solution.csv; return (seconds, holdout score or None, test accuracy)."""
    from src.core.config import parse_config
    from src.core.submit_settings import SubmitConfig
    from src.inference.submission import submit

    argv = ["--data", args.data, "--run", str(run), "--name", name, "--out", str(Path(args.out) / "submissions"),
            "--overwrite", "--solution", str(Path(args.data) / "solution.csv")]
    start = time.perf_counter()
    result = submit(parse_config(SubmitConfig, argv + (["--tta-views", views] if views else [])))
    seconds = time.perf_counter() - start
    last = result["scores"][-1]  # the run's row with its views (a full-fit's: the reference's score)
    holdout = None if "full-fit" in str(last["run"]) else float(last["score"])
    return seconds, holdout, float(result["test_accuracy"])


def measure(args) -> dict:
    """Train and submit every variant in one sitting; return {variant: row}."""
    out, rows = Path(args.out), {}
    split = ["--split-file", str(out / "split.csv")]
    for name, extra in EXTRA.items():
        train_s, summary = train_run([*recipe(args), *split, *extra, "--out", str(out / name)])
        submit_s, holdout, test = submit_run(args, out / name, name)
        rows[name] = {"holdout": holdout, "test": test, "train_s": train_s, "submit_s": submit_s,
                      "kept": summary.get("kept", "")}
        print(f"{name}: holdout {holdout:.4f}, test {test:.4f}, train {train_s:.0f} s", flush=True)
        if name == "plain":
            submit_s, holdout, test = submit_run(args, out / name, "dihedral", DIHEDRAL)
            rows["dihedral"] = {"holdout": holdout, "test": test, "train_s": 0.0, "submit_s": submit_s,
                                "kept": summary.get("kept", "")}
            print(f"dihedral: holdout {holdout:.4f}, test {test:.4f}", flush=True)
    train_s, summary = train_run(["--data", args.data, "--full-fit", str(out / "plain"),
                                  "--out", str(out / "plain-fullfit")])
    submit_s, _, test = submit_run(args, out / "plain-fullfit", "full-fit")
    rows["full-fit"] = {"holdout": None, "test": test, "train_s": train_s, "submit_s": submit_s,
                        "kept": summary.get("kept", "")}
    print(f"full-fit: (no holdout), test {test:.4f}, train {train_s:.0f} s", flush=True)
    return rows


def write_outputs(rows: dict, out: Path):
    """Write recipe_table.csv and a bar chart recipe_table.png into out; return the table."""
    import numpy as np
    import pandas as pd

    from src.core.files import write_csv
    from src.core.plots import pyplot, save

    table = pd.DataFrame([{"variant": k, **v} for k, v in rows.items()])
    write_csv(out / "recipe_table.csv", table)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["holdout"].fillna(0).to_numpy(float), width=0.4, label="holdout", color="#4C72B0")
    ax.bar(x + 0.2, table["test"], width=0.4, label="demo test", color="#DD8452")
    missing = table["holdout"].isna()  # None becomes NaN in the frame
    ax.set_xticks(x, [v + ("\n(no holdout)" if m else "") for v, m in zip(table["variant"], missing)])
    low = float(np.nanmin(table[["holdout", "test"]].to_numpy(float)))
    ax.set(title="demo accuracy per recipe option (one seed)", ylabel="accuracy", ylim=(max(0.0, low - 0.1), 1.1))
    ax.legend(loc="upper center", ncol=2)
    save(fig, out / "recipe_table.png")
    return table


def main() -> None:
    import pandas as pd

    from src.core.settings import DemoConfig
    from src.data.demo_data import build_demo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--out", default="runs/bench/recipe-table")
    parser.add_argument("--stage1-size", type=int, default=24)
    parser.add_argument("--stage2-size", type=int, default=32)
    parser.add_argument("--stage1-epochs", type=int, default=4)
    parser.add_argument("--stage2-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.data == "data/demo":
        build_demo(DemoConfig(out=args.data))
    out = Path(args.out)
    for folder in ["plain", "ema", "cosine", "plain-fullfit", "submissions", "split.csv"]:
        path = out / folder  # this benchmark's own outputs: one sitting, no run resumed from an earlier one
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    rows = measure(args)
    table = write_outputs(rows, out)
    shown = table.assign(holdout=["(no holdout)" if pd.isna(h) else f"{h:.4f}" for h in table["holdout"]],
                         test=table["test"].map("{:.4f}".format), train_s=table["train_s"].map("{:.0f}".format),
                         submit_s=table["submit_s"].map("{:.0f}".format))
    print(shown.to_string(index=False))
    print(f"wrote {out / 'recipe_table.csv'} and {out / 'recipe_table.png'}")
    print(json.dumps({k: {"holdout": None if v["holdout"] is None else round(v["holdout"], 4),
                          "test": round(v["test"], 4), "train_s": round(v["train_s"], 1),
                          "submit_s": round(v["submit_s"], 1)} for k, v in rows.items()}))


if __name__ == "__main__":
    main()

"""The benchmark matrix: `python benchmarks/matrix.py [OUT] [ROWS]` (issue 38; about 40 minutes here alone).

Per task kind three generated competitions (benchmarks/matrix_data.py: scenes of shapes, unlike the data each
kind was built on) that differ in size, image size, difficulty and seed. Each is run as a new user runs it: the
metric recorded as `src.kaggle_api download` records it, the solution held out of the data folder,
`src.train --data D --backbone small_resnet --weights none` with the stage sizes and epochs below and nothing
else, then `src.submit --data D --run R --tta auto`; scored on the held-back solution beside
- the trivial answer (the training classes' prior, each tag's rate with the best threshold, the training mean,
  the most frequent individuals with new_individual first), and
- a plain baseline written here: a four-block Keras CNN (conv-BN-ReLU-pool, global pooling, dropout, one Dense)
  trained with Adam 1e-3 for as many epochs as the kit's two stages together, at stage 2's size, on the same
  training images (softmax; sigmoid tags at 0.3; a linear output on the standardised number; softmax over the
  known individuals, new_individual inserted first below a probability of 0.5).
Rows run one by one and land in OUT/matrix.csv as they finish (a rerun skips finished rows; ROWS: comma-separated
names to run again; --baseline-only measures the baseline and the trivial answer again beside the kept kit
submissions). docs/benchmarks.md's matrix table is written from matrix.csv. The last line is one JSON object:
per row the kit's, the baseline's and the trivial answer's test scores, and whether the kit is no worse.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.matrix_data import SPECS, write_matrix_competition  # noqa: E402
from benchmarks.matrix_scores import baseline_answers, score_answers, trivial_answers  # noqa: E402
from src.core.metric_choice import higher_is_better  # noqa: E402

# name: (kind, training images, image size (stage 1, stage 2), difficulty, seed, epochs (stage 1, stage 2))
ROWS = {
    "binary-a": ("binary", 300, (32, 40), 0.3, 1, (12, 4)),
    "binary-b": ("binary", 600, (40, 48), 0.6, 2, (12, 4)),
    "binary-c": ("binary", 400, (24, 32), 0.9, 3, (12, 4)),
    "grades-a": ("grades", 300, (32, 40), 0.3, 4, (12, 4)),
    "grades-b": ("grades", 600, (40, 48), 0.6, 5, (12, 4)),
    "grades-c": ("grades", 400, (24, 32), 0.9, 6, (12, 4)),
    "tags-a": ("tags", 300, (32, 40), 0.3, 7, (12, 4)),
    "tags-b": ("tags", 600, (40, 48), 0.6, 8, (12, 4)),
    "tags-c": ("tags", 400, (24, 32), 0.9, 9, (12, 4)),
    "number-a": ("number", 300, (32, 40), 0.3, 10, (12, 4)),
    "number-b": ("number", 600, (40, 48), 0.6, 11, (12, 4)),
    "number-c": ("number", 400, (24, 32), 0.9, 12, (12, 4)),
    "identity-a": ("identity", 300, (32, 40), 0.3, 13, (12, 4)),
    "identity-b": ("identity", 600, (40, 48), 0.6, 14, (12, 4)),
    "identity-c": ("identity", 400, (24, 32), 0.9, 15, (12, 4)),
}
TEST_IMAGES = 200


def run_kit(data: Path, work: Path, sizes: tuple, epochs: tuple) -> tuple:
    """Train and submit with the kit as a new user would; return (the submission frame, minutes taken)."""
    from src.submit import main as submit_main
    from src.train import main as train_main

    started = time.monotonic()
    train_main(["--data", str(data), "--backbone", "small_resnet", "--weights", "none",
                "--stage1-size", str(sizes[0]), str(sizes[0]), "--stage2-size", str(sizes[1]), str(sizes[1]),
                "--stage1-epochs", str(epochs[0]), "--stage2-epochs", str(epochs[1]), "--out", str(work / "run")])
    result = submit_main(["--data", str(data), "--run", str(work / "run"), "--tta", "auto",
                          "--out", str(work / "subs"), "--name", "kit", "--overwrite"])
    return pd.read_csv(result["path"]), (time.monotonic() - started) / 60


def measure(name: str, out: Path, baseline_only: bool = False, kit_minutes: float = float("nan")) -> dict:
    """Generate one row's competition, run the kit and the baseline on it; return the row's scores.

    baseline_only: the competition and the kit's submission are kept from an earlier run; the baseline and the
    trivial answer are measured again (the baseline changed)."""
    kind, train, sizes, difficulty, seed, epochs = ROWS[name]
    work = out / name
    if baseline_only:
        data, spec = work / name, SPECS[kind]
        kit, minutes = pd.read_csv(work / "subs" / "kit.csv"), kit_minutes
    else:
        shutil.rmtree(work, ignore_errors=True)
        data, spec = write_matrix_competition(kind, work, train=train, test=TEST_IMAGES, size=sizes[1],
                                              difficulty=difficulty, seed=seed)
        kit, minutes = run_kit(data, work, sizes, epochs)
    solution = pd.read_csv(work / "solution.csv")
    started = time.monotonic()
    baseline = baseline_answers(kind, data, spec, solution, sizes[1], sum(epochs), seed)
    baseline_minutes = (time.monotonic() - started) / 60
    trivial = trivial_answers(kind, data, spec, solution)
    scores = {who: score_answers(kind, spec, frame, solution) for who, frame in
              (("kit", kit), ("baseline", baseline), ("trivial", trivial))}
    sign = 1 if higher_is_better(spec.metric) else -1
    return {"row": name, "kind": kind, "metric": spec.metric, "train": train, "size": f"{sizes[0]}/{sizes[1]}",
            "difficulty": difficulty, "seed": seed, **{k: round(v, 4) for k, v in scores.items()},
            "kit_minutes": round(minutes, 2), "baseline_minutes": round(baseline_minutes, 2),
            "no_worse": bool(sign * (scores["kit"] - scores["baseline"]) >= 0)}


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the matrix as docs/benchmarks.md shows it, between its markers (the rest of the page kept)."""
    lines = ["| row | kind | metric | train / px / difficulty | kit | plain CNN | trivial | kit no worse |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table.itertuples():
        lines.append(f"| {r.row} | {r.kind} | {r.metric} | {r.train} / {r.size} / {r.difficulty} | {r.kit:.4f} | "
                     f"{r.baseline:.4f} | {r.trivial:.4f} | {'yes' if r.no_worse else '**no**'} |")
    start, end = "<!-- matrix:start -->", "<!-- matrix:end -->"
    page = path.read_text()
    block = "\n".join([start, *lines, end])
    page = page[:page.index(start)] + block + page[page.index(end) + len(end):] if start in page else \
        page.rstrip() + "\n\n" + block + "\n"
    path.write_text(page)


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    baseline_only = "--baseline-only" in argv
    argv = [a for a in argv if a != "--baseline-only"]
    out = Path(argv[0] if argv else "runs/matrix")
    again = set(argv[1].split(",")) if len(argv) > 1 else set()
    out.mkdir(parents=True, exist_ok=True)
    table_file = out / "matrix.csv"
    table = pd.read_csv(table_file) if table_file.is_file() else pd.DataFrame()
    for name in ROWS:
        done = len(table) and name in set(table["row"])
        if (done and name not in again and not baseline_only) or (baseline_only and not done):
            continue
        print(f"== {name}", flush=True)
        minutes = float(table.set_index("row").loc[name, "kit_minutes"]) if baseline_only else float("nan")
        row = measure(name, out, baseline_only, minutes)
        table = pd.concat([table[table["row"] != name] if len(table) else table, pd.DataFrame([row])],
                          ignore_index=True)
        table = table.set_index("row").loc[[n for n in ROWS if n in set(table["row"])]].reset_index()
        table.to_csv(table_file, index=False)
        print(json.dumps(row), flush=True)
    write_table(table, Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")
    print(table.to_string(index=False))
    result = {r["row"]: {k: r[k] for k in ("metric", "kit", "baseline", "trivial", "no_worse")}
              for r in table.to_dict("records")}
    print(json.dumps({"rows": result, "kit_no_worse_everywhere": bool(table["no_worse"].all())}))
    return result


if __name__ == "__main__":
    main()

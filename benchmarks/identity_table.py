"""Identities on a generated Happywhale-like competition, held back: `python benchmarks/identity_table.py`.

Writes an identity competition (src.data.identity_demo: 220 identities, 47% with one photo, 48 px, three species
in a species column; a test of one new photo per known identity plus 15% photos of identities never seen, answer
'new_individual'), moves its solution.csv out of the data (held back: the kit never sees it), then scores on the
test (MAP@5 against the held-back solution):
  most_frequent      'new_individual' and the four most frequent training identities, every row
  softmax_top5       the kit before identities: the sample without 'new_individual' (so a label task, top-5
                     format), --min-class-count 2 and the --val-fraction the split asks for, softmax top 5
  embedding          the held-back check: trained with only --metric map@5 given (besides the offline recipe:
                     tiny_resnet from random weights, sizes, epochs), submitted with only --run: the kit reads the
                     identity task, GeM, ArcFace, nearest neighbours over training and holdout images, the new
                     answer at the holdout's threshold
  embedding_blend    the same run submitted with --identity-blend 0.5 (the margin head's cosines mixed in)
  embedding_species  the same recipe with --targets Id,species --loss-weights 1,0.3 (a species head beside)
Every network: tiny_resnet from random weights, the same epochs and sizes. One seed: read a few points as noise.
The last line is one JSON object {row: MAP@5}, with the embedding's holdout MAP@5 and threshold beside.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import pandas as pd  # noqa: E402

from src.data.identity_demo import NEW, write_identity_competition  # noqa: E402


def map5(predicted: pd.Series, truth: pd.Series) -> float:
    """Return MAP@5 of space-separated answers against one true answer per row."""
    total = 0.0
    for answers, true in zip(predicted.astype(str), truth.astype(str)):
        tokens = answers.split()[:5]
        total += 1.0 / (tokens.index(true) + 1) if true in tokens else 0.0
    return total / len(truth)


def kit(command: str, *args, cwd: Path = REPO) -> str:
    """Run `python -m src.<command> ARGS` in cwd (its runs/splits/ there); return what it printed (raise when it
    failed)."""
    done = subprocess.run([sys.executable, "-m", f"src.{command}", *map(str, args)], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode:
        raise SystemExit(f"src.{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def recipe(args) -> list:
    """Return the training flags both networks share."""
    return ["--backbone", "tiny_resnet", "--weights", "none", "--stage1-size", args.size, args.size,
            "--stage2-size", args.size, args.size, "--stage1-epochs", args.epochs, "--stage2-epochs", 2,
            "--stage1-lr", 3e-3, "--stage2-lr", 3e-4, "--batch-size", 32, "--seed", args.seed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/identity_table")
    parser.add_argument("--identities", type=int, default=220)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    data = write_identity_competition(out / "whales", args.identities, args.size, args.seed, species=3)
    shutil.move(str(data / "solution.csv"), out / "solution.csv")  # held back: not in the data the kit reads
    solution = pd.read_csv(out / "solution.csv")
    train = pd.read_csv(data / "train.csv")
    frequent = " ".join([NEW, *train["Id"].value_counts().index[:4]])
    table = {"most_frequent": map5(pd.Series([frequent] * len(solution)), solution["Id"])}

    plain = out / "whales_no_new"  # the same images; the sample no longer names the new answer
    shutil.copytree(data, plain)
    sample = pd.read_csv(plain / "sample_submission.csv")
    sample.assign(Id=" ".join(train["Id"].value_counts().index[:5])).to_csv(plain / "sample_submission.csv", index=False)
    singles = int((train["Id"].value_counts() == 1).sum())
    kept = train["Id"].value_counts().pipe(lambda c: c[c >= 2])
    fraction = round(max(0.3, len(kept) / kept.sum() + 0.02), 2)  # one image of each class on both sides
    kit("train", "--data", plain, "--metric", "map@5", "--min-class-count", 2, "--val-fraction", fraction,
        *recipe(args), "--out", out / "softmax", cwd=out)
    kit("submit", "--data", plain, "--run", out / "softmax", "--name", "softmax", "--out", out, cwd=out)
    table["softmax_top5"] = map5(pd.read_csv(out / "softmax.csv")["Id"], solution["Id"])

    said = kit("train", "--data", data, "--metric", "map@5", *recipe(args), "--out", out / "embedding", cwd=out)
    print(next(line for line in said.splitlines() if line.startswith("task:")))
    kit("submit", "--data", data, "--run", out / "embedding", "--name", "embedding", "--out", out, cwd=out)
    table["embedding"] = map5(pd.read_csv(out / "embedding.csv")["Id"], solution["Id"])
    record = json.loads((out / "embedding.json").read_text())
    kit("submit", "--data", data, "--run", out / "embedding", "--name", "embedding_blend", "--out", out,
        "--identity-blend", 0.5, cwd=out)
    table["embedding_blend"] = map5(pd.read_csv(out / "embedding_blend.csv")["Id"], solution["Id"])
    blend_record = json.loads((out / "embedding_blend.json").read_text())

    said = kit("train", "--data", data, "--metric", "map@5", "--targets", "Id,species", "--loss-weights", "1,0.3",
               *recipe(args), "--out", out / "species", cwd=out)
    print(next(line for line in said.splitlines() if line.startswith("auxiliary head species")))
    kit("submit", "--data", data, "--run", out / "species", "--name", "species", "--out", out, cwd=out)
    table["embedding_species"] = map5(pd.read_csv(out / "species.csv")["Id"], solution["Id"])
    species_record = json.loads((out / "species.json").read_text())

    print(f"test images {len(solution)} ({int((solution['Id'] == NEW).sum())} new, solution held back); training "
          f"identities {train['Id'].nunique()} ({singles} with one photo); the softmax dropped them "
          "(--min-class-count 2)")
    for name, value in table.items():
        print(f"{name:18s} MAP@5 {value:.4f}")
    print(json.dumps({**{k: round(v, 4) for k, v in table.items()},
                      "embedding_holdout": round(record["holdout_map"], 4), "threshold": record["threshold"],
                      "blend_holdout": round(blend_record["holdout_map"], 4),
                      "species_holdout": round(species_record["holdout_map"], 4)}))


if __name__ == "__main__":
    main()

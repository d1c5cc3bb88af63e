"""A number target held back: `python benchmarks/number_heldback.py [OUT]` (issue 31's check, about 35 s here).

A generated Pawpularity-like competition (benchmarks/number_competition.py) whose solution.csv is moved out of the
data folder, trained with only `--metric rmse` given (plus the offline flags: the kit's own small_resnet from
random weights, one 32 px stage), submitted with no flag but the run, and scored on the held-back labels. The last
line is one JSON object: the submission's test RMSE beside always predicting the training mean.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.number_competition import write_number_competition  # noqa: E402
from src.submit import main as submit_main  # noqa: E402
from src.train import main as train_main  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/number_heldback")
shutil.rmtree(out, ignore_errors=True)
data = write_number_competition(out / "data", train=400, test=150, size=32, seed=3)
truth = pd.read_csv(data / "solution.csv")["Pawpularity"].to_numpy(float)
mean = float(pd.read_csv(data / "train.csv")["Pawpularity"].mean())
solution = out / "solution.csv"
shutil.move(str(data / "solution.csv"), solution)  # held back: not in the data
train_main(["--data", str(data), "--metric", "rmse", "--backbone", "small_resnet", "--weights", "none",
            "--stages", "1", "--stage1-size", "32", "32", "--stage1-epochs", "10", "--stage1-lr", "3e-3",
            "--out", str(out / "run")])
result = submit_main(["--data", str(data), "--run", str(out / "run"), "--out", str(out / "subs"), "--name", "s"])
frame = pd.read_csv(result["path"]).merge(pd.read_csv(solution), on="Id", suffixes=("", "_true"))
rmse = float(np.sqrt(np.mean((frame["Pawpularity"] - frame["Pawpularity_true"]) ** 2)))
print(json.dumps({"test_rmse": round(rmse, 3), "mean_rmse": round(float(np.sqrt(np.mean((truth - mean) ** 2))), 3),
                  "rows": len(frame), "numbers": bool(frame["Pawpularity"].dtype.kind == "f")}))

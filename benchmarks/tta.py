"""Test-time augmentation cost and benefit, in one run: `python benchmarks/tta.py`.

On the demo test set, times plain prediction and k-view TTA for k = 2 and 4 (interleaved
rounds, best of each: the machine is shared and noisy) and prints the ratios; then scores
plain and 4-view TTA on the run's holdout images. Uses the demo run that `make demo` trains
(trained here if missing). Views without flips: a mirrored digit is another digit. Target:
k-view TTA <= 1.1 x k x plain time, and TTA holdout accuracy >= plain. The last line is one
JSON object: plain_s, tta2_s, tta4_s, tta2_ratio, tta4_ratio, plain_acc, tta_acc.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

VIEWS = {1: ("identity",), 2: ("identity", "center_crop_90"),
         4: ("identity", "center_crop_90", "center_crop_95", "scale_105")}
DEMO_TRAIN = ["--backbone", "small_resnet", "--weights", "none", "--augment", "light", "--no-flip", "--stage1-size", "32", "32",
              "--stage1-epochs", "8", "--stage1-lr", "3e-3", "--stage2-size", "48", "48", "--stage2-epochs", "3",
              "--stage2-lr", "1e-3", "--decay-steps", "100", "--resume"]


def main() -> None:
    import numpy as np

    from src.data.competition import load_competition
    from src.core.config import DataOptions, parse_config
    from src.data.demo_data import build_demo
    from src.core.settings import DemoConfig
    from src.inference.prediction import build_run_model, load_run, predict_views
    from src.inference.views import combine_views
    from src.inference.prediction import holdout_frame
    from src.training.two_stage import train
    from src.core.settings import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--run", default="runs/demo-small_resnet")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    build_demo(DemoConfig(out=args.data))
    if not (Path(args.run) / "stage2.weights.h5").is_file():
        train(parse_config(TrainConfig, ["--data", args.data, "--out", args.run, *DEMO_TRAIN]))
    run = load_run(args.run)
    comp = load_competition(DataOptions(data=args.data))
    model = build_run_model(run)
    for views in VIEWS.values():  # trace each view set once before timing
        predict_views(run, comp.test.head(8), views, model=model)
    best = {k: float("inf") for k in VIEWS}
    for round_number in range(args.rounds):
        for k, views in VIEWS.items():
            start = time.perf_counter()
            predict_views(run, comp.test, views, model=model)
            best[k] = min(best[k], time.perf_counter() - start)
        print(f"round {round_number + 1}/{args.rounds}: " + ", ".join(f"{k} view(s) {s:.2f} s" for k, s in best.items()))
    val = holdout_frame(run, comp)
    y = run.class_map.encode(val[run.target])
    per_view = predict_views(run, val, VIEWS[4], model=model)
    plain_acc = float((per_view[0].argmax(axis=1) == y).mean())
    tta_acc = float((combine_views(per_view).argmax(axis=1) == y).mean())
    result = {"plain_s": round(best[1], 3), "tta2_s": round(best[2], 3), "tta4_s": round(best[4], 3),
              "tta2_ratio": round(best[2] / best[1], 3), "tta4_ratio": round(best[4] / best[1], 3),
              "plain_acc": round(plain_acc, 4), "tta_acc": round(tta_acc, 4)}
    print(f"{len(comp.test)} test images: plain {best[1]:.2f} s, 2 views {best[2]:.2f} s "
          f"({result['tta2_ratio']:.2f}x, limit 2.2x), 4 views {best[4]:.2f} s ({result['tta4_ratio']:.2f}x, limit 4.4x)")
    print(f"holdout accuracy: plain {plain_acc:.4f}, 4-view TTA {tta_acc:.4f}")
    print(json.dumps(result))
    assert np.isfinite(best[1])


if __name__ == "__main__":
    main()

"""Screening speed, `full` against `features` mode in one run: `python benchmarks/screening.py`.

On data/demo (built if missing), screens the same 3 backbones for 3 epochs with no
augmentation in both modes and prints both times, their ratio and both rankings. Weights are
random (nothing can be downloaded here); random ResNet50 features still separate the digits,
so the rankings mean something. Each features run starts from an empty feature cache. The
modes run in interleaved rounds and each keeps its best time (the machine is shared and
noisy). The last line is one JSON object: full_s, features_s, speedup, same_winner.
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


def run_mode(mode: str, args, work: Path):
    """Return (seconds, ranking) of one screening run in `mode` with a cold feature cache."""
    from src.core.config import parse_config
    from src.training.screening import screen
    from src.core.settings import ScreenConfig

    shutil.rmtree(work, ignore_errors=True)
    cfg = parse_config(ScreenConfig, [
        "--data", args.data, "--backbones", args.backbones, "--epochs", "3", "--augment", "none",
        "--mode", mode, "--weights", "none", "--image-size", str(args.size), str(args.size),
        "--out", str(work / "out"), "--features-cache", str(work / "features")])
    start = time.perf_counter()
    rows = screen(cfg)
    seconds = time.perf_counter() - start
    return seconds, [(r.backbone, round(float(r.best_val_accuracy), 4)) for r in rows.itertuples()]


def main() -> None:
    from src.data.demo_data import build_demo
    from src.core.settings import DemoConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--backbones", default="resnet50,efficientnet_b0,small_resnet")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default="runs/bench/screening")
    args = parser.parse_args()
    if args.data == "data/demo":
        build_demo(DemoConfig(out=args.data))
    best = {}
    rankings = {}
    for round_number in range(args.rounds):
        for mode in ("full", "features"):
            seconds, ranking = run_mode(mode, args, Path(args.work) / mode)
            print(f"round {round_number + 1}/{args.rounds}: {mode} {seconds:.1f} s, ranking {ranking}", flush=True)
            best[mode] = min(best.get(mode, float("inf")), seconds)
            rankings[mode] = ranking
    speedup = best["full"] / best["features"]
    same = rankings["full"][0][0] == rankings["features"][0][0]
    print(f"full: {best['full']:.1f} s, ranking {rankings['full']}")
    print(f"features: {best['features']:.1f} s, ranking {rankings['features']}")
    print(f"speedup: {speedup:.2f}x, same winner: {same}")
    print(json.dumps({"full_s": round(best["full"], 2), "features_s": round(best["features"], 2),
                      "speedup": round(speedup, 3), "same_winner": same}))


if __name__ == "__main__":
    main()

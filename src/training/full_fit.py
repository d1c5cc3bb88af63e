"""`--full-fit RUN`: train again on every training image, no holdout, with RUN's settings and chosen epochs.

    cfg = full_fit_config(cfg)          # RUN's config.json (its planned epochs: the schedules' length)
    stages = full_fit_stages(cfg, plan_stages(cfg))   # each stage stops at the epoch RUN kept

Kaggle's usual last step: the holdout has chosen the recipe and its epochs, so the images it held
back are trained on too. With no holdout nothing can pick an epoch or stop early: each stage
runs the epochs RUN's early stopping kept (its rate schedule still planned over RUN's planned
epochs, so a cosine's rate at each epoch is RUN's) and its last epoch is the stage's weights;
stage 2 starts from them. The full-fit ends at the stage RUN kept (RUN kept stage 1: no stage 2).

Settings: RUN's config.json. A flag set beside --full-fit (a value other than the default) that
differs from RUN's is refused when it changes the model, its classes, the stage plan or the
metric (RUN's epochs and score would describe another thing), and said otherwise (the reference
score was measured without it). Where the data sits and how the job runs are this command's.
"""
from __future__ import annotations

import dataclasses

from src.core.config import make_config
from src.core.settings import TrainConfig
from src.core.errors import KitError
from src.core.roles import names_where
from src.runs.reference import chosen_epochs, reference_run

# Each setting's role (src.core.roles, declared in src.core.settings) says what a full-fit does with it:
# own (where things are, how this process runs: a set flag wins, else RUN's value), refuse (the model, its
# classes, the plan, the metric: RUN's), unused (what held images out and chose RUN's epochs), take (the
# recipe: RUN's unless a flag says otherwise, which is said).
OWN, REFUSED, UNUSED = (names_where(TrainConfig, lambda role, kind=kind: role.in_full_fit == kind)
                        for kind in ("own", "refuse", "unused"))


def full_fit_config(cfg) -> TrainConfig:
    """Return the TrainConfig a --full-fit trains with: RUN's settings, every image, the last epoch kept, ending
    at RUN's kept stage. Its stage epochs stay RUN's planned ones (the schedules' length); full_fit_stages stops
    each stage at RUN's chosen epoch."""
    ref = reference_run(cfg.full_fit)
    theirs, default = ref.load_config(), TrainConfig()
    epochs, kept = chosen_epochs(ref), ref.state().kept
    # no holdout: nothing ranks epochs, so the reference's --average-top is not applied (its chosen epochs are)
    planned = {"final_stage": "last", "stages": 2 if kept == "stage2" else 1, "average_top": 0}
    values = {}
    for field in dataclasses.fields(TrainConfig):
        name = field.name
        mine, saved = getattr(cfg, name), getattr(theirs, name)
        given = mine != getattr(default, name) and mine != planned.get(name, saved)  # on --resume: the planned
        own = name in ("resume", "full_fit") or (name in OWN and mine != getattr(default, name))  # this command's
        values[name] = mine if own or (given and name not in REFUSED) else planned.get(name, saved)
        if name in OWN or not given or mine == saved:
            continue
        flag = f"--{name.replace('_', '-')}"
        if name in REFUSED:
            raise KitError(f"--full-fit {ref}: {flag} {mine!r} differs from the reference run's {saved!r}; a "
                           f"full-fit takes the reference's model, classes, stages, epochs and metric, or the epochs "
                           f"it chose and its score would describe another recipe: leave {flag} out")
        print(f"full-fit: {flag} {mine!r} differs from {ref}'s {saved!r}: " +
              ("unused, a full-fit holds nothing out" if name in UNUSED else
               "the reference score was measured without it"))
    values.update(out=cfg.out or f"{str(ref).rstrip('/')}-fullfit", full_fit=cfg.full_fit)
    resolved = make_config(TrainConfig, values, source=f"--full-fit {ref}")
    print(f"full-fit of {ref}: every training image trains (no holdout); epochs per stage as its early stopping "
          f"chose them: {', '.join(f'{s} {e}' for s, e in epochs.items() if s != 'stage2' or kept == 'stage2')}; "
          f"each stage keeps its last epoch; final stage {kept} (as {ref} kept)"
          + ("" if kept == "stage2" or "stage2" not in epochs else "; stage 2 is not trained"), flush=True)
    return resolved


def full_fit_stages(cfg, stages: list) -> list:
    """Return the stages a full-fit runs: each for the epochs its reference's early stopping kept, its rate
    schedule still planned over the reference's planned epochs (so the rates match the reference's, epoch by epoch).
    """
    chosen = chosen_epochs(reference_run(cfg.full_fit))
    return [dataclasses.replace(s, epochs=chosen[s.name], schedule_epochs=s.epochs) for s in stages]

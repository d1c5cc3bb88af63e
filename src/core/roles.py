"""What each setting of a training run is: its role, declared where the field is defined (opt(role=...)).

    role_of(TrainConfig, "cache").on_resume        # True: how images are cached is speed, not the result
    names_where(TrainConfig, lambda r: r.in_full_fit == "refuse")

Three jobs ask the roles instead of keeping lists of their own: a resumed run refuses a changed setting
unless its role may change on resume (src.runs.folder), a full-fit takes, refuses, ignores or keeps
each setting by its role (src.training.full_fit), and the ledger lists the settings whose role is an
option of the recipe (src.ledger). tests/test_layout.py fails on a TrainConfig field without a role.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Role:
    """How one kind of setting behaves when a run is resumed, refitted on every image, or listed."""

    meaning: str
    on_resume: bool    # may differ when the run is resumed
    in_full_fit: str   # own: the full-fit's own value (the reference's when left at the default);
    #                    refuse: the reference's, a different one is an error; unused: nothing held out, a
    #                    different one is said; take: the reference's unless given, a different one is said
    an_option: bool    # the ledger lists a value other than the default among the run's options


ROLES = {
    "task": Role("what is learned and scored: label columns, heads, the metric", False, "refuse", True),
    "model": Role("the network and the plan of its stages", False, "refuse", True),
    "length": Role("how long stages train and which stage is kept", True, "refuse", True),
    "recipe": Role("how the network trains: rates, augmentation, losses, added data", False, "take", True),
    "holdout": Role("what holds images out and chooses epochs", False, "unused", True),
    "source": Role("which files name the images and their labels", False, "refuse", False),
    "place": Role("where the data and the outputs sit now", True, "own", False),
    "session": Role("how this process runs: speed, limits, logs, resuming; never the result", True, "own", False),
    "reference": Role("the finished run a full-fit trains again", False, "own", True),
}


def role_of(cls, name: str) -> Role:
    """Return the Role a dataclass field declares; a field without one is a KeyError naming it."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    role = field.metadata.get("role", "")
    if role not in ROLES:
        raise KeyError(f"{cls.__name__}.{name} declares no role (opt(..., role=...): one of {', '.join(ROLES)})")
    return ROLES[role]


def names_where(cls, wanted) -> set:
    """Return the names of cls's fields whose Role satisfies wanted(role)."""
    return {f.name for f in dataclasses.fields(cls) if wanted(role_of(cls, f.name))}

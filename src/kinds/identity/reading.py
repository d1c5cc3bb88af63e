"""Identity competitions (Happywhale, Humpback Whale Identification): the new answer and the split.

    label, source = find_new_label(schema, train["Id"], opts.new_label)   # ('new_individual', 'from the sample')
    split = make_identity_split(train, "Id", opts)                         # fold: 0 validation, 1 training

An identity competition has many identities with few images each, and an answer that never appears among
the training labels: the test image shows an individual never seen (new_whale, new_individual). The sample
submission names it in (nearly) every row, the one value there the training labels lack, named as new
(new_..., unknown, other); ids the training set lacks otherwise are placeholders (Humpback's sample: top-k
labels). --new-label names it when the sample does not. Every identity
is kept: one with a single image trains and sits in the gallery, it just cannot be in the holdout. The
holdout holds one image of each identity with several, and a share of the identities whole, never in
training, whose holdout answer is the new one: so the new answer is scored before the test.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from src.core.errors import KitError
from src.data.class_maps import holds_tags

UNSEEN_SHARE = 0.05  # of the identities with two or more images: held out whole (the test's unseen ones)
SAMPLE_SHARE = 0.9   # a token the training labels never name, in this share of the sample's rows: the new answer
# ... when its name says so (new_whale, new_individual, unknown, other): an id the training set lacks is a placeholder
NEW_NAMES = re.compile(r"(new|unknown|unseen|other|others|none|unk|nomatch|no_match)([_\-. ].*)?|.*[_\-. ](new|unknown|unseen)")


def find_new_label(schema, labels: pd.Series, flag: str = "") -> tuple[str, str]:
    """Return (the new answer, where it was found), or ('', why not) when this is no identity competition.

    --new-label decides (checked against the sample); else the one value of a sample whose rows hold several
    labels that the training labels never name, in nearly every row, and whose name says it is new
    (Happywhale's 'new_individual w_... w_...'). Several such values are the sample's placeholders (Humpback's
    'new_whale w_1287fbc w_98baff9 ...', new_whale a training label): top-k labels, and the why says so (the
    task line's words). Never for tags (multi-label).
    """
    if flag:
        check_new_label_flag(schema, labels, flag)
        return flag, "--new-label"
    if schema is None or schema.sample is None or not len(schema.sample) or holds_tags(labels):
        return "", ""
    rows = schema.sample[schema.target_column].astype(str).str.split()
    if rows.str.len().min() < 2:
        return "", ""
    counts = absent_values(rows, labels)
    if counts.empty:
        return "", ""
    name = str(counts.index[0])
    if len(counts) == 1 and counts.iloc[0] >= SAMPLE_SHARE * len(rows) and says_new(name):
        return name, f"from the sample {schema.path.name}"
    return "", placeholder_note(counts, rows)


def absent_values(rows: pd.Series, labels: pd.Series) -> pd.Series:
    """Return the rows (a sample's values split) per value the training labels never name, most first."""
    known = {t for value in labels.astype(str) for t in value.split()}  # tags (Planet) are known words too
    return pd.Series([t for tokens in rows for t in set(tokens) if t not in known], dtype=object).value_counts()


def says_new(name: str) -> bool:
    """Return True when a value's name says it is the answer for one never seen: new_whale, unknown, other."""
    return NEW_NAMES.fullmatch(name.strip().lower()) is not None


def placeholder_note(counts: pd.Series, rows: pd.Series) -> str:
    """Return why a sample's values absent from training are no new answer: the task line's words."""
    k = int(rows.str.len().max())
    if len(counts) > 1:
        return (f"top {k}: the sample's {len(counts)} ids absent from training are placeholders, not a new answer; "
                "--new-label NAME names one")
    return (f"top {k}: the sample's id {counts.index[0]!r}, absent from training, is a placeholder, not a new "
            "answer (its name is not new_..., unknown, other ...; --new-label NAME names one)")


def check_new_label_flag(schema, labels: pd.Series, flag: str) -> None:
    """Refuse --new-label when it names a value neither the sample nor the training labels hold, while the sample
    holds one of its own that training lacks (new_whale against Happywhale's new_individual): a value the
    competition never scores."""
    if schema is None or schema.sample is None or not len(schema.sample) or holds_tags(labels):
        return
    rows = schema.sample[schema.target_column].astype(str).str.split()
    sample_values = {t for tokens in rows for t in tokens}
    if flag in sample_values or flag in set(labels.astype(str)):
        return
    counts = absent_values(rows, labels)
    if not counts.empty:
        raise KitError(f"--new-label {flag}: neither {schema.path.name} nor the training labels hold {flag!r}; "
                       f"the sample's value absent from training is {counts.index[0]!r} (in {int(counts.iloc[0])} "
                       f"of {len(rows)} rows): expected --new-label {counts.index[0]}, or none")
    print(f"warning: --new-label {flag}: neither {schema.path.name} nor the training labels hold {flag!r}; the "
          "submission writes it as the new answer: check that the competition scores this value", flush=True)


def drop_new_label_rows(train: pd.DataFrame, target: str, new_label: str) -> pd.DataFrame:
    """Return train without the images labelled with the new answer (Humpback's new_whale): no one identity."""
    new = train[target].astype(str) == new_label
    if new.any():
        print(f"identity: {int(new.sum())} training image(s) labelled {new_label!r} left out of the identities "
              "(they show individuals never named, not one identity)")
    if new.all():
        raise KitError(f"--new-label {new_label}: every training image of column {target} carries it; expected "
                       "the answer for an unseen identity, not the only label")
    return train[~new.to_numpy()]


def make_identity_split(train: pd.DataFrame, target: str, folds: int, val_fraction: float, seed: int) -> np.ndarray:
    """Return each image's fold: K folds (folds > 1), else 0 (holdout) and 1 (training).

    Single-image identities train in every fold (fold -1 with K folds, 1 otherwise). A share (UNSEEN_SHARE)
    of the others (at least one per fold) is held out whole, in one fold; the rest deal their images over the folds, so each
    holdout keeps at least one image of every identity it holds in training. One split: one image (or
    val_fraction of them, when more) of known identities until the holdout holds val_fraction of the images, so
    it mirrors a test of known individuals plus unseen ones. Why not one of every identity: with 1-6 photos per
    individual that took a third of the training images (93 of 300), and the network learned from the rest only.
    """
    rng = np.random.default_rng(seed)
    labels = train[target].astype(str).to_numpy()
    k = folds if folds > 1 else 1
    fold = np.full(len(labels), -1 if k > 1 else 1, dtype=int)
    groups = pd.Series(np.arange(len(labels))).groupby(labels).apply(list)
    several = [name for name, rows in groups.items() if len(rows) >= 2]
    if not several:
        raise KitError(f"column {target}: every identity has one image, so none can be held out and still be "
                       "known: an identity split needs some with two or more")
    rng.shuffle(several)
    # at least two held out whole: one unseen identity's few images were too few to choose the new answer's threshold
    unseen = set(several[:min(len(several) - 1, max(k, 2, round(UNSEEN_SHARE * len(several))))] or several[:1])
    # one split: the known identities' share of the holdout, at least one image
    budget = max(1, round(val_fraction * len(labels)) - int(np.isin(labels, list(unseen)).sum()))
    for number, name in enumerate(several):
        rows = rng.permutation(groups[name])
        if name in unseen:
            fold[rows] = number % k if k > 1 else 0
        elif k > 1:
            fold[rows] = (np.arange(len(rows)) + rng.integers(k)) % k
        elif budget > 0:
            take = max(1, min(len(rows) - 1, int(val_fraction * len(rows))))
            fold[rows[:take]], budget = 0, budget - take
    return fold


def unseen_identities(split: pd.DataFrame, target: str) -> set:
    """Return the identities of the holdout that no training image shows (their answer is the new one)."""
    seen = set(split.loc[split["split"] == "train", target].astype(str))
    return set(split.loc[split["split"] == "val", target].astype(str)) - seen


def describe_identity_split(split: pd.DataFrame, target: str, new_label: str) -> str:
    """Return the split's line: holdout images of known identities, of unseen ones, single-image identities."""
    val = split[split["split"] == "val"]
    unseen = unseen_identities(split, target)
    new = int(val[target].astype(str).isin(unseen).sum())
    single = int((split[target].value_counts() == 1).sum())
    return (f"identity split: holdout {len(val)} image(s): {len(val) - new} of known identities, {new} of "
            f"{len(unseen)} identities held out whole (answer {new_label!r}); {single} single-image identities "
            "train only")

"""Identities by nearest neighbours: each image's best cosine per known identity, the new answer at a threshold.

    scores = identity_scores(query, gallery, gallery_classes, classes)      # (n, identities), best cosine each
    scores = blend_scores(scores, head_scores(query, centres, trained), w)  # optional: --identity-blend w
    chosen = choose_threshold(scores, truth, k=5)                           # on the holdout, for MAP@5
    ranked = rank_with_new(scores, chosen.threshold, k=5)                   # index `identities` = the new answer

Why nearest neighbours and not the softmax: an identity with one photo, or one added at submit (the
holdout's images join the gallery), is found by its photos' embeddings without retraining, and an image
far from every known photo is the new answer. The new answer ranks above every identity whose best cosine
is below the threshold; the threshold is chosen on a holdout that holds unseen identities (src.kinds.identity.reading).
src.submit --identity-blend W mixes in the margin head's own cosine to each identity's centre, the softmax's
view of the same embedding, before the threshold is chosen.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

MISSING = -2.0   # the score of an identity with no gallery image: below any cosine, so below any threshold
GRID = np.round(np.arange(-1.0, 1.0001, 0.01), 2)
EMBEDDINGS = "embeddings.npz"   # in a run folder: every labelled image's embedding (the gallery)
IDENTITY = "identity.json"      # in a run folder: the new answer's threshold and the holdout's scores
CHUNK = 2048     # query rows per block: a (CHUNK, gallery) similarity matrix at a time


@dataclasses.dataclass(frozen=True)
class Threshold:
    """The new answer's threshold chosen on a holdout, the metric there, and the metric without the new answer."""

    threshold: float
    score: float
    without: float     # the new answer never in the top k (what the softmax's top-k gives)

    def line(self, new_label: str, metric: str) -> str:
        return (f"new answer {new_label!r} ranked above identities whose best similarity is at most "
                f"{self.threshold:.2f}, chosen on the holdout for {metric}: {self.score:.4f} (never inserted: "
                f"{self.without:.4f})")


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Return the rows scaled to length 1 (cosine similarity is then a dot product)."""
    embeddings = np.asarray(embeddings, np.float32)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def joined(parts: list) -> np.ndarray:
    """Return several models' embeddings of the same images as one: each normalised, concatenated, over sqrt(M).

    The cosine of the joined embeddings is the mean of the models' cosines: how runs and folds, whose
    embedding spaces differ, are put together (an average of the raw vectors would mix unrelated axes).
    """
    return np.concatenate([normalise(p) for p in parts], axis=1) / np.sqrt(len(parts))


def identity_scores(query: np.ndarray, gallery: np.ndarray, gallery_classes: np.ndarray, classes: int) -> np.ndarray:
    """Return (n, classes): each query's best cosine to any gallery image of each identity (MISSING: none)."""
    query, gallery = normalise(query), normalise(gallery)
    gallery_classes = np.asarray(gallery_classes, int)
    scores = np.full((len(query), classes), MISSING, np.float32)
    order = np.argsort(gallery_classes, kind="stable")
    present, starts = np.unique(gallery_classes[order], return_index=True)
    for begin in range(0, len(query), CHUNK):
        similarity = query[begin:begin + CHUNK] @ gallery[order].T
        scores[begin:begin + CHUNK, present] = np.maximum.reduceat(similarity, starts, axis=1)
    return scores


def head_scores(embeddings: np.ndarray, centres: np.ndarray, trained: np.ndarray) -> np.ndarray:
    """Return (n, identities): each embedding's cosine to each identity's margin-head centre, the closest sub-center
    (centres: src.models.embedding.margin_centres); NaN for identities not `trained` (no training photo: their
    centre was only pushed away from the others', it says nothing of them)."""
    cosine = np.einsum("nd,dck->nck", normalise(embeddings), centres).max(axis=2)
    return np.where(np.asarray(trained, bool)[None, :], cosine, np.nan).astype(np.float32)


def mean_head_scores(parts: list) -> np.ndarray:
    """Return the mean of several models' head_scores per cell over those with a centre there (NaN: none has)."""
    stacked = np.stack(parts)
    count = (~np.isnan(stacked)).sum(axis=0)
    return np.where(count > 0, np.nansum(stacked, axis=0) / np.maximum(count, 1), np.nan).astype(np.float32)


def blend_scores(nearest: np.ndarray, head: np.ndarray | None, weight: float) -> np.ndarray:
    """Return (1 - weight) * nearest + weight * head per identity (src.submit --identity-blend), still cosines.

    An identity with no gallery image stays MISSING (no photo to answer it by). One the head has no centre for
    (NaN: at submit, a holdout identity held out whole) takes the image's best head cosine over the identities
    that have one: the benefit of the doubt, so against the head's favourite its neighbours decide, as without
    the blend. Why not its neighbours' score alone: that sits near 1 beside the centres' lower cosines and put
    such identities above every other; the median sank them below the head's favourites (measured: their test
    MAP@5 1.00 -> 0.02). weight 0 (or no head): the nearest neighbours' scores unchanged (the same array).
    """
    if weight <= 0 or head is None:
        return nearest
    scored = ~np.isnan(head) & (nearest != MISSING)
    best = np.where(scored, head, -np.inf).max(axis=1, keepdims=True)
    head = np.where(np.isnan(head), np.where(np.isfinite(best), best, np.nan), head)
    mixed = (1.0 - weight) * nearest + weight * np.nan_to_num(head)
    return np.where((nearest == MISSING) | np.isnan(head), nearest, mixed).astype(np.float32)


def rank_with_new(scores: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """Return (n, k) answers best first: identity indices, and scores.shape[1] for the new answer.

    The new answer goes above every identity whose best cosine is at or below the threshold.
    """
    # the new answer's column first: a stable sort puts it above identities scoring exactly the threshold
    with_new = np.concatenate([np.full((len(scores), 1), threshold, np.float32), scores.astype(np.float32)], axis=1)
    ranked = np.argsort(-with_new, axis=1, kind="stable")[:, :k]
    return np.where(ranked == 0, scores.shape[1], ranked - 1)


def map_at_k(ranked: np.ndarray, truth: np.ndarray) -> float:
    """Return the mean average precision of ranked answers (n, k) against one true answer per row."""
    hits = ranked == np.asarray(truth)[:, None]
    return float((hits / np.arange(1, ranked.shape[1] + 1)).sum(axis=1).mean()) if len(ranked) else float("nan")


def map_by_threshold(scores: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Return MAP@k at each threshold of GRID on (scores, truth); truth scores.shape[1] means the new answer.

    Vectorised (no sort per threshold): the new answer's place is one plus the identities above the
    threshold; the true identity's, its rank plus one when it scores at or below the threshold.
    """
    new = scores.shape[1]
    top = -np.sort(-scores, axis=1)[:, :k]                                  # (n, k) best scores
    known = truth != new
    true_score = np.where(known, scores[np.arange(len(truth)), np.minimum(truth, new - 1)], MISSING)
    rank = 1 + (scores > true_score[:, None]).sum(axis=1)                    # the true identity's rank
    results = []
    for t in GRID.astype(np.float32):  # the scores' precision, as rank_with_new compares
        place = np.where(known, rank + (true_score <= t), 1 + (top > t).sum(axis=1))
        results.append(float(np.where(place <= k, 1.0 / place, 0.0).mean()))
    return np.array(results)


def choose_threshold(scores: np.ndarray, truth: np.ndarray, k: int) -> Threshold:
    """Return the threshold on GRID with the best MAP@k on (scores, truth); truth scores.shape[1] = the new answer.

    Ties go to the lower threshold (the new answer inserted less often).
    """
    results = map_by_threshold(scores, truth, k)
    best = int(np.argmax(results))
    known = truth != scores.shape[1]
    true_score = np.where(known, scores[np.arange(len(truth)), np.minimum(truth, scores.shape[1] - 1)], MISSING)
    rank = 1 + (scores > true_score[:, None]).sum(axis=1)
    without = float(np.where(known & (rank <= k), 1.0 / rank, 0.0).mean())
    return Threshold(float(GRID[best]), float(results[best]), without)


def identity_truth(labels, class_map, seen: set) -> np.ndarray:
    """Return each label's answer index: its identity's, or len(classes) (the new answer) when not in `seen`."""
    lookup = {str(v): i for i, v in enumerate(class_map.values)}
    new = len(class_map.values)
    return np.array([lookup[str(v)] if str(v) in seen else new for v in labels], int)


def answer_texts(ranked: np.ndarray, class_map) -> list:
    """Return each row's answers as the submission writes them: identities' names and the new answer."""
    names = [str(v) for v in class_map.values] + [class_map.new_label]
    return [" ".join(names[i] for i in row) for row in ranked]


def map_of_answers(answers, truth) -> float:
    """Return MAP@k of written answers (space-separated, best first) against the true answers (texts)."""
    ranked = [str(a).split() for a in answers]
    k = max((len(r) for r in ranked), default=1)
    return float(np.mean([1.0 / (r.index(str(t)) + 1) if str(t) in r[:k] else 0.0 for r, t in zip(ranked, truth)]))


def embeddings_file(folder) -> Path:
    """Return where a run keeps its labelled images' embeddings."""
    return Path(folder) / EMBEDDINGS


def identity_file(folder) -> Path:
    """Return where a run keeps its new answer's threshold and holdout scores."""
    return Path(folder) / IDENTITY

"""Improved precision/recall against a brute-force implementation of Kynkäänniemi et al. (2019)."""

from __future__ import annotations

import numpy as np
import pytest

from matbench.metrics.prc import precision_recall


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Loop-level reference: manifold(S) = union of balls around s with radius = dist to k-th nearest other s."""
    def radii(s: np.ndarray) -> np.ndarray:
        out = []
        for i in range(len(s)):
            d = sorted(float(np.linalg.norm(s[i] - s[j])) for j in range(len(s)) if j != i)
            out.append(d[k - 1])
        return np.array(out)

    def inside(q: np.ndarray, s: np.ndarray, r: np.ndarray) -> float:
        return float(np.mean([any(np.linalg.norm(x - s[j]) <= r[j] for j in range(len(s))) for x in q]))

    precision = inside(fake, real, radii(real))
    recall = inside(real, fake, radii(fake))
    return precision, recall


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    real = rng.standard_normal((60, 5))
    fake = 0.5 * rng.standard_normal((45, 5)) + 0.7  # narrow and shifted: precision != recall
    ours = precision_recall(real, fake, k=k, batch=16)  # several batches, ragged last one
    p, r = brute_force(real, fake, k)
    assert ours["precision"] == pytest.approx(p, abs=1e-12)
    assert ours["recall"] == pytest.approx(r, abs=1e-12)


def test_roles_are_not_symmetric() -> None:
    # Fake collapsed into one small region of the real data: high precision, low recall.
    rng = np.random.default_rng(7)
    real = rng.standard_normal((200, 2)) * 3.0
    fake = rng.standard_normal((200, 2)) * 0.3
    ours = precision_recall(real, fake)
    p, r = brute_force(real, fake, 3)
    assert (ours["precision"], ours["recall"]) == pytest.approx((p, r), abs=1e-12)
    assert ours["precision"] > 0.9 and ours["recall"] < 0.3
    swapped = precision_recall(fake, real)
    assert swapped["precision"] == pytest.approx(ours["recall"], abs=1e-12)
    assert swapped["recall"] == pytest.approx(ours["precision"], abs=1e-12)


def test_batch_size_does_not_change_result() -> None:
    rng = np.random.default_rng(8)
    real, fake = rng.standard_normal((70, 16)), rng.standard_normal((70, 16)) * 1.2
    a = precision_recall(real, fake, batch=7)
    b = precision_recall(real, fake, batch=1000)
    assert a == b


def test_identical_sets_are_fully_covered() -> None:
    x = np.random.default_rng(9).standard_normal((30, 4))
    assert precision_recall(x, x.copy()) == {"precision": 1.0, "recall": 1.0}


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="more than k"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    with pytest.raises(ValueError, match="equal D"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))


def test_membership_indicators_average_to_precision_and_recall() -> None:
    from matbench.metrics.prc import manifold_membership

    rng = np.random.default_rng(10)
    real, fake = rng.standard_normal((50, 3)), rng.standard_normal((40, 3)) * 0.4
    m = manifold_membership(real, fake)
    assert m["precision"].shape == (40,) and m["recall"].shape == (50,) and m["precision"].dtype == bool
    p, r = brute_force(real, fake, 3)
    assert m["precision"].mean() == pytest.approx(p) and m["recall"].mean() == pytest.approx(r)

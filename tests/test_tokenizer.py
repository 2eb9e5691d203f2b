import numpy as np
import pytest

from opd_core.errors import TokenizerMismatchError
from opd_core.tokenizer import ActionTokenizer


def test_round_trip_lands_within_half_a_bin():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.7, size=(1000, 7))
    tokenizer = ActionTokenizer.fit(actions)
    bins = tokenizer.encode(actions)
    assert bins.min() >= 0 and bins.max() <= 255
    decoded = tokenizer.decode(bins)
    half_bin = (np.array(tokenizer.q99) - np.array(tokenizer.q01)) / 256 / 2
    inside = (actions >= tokenizer.q01) & (actions <= tokenizer.q99)
    assert np.all(np.abs(decoded - actions)[inside] <= np.broadcast_to(half_bin, actions.shape)[inside] + 1e-9)
    assert np.array_equal(tokenizer.encode(decoded), bins), "bin centres must encode back to their own bin"


def test_values_outside_the_quantiles_clip_to_the_edge_bins():
    tokenizer = ActionTokenizer((0.0,) * 7, (1.0,) * 7)
    bins = tokenizer.encode(np.array([[-5.0] * 7, [5.0] * 7]))
    assert (bins[0] == 0).all() and (bins[1] == 255).all()


def test_constant_dimension_does_not_divide_by_zero():
    actions = np.zeros((50, 7))
    actions[:, 0] = np.linspace(-1, 1, 50)
    tokenizer = ActionTokenizer.fit(actions)
    bins = tokenizer.encode(actions)
    assert np.isfinite(tokenizer.decode(bins)).all()
    assert np.allclose(tokenizer.decode(bins)[:, 3], 0.0, atol=1 / 256)


def test_serialisation_and_mismatch_detection():
    tokenizer = ActionTokenizer.fit(np.random.default_rng(1).normal(size=(100, 7)))
    same = ActionTokenizer.from_dict(tokenizer.to_dict())
    tokenizer.check_compatible(same)
    other = ActionTokenizer.fit(np.random.default_rng(2).normal(size=(100, 7)))
    with pytest.raises(TokenizerMismatchError, match="teacher action statistics differ"):
        tokenizer.check_compatible(other, "teacher")


def test_fourteen_dim_round_trip_keeps_per_dimension_statistics():
    rng = np.random.default_rng(3)
    low, high = rng.uniform(-2.0, 0.0, 14), rng.uniform(0.5, 3.0, 14)  # every dimension its own range
    actions = rng.uniform(low, high, size=(2000, 14))
    tokenizer = ActionTokenizer.fit(actions)
    assert tokenizer.dim == 14
    assert np.allclose(tokenizer.q01, np.quantile(actions, 0.01, axis=0))
    assert np.allclose(tokenizer.q99, np.quantile(actions, 0.99, axis=0))
    bins = tokenizer.encode(actions)
    assert bins.shape == (2000, 14) and bins.min() >= 0 and bins.max() <= 255
    decoded = tokenizer.decode(bins)
    half_bin = (np.array(tokenizer.q99) - np.array(tokenizer.q01)) / 256 / 2
    inside = (actions >= tokenizer.q01) & (actions <= tokenizer.q99)
    assert np.all(np.abs(decoded - actions)[inside] <= np.broadcast_to(half_bin, actions.shape)[inside] + 1e-9)
    assert np.array_equal(tokenizer.encode(decoded), bins)
    assert ActionTokenizer.from_dict(tokenizer.to_dict()) == tokenizer
    # the right arm's statistics are the last 7 dims: fitting them alone gives the same bins
    right = ActionTokenizer.fit(actions[:, 7:])
    assert np.array_equal(right.encode(actions[:, 7:]), bins[:, 7:])


def test_a_teacher_of_another_action_dimension_is_refused():
    student = ActionTokenizer.identity(14)
    dimension = r"teacher action dimension \(7\) differs from the student's \(14\)"
    with pytest.raises(TokenizerMismatchError, match=dimension):
        student.check_compatible(ActionTokenizer.identity(7), "teacher")
    with pytest.raises(TokenizerMismatchError, match="14 dims x 128 bins"):
        student.check_compatible(ActionTokenizer.identity(14, num_bins=128), "teacher")
    shifted = ActionTokenizer((-1.0,) * 13 + (-0.5,), (1.0,) * 14)
    with pytest.raises(TokenizerMismatchError, match="teacher action statistics differ"):
        student.check_compatible(shifted, "teacher")

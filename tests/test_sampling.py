import numpy as np

from datasets.sampling import dense_indices, segment_indices


def test_train_segments_fall_inside_their_segment():
    rng = np.random.default_rng(0)
    for _ in range(50):
        indices = segment_indices(30, 3, train=True, rng=rng)
        assert indices.shape == (3,)
        assert 0 <= indices[0] < 10 and 10 <= indices[1] < 20 and 20 <= indices[2] < 30
    draws = {tuple(segment_indices(30, 3, train=True, rng=rng)) for _ in range(20)}
    assert len(draws) > 1, 'training offsets must be random'


def test_val_segments_are_centred_and_deterministic():
    assert segment_indices(30, 3, train=False).tolist() == [5, 15, 25]
    assert segment_indices(100, 4, train=False).tolist() == [12, 37, 62, 87]


def test_new_length_takes_consecutive_frames():
    indices = segment_indices(30, 3, new_length=5, train=False)
    # TSN: tick = (30 - 5 + 1) / 3, start = int(tick / 2 + tick * k)
    assert indices.tolist() == [4, 5, 6, 7, 8, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25]


def test_short_video_repeats_frames_within_range():
    indices = segment_indices(2, 8, train=False)
    assert indices.shape == (8,) and indices.min() >= 0 and indices.max() <= 1
    assert segment_indices(1, 3, new_length=5, train=True).max() == 0


def test_dense_sampling():
    rng = np.random.default_rng(0)
    clip = dense_indices(100, 8, 2, train=True, rng=rng)
    assert clip.shape == (8,) and np.all(np.diff(clip) == 2) and clip.max() < 100
    assert dense_indices(40, 8, 2, train=False).tolist() == list(range(12, 28, 2))
    views = dense_indices(100, 4, 4, num_clips=3, train=False).reshape(3, 4)
    assert views[0, 0] == 0 and views[-1, -1] == 99 - 15 + 12
    wrapped = dense_indices(5, 8, 1, train=False)
    assert wrapped.tolist() == [0, 1, 2, 3, 4, 0, 1, 2]

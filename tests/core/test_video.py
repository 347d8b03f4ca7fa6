"""The procedural video generator draws what its tracks, captions and answers say; the frozen encoders
give row-major patch tokens."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.core.errors import UserError
from paperlab.core.video import (
    COLOURS,
    DIRECTIONS,
    VideoConfig,
    frame_strip,
    generate_video,
    motion_score,
    save_gif,
    video_dataset,
)

SINGLE = VideoConfig(n_frames=16, size=32, min_objects=1, max_objects=1)


def colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    return np.all(frame == np.array(COLOURS[colour], dtype=np.uint8), axis=-1)


def first_seen(frames: np.ndarray, colour: str) -> int | None:
    seen = [t for t in range(len(frames)) if colour_mask(frames[t], colour).any()]
    return seen[0] if seen else None


def test_deterministic_per_seed_and_distinct_across_seeds():
    a, b, c = generate_video(seed=3), generate_video(seed=3), generate_video(seed=4)
    assert np.array_equal(a.frames, b.frames) and a.caption == b.caption and a.qa == b.qa
    assert not np.array_equal(a.frames, c.frames)
    ds = video_dataset(3, seed=2)
    assert np.array_equal(ds[1].frames, generate_video(None, 2 * 1_000_003 + 1).frames)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), frames=st.integers(8, 64))
def test_bouncing_paths_stay_inside_and_move_at_their_speed(seed, frames):
    cfg = VideoConfig(n_frames=frames, size=32, max_objects=4)
    v = generate_video(cfg, seed)
    for tr in v.tracks:
        p = tr.positions(frames, cfg.size)
        assert p.min() >= tr.radius - 1e-9 and p.max() <= cfg.size - 1 - tr.radius + 1e-9
        step = np.abs(np.diff(p, axis=0)).sum(axis=1)  # reflection never lengthens a step
        assert np.all(step <= tr.speed + 1e-9)
        assert 0 <= tr.start < tr.end <= frames


def test_single_object_is_drawn_where_its_track_says_and_moves_its_direction():
    for seed in range(30):
        v = generate_video(SINGLE, seed)
        (tr,) = v.tracks
        pos = tr.positions(SINGLE.n_frames, SINGLE.size)
        for t in (0, 5, 15):
            ys, xs = np.nonzero(colour_mask(v.frames[t], tr.colour))
            assert len(xs) > 0
            if tr.shape != "triangle":  # the triangle's centroid is below its box centre
                assert abs(xs.mean() - pos[t, 0]) < 1.0 and abs(ys.mean() - pos[t, 1]) < 1.0
        dx, dy = DIRECTIONS[tr.direction]
        step = pos[1] - pos[0]
        assert np.sign(step[0]) == dx and np.sign(step[1]) == dy  # "at first" is visible: no wall in frame 1
        qa = {q.kind: q for q in v.qa}
        assert qa["direction"].answer_text == tr.direction
        assert tr.colour in v.caption and tr.shape in v.caption and tr.direction in v.caption


def test_answers_match_what_the_frames_show():
    cfg = VideoConfig(n_frames=24, size=32, min_objects=2, max_objects=4, late_entry=0.8)
    kinds = set()
    for seed in range(40):
        v = generate_video(cfg, seed)
        seen = {tr.colour: first_seen(v.frames, tr.colour) for tr in v.tracks}
        for q in v.qa:
            kinds.add(q.kind)
            if q.kind == "count":
                assert int(q.answer_text) == sum(s is not None for s in seen.values())
            elif q.kind == "first":
                assert seen[q.answer_text] == min(s for s in seen.values() if s is not None)
            elif q.kind == "before":
                names = q.question.removeprefix("Does the ").removesuffix("?").split(" appear before the ")
                ca, cb = (n.split()[0] for n in names)
                assert (q.answer_text == "yes") == (seen[ca] < seen[cb])
        for tr in v.tracks:  # invisible outside [start, end)
            assert seen[tr.colour] is None or seen[tr.colour] >= tr.start
            assert not any(colour_mask(f, tr.colour).any() for f in v.frames[tr.end:])
    assert kinds == {"direction", "count", "first", "before"}


def test_motion_score_is_zero_for_a_still_clip_and_grows_with_speed():
    still = np.repeat(generate_video(SINGLE, 0).frames[:1], 8, axis=0)
    assert motion_score(still) == 0.0
    slow = VideoConfig(n_frames=16, max_objects=1, min_speed=0.5, max_speed=0.6)
    fast = VideoConfig(n_frames=16, max_objects=1, min_speed=2.4, max_speed=2.5)
    s = [generate_video(slow, i).motion for i in range(20)]
    f = [generate_video(fast, i).motion for i in range(20)]
    assert np.mean(f) > 2 * np.mean(s) > 0


def test_bad_configs_are_refused():
    for kw in ({"n_frames": 1}, {"size": 8}, {"min_objects": 3, "max_objects": 2}, {"max_objects": 7},
               {"min_speed": 0.0}, {"late_entry": 1.5}):
        with pytest.raises(UserError):
            VideoConfig(**kw)


def test_frame_strip_and_gif(tmp_path):
    from PIL import Image

    v = generate_video(SINGLE, 1)
    strip = frame_strip(v.frames, n=4)
    assert strip.shape == (32, 4 * 32 + 3, 3) and strip.dtype == np.uint8
    path = save_gif(v.frames, tmp_path / "clip.gif", scale=2)
    with Image.open(path) as im:
        assert im.n_frames == 16 and im.size == (64, 64)


@pytest.mark.parametrize("name,dim", [("random", 64), ("efficientnet_lite0", 1280)])
def test_frame_encoders_give_row_major_tokens(name, dim):
    import torch

    from paperlab.core.video import encode_frames, frame_encoder

    enc = frame_encoder(name, size=32)
    assert enc.grid == (4, 4) and enc.dim == dim
    assert not any(p.requires_grad for p in enc.parameters())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = enc(x)
    assert tokens.shape == (2, 16, dim)
    resized = torch.nn.functional.interpolate(x, size=(enc.input_size,) * 2, mode="bilinear", align_corners=False)
    grid = enc.backbone((resized - enc.mean) / enc.std)  # (N, C, 4, 4)
    for i in range(16):  # token i is grid cell (row i // 4, column i % 4): left to right, top to bottom
        assert torch.allclose(tokens[:, i], grid[:, :, i // 4, i % 4], atol=1e-5)
    clips = np.stack([generate_video(SINGLE, i).frames[:4] for i in range(2)])
    clip_tokens = encode_frames(enc, clips, batch_size=3)
    assert clip_tokens.shape == (2, 4, 16, dim)
    direct = enc(torch.from_numpy(clips[1, 2]).permute(2, 0, 1)[None].float() / 255)
    assert torch.allclose(clip_tokens[1, 2], direct[0], atol=1e-4, rtol=1e-4)  # batching changes float order
    again = frame_encoder(name, size=32)
    assert torch.allclose(again(x), tokens, atol=1e-6)  # the same frozen weights in a new instance


def test_unknown_encoder_is_a_user_error():
    from paperlab.core.video import frame_encoder

    with pytest.raises(UserError):
        frame_encoder("clip-vit")

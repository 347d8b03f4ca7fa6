"""Procedural videos with known ground truth, and frozen frame encoders (STORM, LanDiff).

No pretrained video model or video data set exists offline, so the video systems run on clips drawn
here: coloured shapes (circle, square, triangle) on a black background that move in a straight line,
bounce off the walls, and may appear late or disappear early. Every clip carries what made it — the
tracks — so captions, questions and their answers are exact, and a generated clip can be scored
against the caption it was asked for.

Questions need temporal order, not one frame:

============  ==================================================  ======================
kind          question                                            answer
============  ==================================================  ======================
direction     which way does the red circle move at first?        left / right / up / down
count         how many objects appear in the video?               min..max objects
first         which colour appears first?                         one of the clip's colours
before        does the red circle appear before the blue square?  yes / no
============  ==================================================  ======================

API:

- :class:`VideoConfig` (frames 2..4096 — the issue's range is 8 to 512 —, frame size, objects, speed
  range in pixels per frame, how often objects enter late / leave early, bouncing);
  :func:`generate_video` ``(config, seed) -> Video`` is deterministic in (config, seed);
  :func:`video_dataset` ``(n, config, seed)`` gives clip ``i`` = ``generate_video(config, seed * 1_000_003 + i)``.
- :class:`Video`: ``frames`` (uint8, ``T x H x W x 3``), ``tracks``, ``caption``, ``qa``, ``motion``.
- :func:`motion_score` — mean absolute change between consecutive frames, in [0, 1]: measurable on any
  clip, real or generated, so a requested motion can be compared with the one obtained.
- :func:`save_gif`, :func:`frame_strip` — for reports.
- Frozen frame encoders (torch is imported only when these are used):
  :func:`frame_encoder` ``("random" | "efficientnet_lite0", size)`` -> :class:`FrameEncoder` giving
  row-major patch tokens ``(N, h*w, dim)``; :func:`encode_frames` runs one over whole clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paperlab.core.errors import UserError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "magenta": (215, 50, 215),
    "cyan": (40, 205, 215),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
#: unit steps in image coordinates (x to the right, y downwards)
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
QUESTION_KINDS: tuple[str, ...] = ("direction", "count", "first", "before")
#: speeds (pixels per frame) below this are "slowly", the rest "quickly"
SPEED_SPLIT = 1.5


def speed_word(speed: float) -> str:
    """The caption's adverb for a speed in pixels per frame."""
    return "slowly" if speed < SPEED_SPLIT else "quickly"


@dataclass(frozen=True)
class VideoConfig:
    """How clips are drawn. Speeds are in pixels per frame; ``late_entry`` is the probability that an
    object after the first enters after frame 0 (and half of it, that an object leaves before the end)."""

    n_frames: int = 16
    size: int = 32
    min_objects: int = 1
    max_objects: int = 3
    min_speed: float = 0.5
    max_speed: float = 2.5
    late_entry: float = 0.5
    bounce: bool = True

    def __post_init__(self):
        if not 2 <= self.n_frames <= 4096:
            raise UserError(f"n_frames must be in 2..4096, got {self.n_frames}", "use 8 to 512 frames")
        if not 16 <= self.size <= 512:
            raise UserError(f"size must be in 16..512 pixels, got {self.size}", "use e.g. size=32")
        if not 1 <= self.min_objects <= self.max_objects <= len(COLOURS):
            raise UserError(f"need 1 <= min_objects <= max_objects <= {len(COLOURS)}, got "
                            f"{self.min_objects}..{self.max_objects}", "objects have distinct colours")
        if not 0 < self.min_speed <= self.max_speed <= self.size / 4:
            raise UserError(f"need 0 < min_speed <= max_speed <= size/4, got {self.min_speed}..{self.max_speed}",
                            "speeds are pixels per frame")
        if not 0.0 <= self.late_entry <= 1.0:
            raise UserError(f"late_entry must be a probability, got {self.late_entry}")

    @property
    def radius(self) -> int:
        """Object radius in pixels (a tenth of the frame, at least 2)."""
        return max(2, self.size // 10)


@dataclass(frozen=True)
class ObjectTrack:
    """One object: what it is, where it starts, how it moves, and when it is visible (``start <= t < end``)."""

    shape: str
    colour: str
    direction: str
    speed: float
    start: int
    end: int
    x0: float
    y0: float
    radius: int

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def positions(self, n_frames: int, size: int, bounce: bool = True) -> np.ndarray:
        """Centres ``(T, 2)`` as (x, y) for every frame (also outside the visible span): straight motion from
        (x0, y0) at ``start``, reflected at the walls when ``bounce`` (the path folds back into the frame)."""
        dx, dy = DIRECTIONS[self.direction]
        dt = np.arange(n_frames, dtype=np.float64) - self.start
        xy = np.stack([self.x0 + dx * self.speed * dt, self.y0 + dy * self.speed * dt], axis=1)
        if not bounce:
            return xy
        lo, span = float(self.radius), float(size - 1 - 2 * self.radius)
        u = np.mod(xy - lo, 2 * span)  # unfold the path, then fold it back: a triangle wave between the walls
        return lo + np.where(u > span, 2 * span - u, u)

    def bounces(self, n_frames: int, size: int) -> int:
        """How many times the object turns at a wall while it is visible."""
        p = self.positions(n_frames, size)[self.start:self.end]
        d = np.sign(np.diff(p, axis=0))
        d = d[np.any(d != 0, axis=1)]
        return int(np.sum(np.any(d[1:] != d[:-1], axis=1))) if len(d) > 1 else 0


@dataclass(frozen=True)
class QA:
    kind: str
    question: str
    choices: tuple[str, ...]
    answer: int

    @property
    def answer_text(self) -> str:
        return self.choices[self.answer]


@dataclass
class Video:
    frames: np.ndarray
    tracks: tuple[ObjectTrack, ...]
    caption: str
    qa: list[QA]
    config: VideoConfig
    seed: int
    _motion: float | None = field(default=None, repr=False)

    @property
    def motion(self) -> float:
        if self._motion is None:
            self._motion = motion_score(self.frames)
        return self._motion


# ---- drawing ----------------------------------------------------------------------------------------

def _mask(shape: str, cx: float, cy: float, r: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":  # side chosen so its area is close to the circle's
        h = 0.89 * r
        return (np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)
    if shape == "triangle":  # apex up, base at the bottom, as wide as it is tall
        top = cy - r
        return (yy >= top) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - top) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def render(tracks: tuple[ObjectTrack, ...] | list[ObjectTrack], config: VideoConfig) -> np.ndarray:
    """Draw the tracks: ``(T, H, W, 3)`` uint8, later objects over earlier ones."""
    t_n, s = config.n_frames, config.size
    frames = np.zeros((t_n, s, s, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    for tr in tracks:
        pos = tr.positions(t_n, s, config.bounce)
        colour = np.array(COLOURS[tr.colour], dtype=np.uint8)
        for t in range(tr.start, tr.end):
            frames[t][_mask(tr.shape, pos[t, 0], pos[t, 1], tr.radius, xx, yy)] = colour
    return frames


def motion_score(frames: np.ndarray) -> float:
    """Mean absolute difference between consecutive frames, over pixels and channels, scaled to [0, 1]."""
    f = np.asarray(frames)
    if f.ndim < 3 or len(f) < 2:
        return 0.0
    scale = 255.0 if f.dtype == np.uint8 else 1.0
    return float(np.abs(np.diff(f.astype(np.float32), axis=0)).mean() / scale)


# ---- sampling ---------------------------------------------------------------------------------------

def _sample_track(rng: np.random.Generator, config: VideoConfig, colour: str, start: int) -> ObjectTrack:
    r, s, t_n = config.radius, config.size, config.n_frames
    direction = str(rng.choice(list(DIRECTIONS)))
    speed = float(rng.uniform(config.min_speed, config.max_speed))
    # start far enough from the wall it heads to that "which way does it move at first" is visible
    room = min(3 * speed + r, (s - 1) / 2)
    lo, hi = float(r), float(s - 1 - r)
    dx, dy = DIRECTIONS[direction]
    xs = (lo + room if dx < 0 else lo, hi - room if dx > 0 else hi)
    ys = (lo + room if dy < 0 else lo, hi - room if dy > 0 else hi)
    x0, y0 = float(rng.uniform(*xs)), float(rng.uniform(*ys))
    end = t_n
    min_len = max(2, t_n // 4)
    if start > 0 and rng.random() < config.late_entry / 2 and start + min_len < t_n:
        end = int(rng.integers(start + min_len, t_n))
    return ObjectTrack(shape=str(rng.choice(SHAPES)), colour=colour, direction=direction, speed=speed,
                       start=start, end=end, x0=x0, y0=y0, radius=r)


def sample_tracks(config: VideoConfig, rng: np.random.Generator) -> tuple[ObjectTrack, ...]:
    """Objects with distinct colours; the first is visible from frame 0, later ones may enter late."""
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    latest = max(1, config.n_frames // 2)
    tracks = []
    for i, colour in enumerate(colours):
        start = 0
        if i > 0 and rng.random() < config.late_entry:
            start = int(rng.integers(1, latest + 1))
        tracks.append(_sample_track(rng, config, str(colour), start))
    return tuple(sorted(tracks, key=lambda tr: tr.start))


def caption_of(tracks: tuple[ObjectTrack, ...], n_frames: int) -> str:
    """A templated caption in order of appearance, e.g. "a red circle moves left quickly, then a blue
    square appears and moves up slowly"."""
    parts = []
    for i, tr in enumerate(tracks):
        motion = f"moves {tr.direction} {speed_word(tr.speed)}"
        if i == 0:
            text = f"a {tr.name} {motion}"
        elif tr.start > tracks[i - 1].start:
            text = f"then a {tr.name} appears and {motion}"
        else:
            text = f"and a {tr.name} {motion}"
        if tr.end < n_frames:
            text += " before it disappears"
        parts.append(text)
    return ", ".join(parts)


def questions_of(tracks: tuple[ObjectTrack, ...], config: VideoConfig, rng: np.random.Generator) -> list[QA]:
    """At most one question of each kind whose answer the tracks make unambiguous."""
    qa: list[QA] = []
    tr = tracks[int(rng.integers(len(tracks)))]
    dirs = tuple(DIRECTIONS)
    qa.append(QA("direction", f"Which way does the {tr.name} move at first?", dirs, dirs.index(tr.direction)))
    counts = tuple(str(i) for i in range(config.min_objects, config.max_objects + 1))
    if len(counts) > 1:
        qa.append(QA("count", "How many objects appear in the video?", counts, counts.index(str(len(tracks)))))
    if len(tracks) > 1 and tracks[0].start < tracks[1].start:  # sorted by start: a unique first object
        colours = tuple(sorted(t.colour for t in tracks))
        qa.append(QA("first", "Which colour appears first?", colours, colours.index(tracks[0].colour)))
    pairs = [(a, b) for a in tracks for b in tracks if a.start < b.start]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        if rng.random() < 0.5:
            a, b = b, a
        qa.append(QA("before", f"Does the {a.name} appear before the {b.name}?", ("yes", "no"),
                     0 if a.start < b.start else 1))
    return qa


def generate_video(config: VideoConfig | None = None, seed: int = 0) -> Video:
    """One clip, deterministic in (config, seed)."""
    config = config or VideoConfig()
    rng = np.random.default_rng(seed)
    tracks = sample_tracks(config, rng)
    return Video(frames=render(tracks, config), tracks=tracks, caption=caption_of(tracks, config.n_frames),
                 qa=questions_of(tracks, config, rng), config=config, seed=seed)


def video_dataset(n: int, config: VideoConfig | None = None, seed: int = 0) -> list[Video]:
    """``n`` clips; clip ``i`` is ``generate_video(config, seed * 1_000_003 + i)`` (disjoint across seeds
    for any n below a million)."""
    return [generate_video(config, seed * 1_000_003 + i) for i in range(n)]


# ---- pictures for reports ---------------------------------------------------------------------------

def frame_strip(frames: np.ndarray, n: int = 8, gap: int = 1) -> np.ndarray:
    """``n`` evenly spaced frames side by side (uint8 ``H x (n*W + gaps) x 3``), separated by grey lines."""
    f = np.asarray(frames)
    idx = np.unique(np.linspace(0, len(f) - 1, min(n, len(f))).round().astype(int))
    sep = np.full((f.shape[1], gap, 3), 128, dtype=np.uint8)
    cols: list[np.ndarray] = []
    for k, i in enumerate(idx):
        if k:
            cols.append(sep)
        cols.append(f[i].astype(np.uint8))
    return np.concatenate(cols, axis=1)


def save_gif(frames: np.ndarray, path: Path | str, fps: int = 8, scale: int = 4) -> Path:
    """An animated GIF (Pillow), each frame enlarged ``scale`` times without smoothing; loops forever."""
    from PIL import Image

    f = np.asarray(frames)
    if f.dtype != np.uint8:
        f = (np.clip(f, 0.0, 1.0) * 255).round().astype(np.uint8)
    h, w = f.shape[1:3]
    images = [Image.fromarray(x).resize((w * scale, h * scale), Image.NEAREST) for x in f]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)), loop=0)
    return path


# ---- frozen frame encoders (torch) ------------------------------------------------------------------

_ENCODER_NAMES = ("FrameEncoder", "frame_encoder", "encode_frames", "FRAME_ENCODERS")


def __getattr__(name: str) -> Any:  # PEP 562: the encoders import torch; the generator does not
    if name in _ENCODER_NAMES:
        from paperlab.core import video_encoders

        return getattr(video_encoders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

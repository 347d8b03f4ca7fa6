"""Synthetic audio scenes with known content: captions, paraphrases, compositional negatives, long-clip QA.

Stand-in for the audio–caption data of Audio Flamingo 2 (arXiv 2503.03983): AF-CLAP trains on audio with
several linguistic variants of its caption (positives) and compositional negatives that swap the order of
two events or one attribute ("A then B" vs. "B then A"); AF2's stage 3 trains on long clips (30 s – 5 min)
with questions whose answers sit in one part of the clip.  Everything here is generated from a seed, so the
ground truth (what, when, in which order) is exact.

Events (:class:`Event`, rendered at 16 kHz, each from its own seed so re-ordering keeps its sound):

======== ================================================ =============================================
kind      sound                                           attributes (words in captions)
======== ================================================ =============================================
tone      sine with 10 ms fades; high 1.5–2.5 kHz, low   pitch high/low, length short/long, loudness
          250–450 Hz; short 0.25–0.4 s, long 0.8–1.2 s
noise     white or pink (1/f power) burst, 0.4–1.0 s      color white/pink, loudness
chirp     exponential sweep 300 <-> 3000 Hz, 0.5–0.9 s    direction rising/falling, loudness
clicks    click train, fast 12/s or slow 3/s, 0.8–1.2 s   rate fast/slow, loudness
word      one espeak-ng word (digits, nouns), pitch 80/20 voice high/low, loudness (+ the word)
prompt    a recorded human prompt (Debian), <= 2 s        loudness (+ its text)
======== ================================================ =============================================

Loudness: loud = RMS 0.2 (-14 dBFS), quiet = RMS 0.025 (-32 dBFS), peaks limited to 0.99.  Speech is
trimmed of leading/trailing silence (40 dB).  Synthetic kinds are bit-exact per seed; word and prompt events
depend on the installed espeak-ng / prompt files (their lengths move later onsets).

:func:`make_scene` — 2–4 events in order with gaps >= 0.2 s inside a 10 s clip (one AF2 window).
:class:`Scene` gives ``caption`` (canonical: "A, then B, then C"), ``paraphrases(k)`` (other sentence
templates and per-event phrase variants, same events, same order — one template names the events last to
first: "before C there is B, and before that A"), ``negatives(of)`` (the same template and phrase variants
with two events exchanged, ``kind="order"``, or one attribute flipped, ``kind="attribute"``, so a negative
differs from its positive only by the stated swap) and ``metadata()`` (JSON-ready events with onsets/offsets).

:func:`make_long_scene` — 30 s – 5 min of many events over silence or quiet pink noise; ``questions()``
gives :class:`QA` items (first/last sound, counting a kind, what follows a spoken word, which of two comes
first, what happens in the last minute), each with multiple-choice options, the evidence time spans and the
10 s windows that hold them (``needs_later_windows``: the answer is not in window 0), so a system can compare
"all windows" with "first window only".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from paperlab.core.audio import SAMPLE_RATE, WINDOW_S, load_wav, recorded_prompts, speak, spell_number
from paperlab.core.errors import require

KINDS = ("tone", "noise", "chirp", "clicks", "word", "prompt")
SYNTH_KINDS = ("tone", "noise", "chirp", "clicks")  # need neither espeak-ng nor the recorded prompts

# attribute -> its two values (each value is one caption word); flipping one is an attribute negative
ATTRIBUTES = {
    "pitch": ("high", "low"), "length": ("short", "long"), "color": ("white", "pink"),
    "direction": ("rising", "falling"), "rate": ("fast", "slow"), "voice": ("high", "low"),
    "loudness": ("loud", "quiet"),
}
KIND_ATTRIBUTES = {
    "tone": ("pitch", "length", "loudness"), "noise": ("color", "loudness"), "chirp": ("direction", "loudness"),
    "clicks": ("rate", "loudness"), "word": ("voice", "loudness"), "prompt": ("loudness",),
}
# phrase variants per kind; every variant names every attribute with its value word
PHRASES = {
    "tone": ("a {loudness} {length} {pitch} beep", "a {length} {pitch}-pitched tone, {loudness}",
             "a {loudness}, {length} {pitch} tone"),
    "noise": ("a {loudness} burst of {color} noise", "{loudness} {color} noise", "a {loudness} {color}-noise hiss"),
    "chirp": ("a {loudness} {direction} chirp", "a {loudness} {direction} sweep", "a {direction} chirp, {loudness}"),
    "clicks": ("a {loudness} {rate} click train", "{loudness} {rate} clicking", "a {rate} series of {loudness} clicks"),
    "word": ('the word "{text}" spoken in a {loudness} {voice} voice', 'a {loudness} {voice} voice saying "{text}"',
             'someone saying "{text}" in a {voice}, {loudness} voice'),
    "prompt": ('a {loudness} recording of someone saying "{text}"', 'a {loudness} recorded phrase, "{text}"',
               'the recorded words "{text}", {loudness}'),
}
# a noun every variant of a kind contains and no other kind's variants do (for checking captions)
KIND_NOUNS = {"tone": ("beep", "tone"), "noise": ("noise",), "chirp": ("chirp", "sweep"), "clicks": ("click",),
              "word": ("voice",), "prompt": ("record",)}
PLURALS = {"tone": "beeps or tones", "noise": "bursts of noise", "chirp": "chirps", "clicks": "click trains",
           "word": "spoken words", "prompt": "recorded phrases"}
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "dog", "cat", "apple",
         "river", "window", "garden", "music", "paper", "orange", "rocket", "yellow", "table")
RMS = {"loud": 0.2, "quiet": 0.025}
VOICE_PITCH = {"high": 80, "low": 20}


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class Event:
    """One sound event: its kind, attribute values, spoken text (word / prompt) and synthesis seed."""

    kind: str
    attrs: tuple[tuple[str, str], ...]
    seed: int
    text: str = ""    # the word spoken (word) or the prompt's text (prompt)
    source: str = ""  # the prompt's name, e.g. "digits/7"

    def get(self, name: str) -> str:
        return dict(self.attrs)[name]

    def flipped(self, name: str) -> Event:
        """The same event with attribute ``name`` set to its other value."""
        a, b = ATTRIBUTES[name]
        new = b if self.get(name) == a else a
        return replace(self, attrs=tuple((k, new if k == name else v) for k, v in self.attrs))

    def phrase(self, variant: int = 0) -> str:
        forms = PHRASES[self.kind]
        return forms[variant % len(forms)].format(text=self.text, **dict(self.attrs))

    def render(self) -> np.ndarray:
        """The event's samples at 16 kHz (deterministic; cached)."""
        return _render(self).copy()


def random_event(rng: np.random.Generator, kind: str) -> Event:
    attrs = tuple((a, str(rng.choice(ATTRIBUTES[a]))) for a in KIND_ATTRIBUTES[kind])
    seed = int(rng.integers(2**31))
    if kind == "word":
        return Event(kind, attrs, seed, text=str(rng.choice(WORDS)))
    if kind == "prompt":
        p = _short_prompts()[int(rng.integers(len(_short_prompts())))]
        return Event(kind, attrs, seed, text=p.text, source=p.name)
    return Event(kind, attrs, seed)


@functools.cache
def _short_prompts(max_s: float = 2.0, max_chars: int = 32):
    """Recorded prompts usable as one event: <= 2 s, 3 to 32 characters of text (no single letters)."""
    import soundfile as sf

    out = [p for p in recorded_prompts() if 3 <= len(p.text) <= max_chars and '"' not in p.text
           and sf.info(str(p.path)).duration <= max_s]
    require(bool(out), "no recorded prompt is short enough for a scene event")
    return out


def _fade(x: np.ndarray, ms: float = 10.0) -> np.ndarray:
    n = min(int(SAMPLE_RATE * ms / 1000), len(x) // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Noise with power ~ 1/f: white noise shaped by 1/sqrt(f) in the frequency domain, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


@functools.lru_cache(maxsize=1024)
def _render(ev: Event) -> np.ndarray:
    import librosa

    sr = SAMPLE_RATE
    # the sound's free parameters depend on the event's seed and its attribute values only
    rng = np.random.default_rng([ev.seed, *[ATTRIBUTES[k].index(v) for k, v in ev.attrs]])
    if ev.kind == "tone":
        lo, hi = (1500.0, 2500.0) if ev.get("pitch") == "high" else (250.0, 450.0)
        dur = rng.uniform(0.25, 0.4) if ev.get("length") == "short" else rng.uniform(0.8, 1.2)
        t = np.arange(int(dur * sr)) / sr
        x = np.sin(2 * np.pi * rng.uniform(lo, hi) * t)
    elif ev.kind == "noise":
        n = int(rng.uniform(0.4, 1.0) * sr)
        x = rng.standard_normal(n) if ev.get("color") == "white" else pink_noise(rng, n)
    elif ev.kind == "chirp":
        f0, f1 = (300.0, 3000.0) if ev.get("direction") == "rising" else (3000.0, 300.0)
        x = librosa.chirp(fmin=f0, fmax=f1, sr=sr, duration=rng.uniform(0.5, 0.9), linear=False)
    elif ev.kind == "clicks":
        dur = rng.uniform(0.8, 1.2)
        period = 1.0 / (12.0 if ev.get("rate") == "fast" else 3.0)
        times = np.arange(0.0, dur - 0.05, period)
        x = librosa.clicks(times=times, sr=sr, click_freq=rng.uniform(800, 1500), length=int(dur * sr))
    elif ev.kind in ("word", "prompt"):
        raw = speak(ev.text, pitch=VOICE_PITCH[ev.get("voice")]) if ev.kind == "word" else \
            load_wav(next(p.path for p in recorded_prompts() if p.name == ev.source))
        x, _ = librosa.effects.trim(raw, top_db=40)
    else:
        raise ValueError(f"unknown event kind {ev.kind!r}")
    x = _fade(np.asarray(x, dtype=np.float32))
    x *= RMS[ev.get("loudness")] / (np.sqrt(np.mean(x**2)) + 1e-12)
    peak = float(np.max(np.abs(x)))
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32)


def _mix(events, starts, duration_s: float, background: str, seed: int) -> np.ndarray:
    n = int(round(duration_s * SAMPLE_RATE))
    if background == "silence":
        out = np.zeros(n, np.float32)
    else:  # quiet pink noise, RMS 0.003 (-50 dBFS)
        out = 0.003 * pink_noise(np.random.default_rng([seed, 99]), n)
    for ev, s in zip(events, starts, strict=True):
        x = _render(ev)
        i = int(round(s * SAMPLE_RATE))
        out[i: i + len(x)] += x[: n - i]
    return np.clip(out, -1.0, 1.0)


def _check(kinds, background):
    require(bool(kinds) and all(k in KINDS for k in kinds), f"unknown event kinds {kinds}", f"choose from {KINDS}")
    require(background in ("silence", "noise"), f"unknown background {background!r}", "use 'silence' or 'noise'")


# ------------------------------------------------------------------ captions


def join_phrases(phrases: list[str], template: int) -> str:
    """Sentence template ``template`` over event phrases in temporal order (0 is the canonical caption)."""
    p, n = phrases, len(phrases)
    if n == 1:
        return p[0]
    if template == 0:
        return ", then ".join(p)
    if template == 1:
        return f"first {p[0]}, " + "".join(f"then {q}, " for q in p[1:-1]) + \
            (f"and finally {p[-1]}" if n > 2 else f"then {p[-1]}")
    if template == 2:
        return " followed by ".join(p)
    if template == 3:
        middle = "".join(f", continues with {q}" for q in p[1:-1])
        return f"the clip starts with {p[0]}{middle} and ends with {p[-1]}"
    if template == 4:  # names the events from last to first
        parts = [f"before {p[-1]} there is {p[-2]}"] + [f"before that {q}" for q in reversed(p[:-2])]
        return parts[0] if n == 2 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    if template == 5:
        return f"you hear {p[0]}" + "".join(f"; after that, {q}" for q in p[1:])
    raise ValueError(f"no caption template {template}")


N_TEMPLATES = 6


@dataclass(frozen=True)
class Caption:
    """A caption of ``events`` (in temporal order) written with ``template`` and per-event phrase ``variants``."""

    text: str
    template: int
    variants: tuple[int, ...]
    events: tuple[Event, ...]


def caption_of(events, template: int = 0, variants=None) -> Caption:
    variants = tuple(variants) if variants is not None else (0,) * len(events)
    text = join_phrases([e.phrase(v) for e, v in zip(events, variants, strict=True)], template)
    return Caption(text, template, variants, tuple(events))


@dataclass(frozen=True)
class Negative:
    """A compositional negative of a caption: ``kind`` "order" (``detail`` = the two exchanged positions) or
    "attribute" (``detail`` = position, attribute, old value, new value)."""

    kind: str
    text: str
    events: tuple[Event, ...]
    detail: tuple


# ------------------------------------------------------------------ scenes


@dataclass(frozen=True)
class Scene:
    """Events in temporal order with their onsets (s) inside a clip of ``duration_s``."""

    seed: int
    events: tuple[Event, ...]
    starts: tuple[float, ...]
    duration_s: float
    background: str = "silence"

    @property
    def spans(self) -> list[tuple[float, float]]:
        return [(s, s + len(_render(e)) / SAMPLE_RATE) for e, s in zip(self.events, self.starts, strict=True)]

    def render(self) -> np.ndarray:
        return _mix(self.events, self.starts, self.duration_s, self.background, self.seed)

    @property
    def caption(self) -> Caption:
        return caption_of(self.events)

    def paraphrases(self, k: int) -> list[Caption]:
        """``k`` distinct re-wordings (other templates / phrase variants), same events in the same order."""
        rng = np.random.default_rng([self.seed, 1])
        combos = N_TEMPLATES * 3 ** len(self.events) - 1
        require(k <= combos, f"at most {combos} paraphrases for {len(self.events)} events, asked {k}")
        seen, out = {self.caption.text}, []
        for _ in range(100 * k + 1000):  # bounded: some combinations give the same text (one event: 3 in all)
            if len(out) == k:
                break
            template = int(rng.integers(N_TEMPLATES))
            cap = caption_of(self.events, template, rng.integers(3, size=len(self.events)))
            if cap.text not in seen:
                seen.add(cap.text)
                out.append(cap)
        require(len(out) == k, f"found only {len(out)} distinct paraphrases, asked {k}", "ask for fewer")
        return out

    def negatives(self, of: Caption | None = None, n_order: int = 1, n_attribute: int = 1) -> list[Negative]:
        """Compositional negatives of caption ``of`` (default: the canonical caption), same template and
        phrase variants: ``n_order`` with two different events exchanged, ``n_attribute`` with one attribute
        flipped (high<->low, rising<->falling, white<->pink, fast<->slow, short<->long, loud<->quiet)."""
        of = of or self.caption
        rng = np.random.default_rng([self.seed, 2, of.template, *of.variants])
        ev, var = list(of.events), list(of.variants)
        out: list[Negative] = []
        pairs = [(i, j) for i in range(len(ev)) for j in range(i + 1, len(ev)) if ev[i].phrase(0) != ev[j].phrase(0)]
        for idx in rng.permutation(len(pairs))[:n_order]:
            i, j = pairs[idx]
            e2, v2 = ev.copy(), var.copy()
            e2[i], e2[j], v2[i], v2[j] = ev[j], ev[i], var[j], var[i]
            out.append(Negative("order", caption_of(e2, of.template, v2).text, tuple(e2), (i, j)))
        flips = [(i, a) for i, e in enumerate(ev) for a in KIND_ATTRIBUTES[e.kind]]
        for idx in rng.permutation(len(flips))[:n_attribute]:
            i, a = flips[idx]
            e2 = ev.copy()
            e2[i] = ev[i].flipped(a)
            out.append(Negative("attribute", caption_of(e2, of.template, var).text, tuple(e2),
                                (i, a, ev[i].get(a), e2[i].get(a))))
        return out

    def metadata(self) -> dict:
        return {"seed": self.seed, "duration_s": self.duration_s, "background": self.background,
                "caption": self.caption.text,
                "events": [{"kind": e.kind, **dict(e.attrs), "text": e.text, "source": e.source,
                            "start_s": round(s, 4), "end_s": round(t, 4)}
                           for e, (s, t) in zip(self.events, self.spans, strict=True)]}


def make_scene(seed: int, n_events: int | None = None, kinds=KINDS, duration_s: float = WINDOW_S,
               min_gap_s: float = 0.2, background: str = "silence") -> Scene:
    """A scene of ``n_events`` (default 2–4, drawn) events of ``kinds``, placed in order with gaps of at
    least ``min_gap_s`` (the slack is split at random) inside ``duration_s`` seconds."""
    _check(kinds, background)
    rng = np.random.default_rng([seed, 0])
    n = int(n_events) if n_events is not None else int(rng.integers(2, 5))
    require(1 <= n <= 8, f"n_events must be in 1..8, got {n}")
    for _ in range(100):
        events = tuple(random_event(rng, str(rng.choice(kinds))) for _ in range(n))
        lengths = np.array([len(_render(e)) / SAMPLE_RATE for e in events])
        slack = duration_s - lengths.sum() - (n + 1) * min_gap_s
        if slack >= 0:
            break
    else:
        raise ValueError(f"{n} events do not fit in {duration_s} s")
    gaps = min_gap_s + slack * rng.dirichlet(np.ones(n + 1))
    starts = np.cumsum(gaps[:n]) + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    return Scene(seed, events, tuple(float(s) for s in starts), float(duration_s), background)


# ------------------------------------------------------------------ long scenes and questions


@dataclass(frozen=True)
class QA:
    """A question about a long clip; ``evidence`` = time spans (s) the answer needs, ``windows`` = indices of
    the ``window_s`` windows overlapping them."""

    kind: str
    question: str
    answer: str
    choices: tuple[str, ...]
    evidence: tuple[tuple[float, float], ...]
    windows: tuple[int, ...]

    @property
    def needs_later_windows(self) -> bool:
        """True when the evidence lies (partly) beyond the first window: first-window-only systems can't see it."""
        return any(w > 0 for w in self.windows)


@dataclass(frozen=True)
class LongScene(Scene):
    events_per_minute: float = 10.0
    window_s: float = WINDOW_S
    qa_per_kind: int = 2

    def questions(self) -> list[QA]:
        """QA items of six kinds (up to ``qa_per_kind`` each where the clip allows), deterministic per seed."""
        return _questions(self)


def make_long_scene(seed: int, duration_s: float = 120.0, kinds=KINDS, events_per_minute: float = 10.0,
                    background: str = "noise", window_s: float = WINDOW_S, qa_per_kind: int = 2) -> LongScene:
    """A clip of ``duration_s`` (30 s – 5 min) with about ``events_per_minute`` events separated by random
    silences (exponential gaps, at least 0.3 s) over ``background``."""
    _check(kinds, background)
    require(30.0 <= duration_s <= 300.0, f"long scenes last 30 s to 5 min, got {duration_s} s")
    require(0.5 <= events_per_minute <= 40.0, f"events_per_minute must be in [0.5, 40], got {events_per_minute}")
    rng = np.random.default_rng([seed, 3])
    mean_gap = 60.0 / events_per_minute
    events, starts, t = [], [], float(rng.uniform(0.2, mean_gap))
    while True:
        ev = random_event(rng, str(rng.choice(kinds)))
        length = len(_render(ev)) / SAMPLE_RATE
        if t + length > duration_s - 0.2:
            break
        events.append(ev)
        starts.append(t)
        t += length + max(0.3, float(rng.exponential(mean_gap - 1.0 if mean_gap > 1.3 else 0.3)))
    require(len(events) >= 2, "the long scene got fewer than 2 events", "raise events_per_minute or duration_s")
    return LongScene(seed, tuple(events), tuple(starts), float(duration_s), background,
                     float(events_per_minute), float(window_s), int(qa_per_kind))


def _questions(sc: LongScene) -> list[QA]:
    rng = np.random.default_rng([sc.seed, 4])
    spans = sc.spans
    phrases = [e.phrase(0) for e in sc.events]
    distinct = sorted(set(phrases))
    out: list[QA] = []

    def windows(ev_spans):
        idx = {w for s, t in ev_spans for w in range(int(s // sc.window_s), int(np.ceil(t / sc.window_s)))}
        return tuple(sorted(idx))

    def add(kind, question, answer, wrong, ev_spans):
        wrong = [w for w in dict.fromkeys(wrong) if w != answer]
        picked = [wrong[i] for i in rng.permutation(len(wrong))[:3]]
        choices = [answer, *picked]
        choices = [choices[i] for i in rng.permutation(len(choices))]
        ev_spans = tuple((round(s, 3), round(t, 3)) for s, t in ev_spans)
        out.append(QA(kind, question, answer, tuple(choices), ev_spans, windows(ev_spans)))

    add("first_sound", "What is the first sound in the clip?", phrases[0], distinct, [spans[0]])
    add("last_sound", "What is the last sound in the clip?", phrases[-1], distinct, [spans[-1]])

    present = sorted({e.kind for e in sc.events})
    for kind in [present[i] for i in rng.permutation(len(present))[: sc.qa_per_kind]]:
        ks = [sp for e, sp in zip(sc.events, spans, strict=True) if e.kind == kind]
        c = len(ks)
        add("count", f"How many {PLURALS[kind]} occur in the whole clip?", spell_number(c),
            [spell_number(x) for x in range(max(0, c - 3), c + 4)], ks)

    words = [e.text for e in sc.events if e.kind == "word"]
    unique = [i for i, e in enumerate(sc.events[:-1]) if e.kind == "word" and words.count(e.text) == 1]
    for i in [unique[j] for j in rng.permutation(len(unique))[: sc.qa_per_kind]]:
        add("after_word", f'What sound comes right after the spoken word "{sc.events[i].text}"?', phrases[i + 1],
            distinct, [spans[i], spans[i + 1]])

    once = [i for i, p in enumerate(phrases) if phrases.count(p) == 1]
    far = [(i, j) for i in once for j in once if j > i and sc.starts[j] - sc.starts[i] > sc.window_s]
    for k in rng.permutation(len(far))[: sc.qa_per_kind]:
        i, j = far[k]
        a, b = (phrases[i], phrases[j]) if rng.random() < 0.5 else (phrases[j], phrases[i])
        add("which_first", f"Which comes first: {a} or {b}?", phrases[i], [phrases[j]], [spans[i], spans[j]])

    if sc.duration_s >= 120.0:
        last = [i for i, (s, _) in enumerate(spans) if s >= sc.duration_s - 60.0]
        first = [i for i, (_, t) in enumerate(spans) if t <= 60.0]
        if last and first:
            answer = ", then ".join(phrases[i] for i in last)
            add("last_minute", "What happens in the last minute?", answer,
                [", then ".join(phrases[i] for i in first)], [(sc.duration_s - 60.0, sc.duration_s)])
    return out

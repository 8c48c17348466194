#!/usr/bin/env python3
"""Render a seeded, procedural multi-stem music corpus in MUSDB18-HQ layout.

The corpus is made entirely from this machine's own means (no downloads):
every track is composed from its seed, written as one Standard MIDI File per
stem by the small MIDI writer below, and rendered with FluidSynth and the
FluidR3 General MIDI soundfont; half of the tracks get "sung" vocals from
espeak-ng instead of a GM choir. ``scripts/install_corpus_deps.sh`` installs
the Debian packages (fluidsynth, fluid-soundfont-gm, espeak-ng).

Per track, all drawn from ``numpy.random.default_rng([seed, index, k])``:

* tempo 80-140 bpm, a major or minor key, one or two four-chord progressions
  (I-V-vi-IV, vi-IV-I-V, i-VI-III-VII, ...) switching every 8 bars, one or two
  bars per chord;
* ``drums``: a GM kit on MIDI channel 10 playing a groove (rock, pop, disco,
  half-time, funk) with ghost notes, extra kicks, crashes and tom fills;
* ``bass``: a GM bass (programs 32-39) following the chord roots in one of
  several styles (whole notes, eighths, root-fifth, syncopated, walking);
* ``other``: chords on a piano, organ, guitar, strings or pad (pad, stabs,
  arpeggio, strum or ballad comping), plus a lead melody for about half of
  the tracks;
* ``vocals``: espeak-ng phrases of random lyrics placed at bar boundaries
  (pitch following the chords), or a choir/voice melody (GM programs 52-54).

Stems are mono 32-bit float WAV of exactly ``seconds * sample_rate`` frames.
Each stem is normalised to a reference RMS times a random per-stem gain; the
mixture is the float32 sum ``bass + drums + other + vocals`` and when its peak
exceeds 0.99 every stem is scaled by the same factor before the sum is taken
again, so the stems add up to the mixture exactly. The WAV files carry no
timestamps, so the same seed and arguments give byte-identical files.

Layout (``--split-valid K`` moves the last K tracks to ``valid/``)::

    OUT_DIR/corpus.json
    OUT_DIR/track_0000/{mixture,bass,drums,other,vocals}.wav      # no split
    OUT_DIR/train/track_0000/...  OUT_DIR/valid/track_0009/...     # split

Rendering is resumable: tracks whose five files are all present with the right
length are skipped when ``corpus.json`` records the same seed, duration, rate
and script version (otherwise every track is rendered again); every file is
written to a temporary name first. Track ``i`` depends only on the seed and
``i``, so a larger ``--tracks`` extends a corpus without changing its tracks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from joblib import Parallel, delayed
from tqdm import tqdm

SCRIPT_VERSION = "1.0.0"
INSTALL_HINT = "run scripts/install_corpus_deps.sh"
STEMS = ("bass", "drums", "other", "vocals")
MIXTURE = "mixture"
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
TPQ = 480  # MIDI ticks per quarter note
FLUID_GAIN = 0.5
STEM_RMS = 0.07  # reference RMS of a stem before its random gain
PEAK_LIMIT = 0.99
GAIN_DB = {"bass": (-4.0, 0.0), "drums": (-3.0, 1.0), "other": (-6.0, 0.0), "vocals": (-3.0, 2.0)}

Note = tuple[float, float, int, int, int]  # start beat, length in beats, channel, pitch, velocity

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {
    "major": (
        ("I-V-vi-IV", (0, 4, 5, 3)),
        ("I-vi-IV-V", (0, 5, 3, 4)),
        ("vi-IV-I-V", (5, 3, 0, 4)),
        ("I-IV-vi-V", (0, 3, 5, 4)),
        ("I-V-IV-V", (0, 4, 3, 4)),
        ("ii-V-I-vi", (1, 4, 0, 5)),
        ("I-iii-IV-V", (0, 2, 3, 4)),
        ("I-IV-I-V", (0, 3, 0, 4)),
    ),
    "minor": (
        ("i-VI-III-VII", (0, 5, 2, 6)),
        ("i-iv-v-i", (0, 3, 4, 0)),
        ("i-VII-VI-VII", (0, 6, 5, 6)),
        ("i-iv-VII-III", (0, 3, 6, 2)),
        ("i-VI-iv-v", (0, 5, 3, 4)),
        ("i-III-VII-iv", (0, 2, 6, 3)),
    ),
}

DRUM_CHANNEL = 9  # MIDI channel 10
KICK, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 39, 42, 46, 49, 51
FILL_NOTES = (50, 48, 47, 45, 43, 41, 38)
DRUM_KITS = (0, 0, 8, 16, 24, 25, 32)  # GM2/GS kits in FluidR3: standard, room, power, ...
GROOVES = {  # 16th-note steps within a 4/4 bar
    "rock": {"kick": (0, 8), "snare": (4, 12), "hat": 2, "open": (), "ghost": ()},
    "pop": {"kick": (0, 6, 8), "snare": (4, 12), "hat": 2, "open": (14,), "ghost": ()},
    "disco": {"kick": (0, 4, 8, 12), "snare": (4, 12), "hat": 2, "open": (2, 6, 10, 14), "ghost": ()},
    "halftime": {"kick": (0, 7, 10), "snare": (8,), "hat": 2, "open": (), "ghost": (14,)},
    "funk": {"kick": (0, 3, 10), "snare": (4, 12), "hat": 1, "open": (), "ghost": (7, 9, 15)},
}

BASS_PROGRAMS = tuple(range(32, 40))
BASS_STYLES = ("whole", "eighths", "root_fifth", "syncopated", "walking")
OTHER_FAMILIES = {
    "piano": ((0, 1, 2, 4, 5), ("stabs", "arpeggio", "pad", "ballad")),
    "organ": ((16, 17, 18, 19), ("pad", "stabs")),
    "guitar": ((24, 25, 26, 27), ("strum", "arpeggio")),
    "strings": ((48, 49, 50), ("pad", "arpeggio")),
    "pad": ((88, 89, 90, 91, 92, 94, 95), ("pad",)),
}
LEAD_PROGRAMS = (11, 22, 40, 56, 65, 66, 71, 73, 80, 81)
CHOIR_PROGRAMS = (52, 53, 54)
STAB_RHYTHMS = ((0, 1, 2, 3), (0, 1.5, 2.5, 3.5), (0, 0.5, 1.5, 2, 3), (0, 2, 2.5))
STRUM_RHYTHM = (0, 1, 1.5, 2.5, 3, 3.5)
LEAD_RHYTHMS = (
    ((0, 1), (1, 1), (2, 2)),
    ((0, 1.5), (1.5, 0.5), (2, 1), (3, 1)),
    ((0, 0.5), (0.5, 0.5), (1, 1), (2, 0.5), (2.5, 0.5), (3, 1)),
    ((0, 3), (3, 1)),
    ((0.5, 0.5), (1, 1), (2, 1.5)),
)
CHOIR_RHYTHMS = (((0, 2), (2, 2)), ((0, 4),), ((0, 1), (1, 1), (2, 2)), ((0, 3), (3, 1)))
MELODY_STEPS = (-3, -2, -1, -1, 0, 1, 1, 2, 3)

ESPEAK_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
ESPEAK_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "Andrea",
    "Annie",
    "linda",
    "steph",
    "Michael",
    "david",
    "paul",
)
DEGREE_PITCH = (0, 6, 10, 3, 8, 12, 5)  # espeak pitch offset per chord degree
LYRIC_WORDS = (
    "oh",
    "yeah",
    "love",
    "baby",
    "night",
    "tonight",
    "heart",
    "fire",
    "dream",
    "dance",
    "light",
    "the",
    "city",
    "lights",
    "shine",
    "forever",
    "never",
    "let",
    "go",
    "hold",
    "me",
    "close",
    "feel",
    "alive",
    "running",
    "away",
    "home",
    "sky",
    "blue",
    "summer",
    "rain",
    "falling",
    "down",
    "you",
    "and",
    "I",
    "we",
    "are",
    "young",
    "free",
    "stay",
    "with",
    "moonlight",
    "ocean",
    "waves",
    "stars",
    "above",
    "my",
    "your",
    "soul",
    "gold",
    "fly",
    "high",
    "tell",
    "whisper",
    "golden",
    "river",
    "slow",
    "time",
    "again",
    "la",
    "na",
    "ooh",
    "hey",
    "whoa",
    "shadows",
    "morning",
    "sunrise",
    "hearts",
    "beating",
    "together",
    "come",
    "back",
    "now",
)


class RenderError(RuntimeError):
    """An external renderer failed."""


class MissingDependency(RenderError):
    """fluidsynth, espeak-ng or the GM soundfont is not installed."""


@dataclass(frozen=True)
class RenderConfig:
    """What every track of one run shares."""

    out_dir: Path
    seed: int
    seconds: float
    sample_rate: int
    soundfont: Path

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    def fingerprint(self) -> dict:
        """The settings a resumed run must share with the files it keeps."""
        return {
            "seed": self.seed,
            "seconds": self.seconds,
            "sample_rate": self.sample_rate,
            "soundfont": self.soundfont.name,
            "version": SCRIPT_VERSION,
        }


@dataclass
class TrackPlan:
    """The seeded musical choices of one track (recorded in corpus.json)."""

    index: int
    name: str
    split: str | None
    seed: list[int]
    bpm: int
    tonic: int
    mode: str
    key: str
    bars: int
    bars_per_chord: int
    progressions: list[str]
    bar_chords: list[int]
    drum_groove: str
    drum_kit: int
    hat_note: int
    bass_program: int
    bass_style: str
    other_family: str
    other_program: int
    comp_style: str
    lead_program: int | None
    vocal_mode: str
    vocal_program: int | None
    espeak_voice: str | None
    espeak_speed: int | None
    espeak_pitch: int | None
    gains_db: dict[str, float]

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.name}" if self.split else self.name


# ---------------------------------------------------------------- MIDI writer


def _vlq(value: int) -> bytes:
    """Encode a MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def midi_file_bytes(notes: list[Note], programs: list[tuple[int, int]], bpm: float) -> bytes:
    """A format-0 Standard MIDI File: tempo, program changes, note on/off."""
    tempo = int(round(60_000_000 / bpm))
    events: list[tuple[int, int, bytes]] = [(0, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big"))]
    for channel, program in programs:
        events.append((0, 1, bytes([0xC0 | channel, program])))
    for start, length, channel, pitch, velocity in notes:
        on = int(round(start * TPQ))
        off = max(on + 1, int(round((start + length) * TPQ)))
        events.append((on, 3, bytes([0x90 | channel, pitch, velocity])))
        events.append((off, 2, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda event: (event[0], event[1], event[2]))
    track = bytearray()
    last = 0
    for tick, _, data in events:
        track += _vlq(tick - last) + data
        last = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPQ)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


# ---------------------------------------------------------------- planning


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _plan_harmony(rng: np.random.Generator, bars: int) -> dict:
    mode = "minor" if rng.random() < 0.4 else "major"
    tonic = int(rng.integers(12))
    section_a = _pick(rng, PROGRESSIONS[mode])
    section_b = _pick(rng, PROGRESSIONS[mode]) if rng.random() < 0.5 else section_a
    bars_per_chord = 2 if rng.random() < 0.25 else 1
    chords = []
    for bar in range(bars):
        section = section_a if (bar // 8) % 2 == 0 else section_b
        chords.append(section[1][(bar // bars_per_chord) % 4])
    names = [section_a[0]] if section_b is section_a else [section_a[0], section_b[0]]
    return {
        "tonic": tonic,
        "mode": mode,
        "key": f"{NOTE_NAMES[tonic]} {mode}",
        "bars_per_chord": bars_per_chord,
        "progressions": names,
        "bar_chords": chords,
    }


def _plan_instruments(rng: np.random.Generator) -> dict:
    family = _pick(rng, tuple(OTHER_FAMILIES))
    programs, styles = OTHER_FAMILIES[family]
    return {
        "drum_groove": _pick(rng, tuple(GROOVES)),
        "drum_kit": int(_pick(rng, DRUM_KITS)),
        "hat_note": RIDE if rng.random() < 0.2 else CLOSED_HAT,
        "bass_program": int(_pick(rng, BASS_PROGRAMS)),
        "bass_style": _pick(rng, BASS_STYLES),
        "other_family": family,
        "other_program": int(_pick(rng, programs)),
        "comp_style": _pick(rng, styles),
        "lead_program": int(_pick(rng, LEAD_PROGRAMS)) if rng.random() < 0.5 else None,
    }


def _plan_vocals(rng: np.random.Generator) -> dict:
    if rng.random() < 0.5:
        voice = f"{_pick(rng, ESPEAK_VOICES)}+{_pick(rng, ESPEAK_VARIANTS)}"
        return {
            "vocal_mode": "espeak",
            "vocal_program": None,
            "espeak_voice": voice,
            "espeak_speed": int(rng.integers(95, 141)),
            "espeak_pitch": int(rng.integers(25, 71)),
        }
    return {
        "vocal_mode": "gm",
        "vocal_program": int(_pick(rng, CHOIR_PROGRAMS)),
        "espeak_voice": None,
        "espeak_speed": None,
        "espeak_pitch": None,
    }


def plan_track(seed: int, index: int, split: str | None, seconds: float) -> TrackPlan:
    """Draw the musical choices of track ``index`` (independent of the track count)."""
    rng = np.random.default_rng([seed, index, 0])
    bpm = int(rng.integers(80, 141))
    bars = int(math.ceil(seconds * bpm / 240.0)) + 1
    gains = {stem: round(float(rng.uniform(*GAIN_DB[stem])), 2) for stem in STEMS}
    return TrackPlan(
        index=index,
        name=f"track_{index:04d}",
        split=split,
        seed=[seed, index],
        bpm=bpm,
        bars=bars,
        gains_db=gains,
        **_plan_harmony(rng, bars),
        **_plan_instruments(rng),
        **_plan_vocals(rng),
    )


def stem_rng(plan: TrackPlan, stem: str) -> np.random.Generator:
    """An independent random stream per (track, stem)."""
    return np.random.default_rng([plan.seed[0], plan.index, 1 + STEMS.index(stem)])


# ---------------------------------------------------------------- composition


def _velocity(rng: np.random.Generator, base: int, spread: int = 8) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def _chord_pcs(plan: TrackPlan, degree: int) -> list[int]:
    scale = SCALES[plan.mode]
    return [(plan.tonic + scale[(degree + k) % 7]) % 12 for k in (0, 2, 4)]


def _voice(pcs: list[int], low: int) -> list[int]:
    """Close voicing of pitch classes within the octave starting at ``low``."""
    return sorted(low + (pc - low) % 12 for pc in pcs)


def _drum_fill(rng: np.random.Generator, start: float) -> list[Note]:
    notes, index = [], int(rng.integers(0, 3))
    for step in range(12, 16):
        index = min(index + int(rng.integers(0, 3)), len(FILL_NOTES) - 1)
        for half in (0.0, 0.125) if rng.random() < 0.4 else (0.0,):
            beat = start + step * 0.25 + half
            notes.append((beat, 0.1, DRUM_CHANNEL, FILL_NOTES[index], _velocity(rng, 105, 12)))
    return notes


def _drum_bar(plan: TrackPlan, rng: np.random.Generator, bar: int) -> list[Note]:
    groove, start = GROOVES[plan.drum_groove], bar * 4.0
    fill = bar % 4 == 3 and rng.random() < 0.6
    notes: list[Note] = []
    if bar % 4 == 0 and (bar == 0 or rng.random() < 0.7):
        notes.append((start, 0.5, DRUM_CHANNEL, CRASH, _velocity(rng, 100)))
    for step in range(12 if fill else 16):
        beat = start + step * 0.25 + (abs(rng.normal(0, 0.006)) if step else 0.0)
        hits = []
        if step in groove["kick"] or (step % 2 == 0 and rng.random() < 0.05):
            hits.append((KICK, _velocity(rng, 110)))
        if step in groove["snare"]:
            hits.append((SNARE if rng.random() < 0.9 else CLAP, _velocity(rng, 108)))
        elif step in groove["ghost"] and rng.random() < 0.6:
            hits.append((SNARE, _velocity(rng, 40)))
        if step % groove["hat"] == 0:
            hat = OPEN_HAT if step in groove["open"] else plan.hat_note
            hits.append((hat, _velocity(rng, 92 if step % 4 == 0 else 66)))
        notes.extend((beat, 0.1, DRUM_CHANNEL, pitch, vel) for pitch, vel in hits)
    return notes + (_drum_fill(rng, start) if fill else [])


def drum_notes(plan: TrackPlan, rng: np.random.Generator) -> list[Note]:
    return [note for bar in range(plan.bars) for note in _drum_bar(plan, rng, bar)]


def _bass_bar(plan: TrackPlan, rng: np.random.Generator, bar: int) -> list[tuple[float, float, int]]:
    """(onset, length, pitch) of one bar of the bass line, in beats within the bar."""
    root = 28 + (_chord_pcs(plan, plan.bar_chords[bar])[0] - 4) % 12
    fifth, octave = root + 7, root + 12
    style = plan.bass_style
    if style == "whole":
        if rng.random() < 0.5:
            return [(0, 3.8, root)]
        return [(0, 1.9, root), (2, 1.9, _pick(rng, (root, fifth)))]
    if style == "eighths":
        return [(i * 0.5, 0.45, octave if i == 7 and rng.random() < 0.3 else root) for i in range(8)]
    if style == "root_fifth":
        return [(0, 0.9, root), (1, 0.9, fifth), (2, 0.9, octave), (3, 0.9, fifth)]
    if style == "syncopated":
        onsets = [0] + [s for s in (3, 6, 8, 10, 14) if rng.random() < 0.6]
        ends = onsets[1:] + [16]
        return [
            (s * 0.25, (e - s) * 0.25 * 0.9, root if s == 0 else _pick(rng, (root, fifth, octave)))
            for s, e in zip(onsets, ends, strict=True)
        ]
    nxt = 28 + (_chord_pcs(plan, plan.bar_chords[(bar + 1) % plan.bars])[0] - 4) % 12
    third = root + (_chord_pcs(plan, plan.bar_chords[bar])[1] - root) % 12
    return [(0, 0.9, root), (1, 0.9, third), (2, 0.9, fifth), (3, 0.9, nxt + _pick(rng, (-1, 1)))]


def bass_notes(plan: TrackPlan, rng: np.random.Generator) -> list[Note]:
    notes: list[Note] = []
    for bar in range(plan.bars):
        if bar >= 2 and rng.random() < 0.05:
            continue  # the bass rests for a bar
        for onset, length, pitch in _bass_bar(plan, rng, bar):
            notes.append((bar * 4 + onset, length, 0, int(pitch), _velocity(rng, 100, 10)))
    return notes


def _comp_bar(plan: TrackPlan, rng: np.random.Generator, bar: int, rhythm) -> list[Note]:
    chord = _voice(_chord_pcs(plan, plan.bar_chords[bar]), 55)
    start, style = bar * 4.0, plan.comp_style
    if style == "pad":
        return [(start, 3.95, 0, p, _velocity(rng, 72)) for p in chord]
    if style == "arpeggio":
        tones = chord + [chord[0] + 12]
        return [(start + i * 0.5, 0.48, 0, tones[i % 4], _velocity(rng, 78)) for i in range(8)]
    if style == "ballad":
        low = [(start, 3.9, 0, chord[0] - 12, _velocity(rng, 75))]
        return low + [(start + b, 1.9, 0, p, _velocity(rng, 70)) for b in (0, 2) for p in chord]
    onsets = STRUM_RHYTHM if style == "strum" else rhythm
    ends = list(onsets[1:]) + [4.0]
    notes = []
    stagger = 0.02 if style == "strum" else 0.0
    for onset, end in zip(onsets, ends, strict=True):
        length = (end - onset) * (0.95 if style == "strum" else 0.45)
        for k, pitch in enumerate(chord):
            notes.append((start + onset + stagger * k, length, 0, pitch, _velocity(rng, 80)))
    return notes


def _scale_pitch(plan: TrackPlan, idx: int, base: int) -> int:
    scale = SCALES[plan.mode]
    return base + plan.tonic - (12 if plan.tonic > 6 else 0) + 12 * (idx // 7) + scale[idx % 7]


def _snap_to_chord(idx: int, degree: int) -> int:
    tones = {(degree + k) % 7 for k in (0, 2, 4)}
    return min((i for i in range(idx - 3, idx + 4) if i % 7 in tones), key=lambda i: (abs(i - idx), i))


def _melody_bar(plan: TrackPlan, rng: np.random.Generator, bar: int, state: dict, voice: dict) -> list[Note]:
    """One bar of a chord-aware random-walk melody; ``voice`` holds rhythms, base, channel, range."""
    notes = []
    for onset, length in _pick(rng, voice["rhythms"]):
        idx = int(np.clip(state["idx"] + _pick(rng, MELODY_STEPS), 0, voice["top"]))
        if onset % 2 == 0:
            idx = _snap_to_chord(idx, plan.bar_chords[bar])
        state["idx"] = idx
        pitch = _scale_pitch(plan, idx, voice["base"])
        velocity = _velocity(rng, voice["velocity"])
        notes.append((bar * 4 + onset, length * 0.95, voice["channel"], pitch, velocity))
    return notes


def melody_notes(plan: TrackPlan, rng: np.random.Generator, voice: dict, rest_p: float) -> list[Note]:
    """A melody over all bars, resting for a bar with probability ``rest_p`` (never in bars 0-1)."""
    state, notes = {"idx": int(rng.integers(0, 5))}, []
    for bar in range(plan.bars):
        if bar >= 2 and rng.random() < rest_p:
            continue
        notes.extend(_melody_bar(plan, rng, bar, state, voice))
    return notes


def other_midi(plan: TrackPlan, rng: np.random.Generator) -> bytes:
    rhythm = _pick(rng, STAB_RHYTHMS)
    notes = [n for bar in range(plan.bars) for n in _comp_bar(plan, rng, bar, rhythm)]
    programs = [(0, plan.other_program)]
    if plan.lead_program is not None:
        lead = {"rhythms": LEAD_RHYTHMS, "base": 72, "channel": 1, "top": 10, "velocity": 100}
        notes += melody_notes(plan, rng, lead, rest_p=0.25)
        programs.append((1, plan.lead_program))
    return midi_file_bytes(notes, programs, plan.bpm)


def choir_midi(plan: TrackPlan, rng: np.random.Generator) -> bytes:
    voice = {"rhythms": CHOIR_RHYTHMS, "base": 62, "channel": 0, "top": 9, "velocity": 95}
    return midi_file_bytes(melody_notes(plan, rng, voice, rest_p=0.12), [(0, plan.vocal_program)], plan.bpm)


# ---------------------------------------------------------------- audio


def run_tool(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RenderError(f"{cmd[0]} exited with {result.returncode}: {detail[0]}")


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    return audio.mean(axis=1), int(rate)


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample with soxr (HQ) or, where it is missing, scipy's polyphase filter."""
    if src == dst:
        return audio
    try:
        import soxr
    except ImportError:
        from scipy.signal import resample_poly

        g = math.gcd(src, dst)
        return resample_poly(audio, dst // g, src // g)
    return soxr.resample(audio, src, dst, quality="HQ")


def render_midi(midi: bytes, workdir: Path, name: str, cfg: RenderConfig) -> np.ndarray:
    """Render a MIDI file with FluidSynth (float WAV, reverb and chorus on) to mono."""
    mid, wav = workdir / f"{name}.mid", workdir / f"{name}.wav"
    mid.write_bytes(midi)
    run_tool(
        [
            "fluidsynth",
            "-ni",
            "-q",
            "-o",
            "synth.dynamic-sample-loading=1",
            "-F",
            str(wav),
            "-O",
            "float",
            "-T",
            "wav",
            "-r",
            str(cfg.sample_rate),
            "-g",
            str(FLUID_GAIN),
            str(cfg.soundfont),
            str(mid),
        ]
    )
    return read_mono(wav)[0]


def _lyric_line(rng: np.random.Generator, seconds: float, speed: int) -> str:
    fit = int(np.clip(seconds * speed / 60.0, 2, 10))
    count = int(rng.integers(max(2, fit - 1), fit + 2))
    return " ".join(_pick(rng, LYRIC_WORDS) for _ in range(count))


def _espeak_phrase(
    plan: TrackPlan, rng: np.random.Generator, bar: int, workdir: Path, cfg: RenderConfig
) -> np.ndarray:
    bar_seconds = 240.0 / plan.bpm
    speed = int(plan.espeak_speed + rng.integers(-10, 11))
    pitch = int(np.clip(plan.espeak_pitch + DEGREE_PITCH[plan.bar_chords[bar]], 0, 99))
    wav = workdir / f"vocal_{bar:04d}.wav"
    text = _lyric_line(rng, bar_seconds, speed)
    run_tool(
        [
            "espeak-ng",
            "-w",
            str(wav),
            "-v",
            plan.espeak_voice,
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "-g",
            str(int(rng.integers(1, 6))),
            text,
        ]
    )
    audio, rate = read_mono(wav)
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    audio = audio[loud[0] : loud[-1] + 1] if loud.size else audio
    return resample(audio, rate, cfg.sample_rate)


def espeak_vocals(plan: TrackPlan, rng: np.random.Generator, workdir: Path, cfg: RenderConfig) -> np.ndarray:
    """espeak-ng phrases placed at bar boundaries (some on an off-beat), one bar long at most."""
    out = np.zeros(cfg.n_samples)
    bar_len, beat_len = 240.0 / plan.bpm * cfg.sample_rate, 60.0 / plan.bpm * cfg.sample_rate
    fade = int(0.03 * cfg.sample_rate)
    for bar in range(plan.bars):
        if bar * bar_len >= cfg.n_samples:
            break
        if bar >= 2 and rng.random() < 0.12:
            continue  # the singer rests for a bar
        phrase = _espeak_phrase(plan, rng, bar, workdir, cfg)
        start = int(round(bar * bar_len + _pick(rng, (0.0, 0.0, 0.0, 0.5, 1.0)) * beat_len))
        stop = min(int(round((bar + 1) * bar_len)), cfg.n_samples)
        phrase = phrase[: max(stop - start, 0)].copy()
        if phrase.size > 2 * fade:
            phrase[-fade:] *= np.linspace(1.0, 0.0, fade)
        out[start : start + phrase.size] += phrase
    return out


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    return audio[:n] if audio.size >= n else np.pad(audio, (0, n - audio.size))


def render_stems(plan: TrackPlan, cfg: RenderConfig, workdir: Path) -> dict[str, np.ndarray]:
    """Compose and render the four raw stems of a track, each exactly ``n_samples`` long."""
    kit = [(DRUM_CHANNEL, plan.drum_kit)]
    drums = midi_file_bytes(drum_notes(plan, stem_rng(plan, "drums")), kit, plan.bpm)
    bass = midi_file_bytes(bass_notes(plan, stem_rng(plan, "bass")), [(0, plan.bass_program)], plan.bpm)
    stems = {
        "bass": render_midi(bass, workdir, "bass", cfg),
        "drums": render_midi(drums, workdir, "drums", cfg),
        "other": render_midi(other_midi(plan, stem_rng(plan, "other")), workdir, "other", cfg),
    }
    if plan.vocal_mode == "espeak":
        stems["vocals"] = espeak_vocals(plan, stem_rng(plan, "vocals"), workdir, cfg)
    else:
        stems["vocals"] = render_midi(choir_midi(plan, stem_rng(plan, "vocals")), workdir, "vocals", cfg)
    return {name: fit_length(audio, cfg.n_samples) for name, audio in stems.items()}


def mix_stems(stems: dict[str, np.ndarray], gains_db: dict[str, float]) -> dict[str, np.ndarray]:
    """Normalise and gain the stems; the mixture is their exact float32 sum, peak <= 0.99."""
    out = {}
    for name in STEMS:
        rms = float(np.sqrt(np.mean(stems[name] ** 2)))
        scale = STEM_RMS * 10.0 ** (gains_db[name] / 20.0) / rms if rms > 1e-9 else 0.0
        out[name] = (stems[name] * scale).astype(np.float32)
    mixture = out["bass"] + out["drums"] + out["other"] + out["vocals"]
    peak = float(np.max(np.abs(mixture)))
    if peak > PEAK_LIMIT:
        factor = np.float32(PEAK_LIMIT / peak)
        out = {name: audio * factor for name, audio in out.items()}
        mixture = out["bass"] + out["drums"] + out["other"] + out["vocals"]
    out[MIXTURE] = mixture
    return out


def write_wav_float(path: Path, audio: np.ndarray, rate: int) -> None:
    """Write mono 32-bit float WAV (no PEAK chunk or timestamp) via a temp name."""
    data = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", 3, 1, rate, rate * 4, 4, 32, 0)
    fact = b"fact" + struct.pack("<II", 4, audio.size)
    riff_size = 4 + 8 + len(fmt) + len(fact) + 8 + len(data)
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE")
        handle.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt + fact)
        handle.write(b"data" + struct.pack("<I", len(data)))
        handle.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------- tracks and corpus


def track_complete(track_dir: Path, cfg: RenderConfig) -> bool:
    for name in (*STEMS, MIXTURE):
        path = track_dir / f"{name}.wav"
        try:
            info = sf.info(str(path))
        except (OSError, RuntimeError):
            return False
        if info.frames != cfg.n_samples or info.samplerate != cfg.sample_rate or info.channels != 1:
            return False
    return True


def render_track(plan: TrackPlan, cfg: RenderConfig, resume: bool) -> tuple[str, str]:
    """Render one track into its folder; returns (name, "written" | "skipped")."""
    track_dir = cfg.out_dir / plan.relpath
    if resume and track_complete(track_dir, cfg):
        return plan.name, "skipped"
    track_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f"lincae-{plan.name}-") as tmp:
            audio = mix_stems(render_stems(plan, cfg, Path(tmp)), plan.gains_db)
    except RenderError as exc:
        raise RenderError(f"{plan.name}: {exc}") from None
    for name in (*STEMS, MIXTURE):  # mixture last: its presence marks a finished track
        write_wav_float(track_dir / f"{name}.wav", audio[name], cfg.sample_rate)
    return plan.name, "written"


def find_soundfont(explicit: str | None) -> Path:
    candidates = (explicit,) if explicit else SOUNDFONT_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise MissingDependency(f"GM soundfont not found ({', '.join(c for c in candidates if c)})")


def check_dependencies(soundfont: str | None) -> Path:
    for tool in ("fluidsynth", "espeak-ng"):
        if shutil.which(tool) is None:
            raise MissingDependency(f"{tool} not found on PATH")
    return find_soundfont(soundfont)


def tool_versions() -> dict[str, str]:
    versions = {}
    for tool in ("fluidsynth", "espeak-ng"):
        result = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
        versions[tool] = (result.stdout.strip().splitlines() or ["unknown"])[0]
    return versions


def split_for(index: int, tracks: int, valid: int) -> str | None:
    if valid <= 0:
        return None
    return "valid" if index >= tracks - valid else "train"


def previous_fingerprint(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / "corpus.json").read_text()).get("render_config")
    except (OSError, ValueError, AttributeError):
        return None


def write_manifest(
    cfg: RenderConfig, args: argparse.Namespace, plans: list[TrackPlan], complete: bool
) -> None:
    tracks = [{"path": plan.relpath, **asdict(plan)} for plan in plans]
    manifest = {
        "corpus": "lincae procedural multi-stem corpus (MUSDB18-HQ layout)",
        "script": "scripts/render_corpus.py",
        "version": SCRIPT_VERSION,
        "seed": cfg.seed,
        "arguments": {
            "tracks": args.tracks,
            "seconds": args.seconds,
            "sample_rate": args.sample_rate,
            "jobs": args.jobs,
            "split_valid": args.split_valid,
            "soundfont": str(cfg.soundfont),
        },
        "render_config": cfg.fingerprint(),
        "tools": tool_versions(),
        "audio": {"format": "WAV", "subtype": "FLOAT", "channels": 1, "frames": cfg.n_samples},
        "stems": [MIXTURE, *STEMS],
        "total_hours": len(plans) * cfg.seconds / 3600.0,
        "complete": complete,
        "tracks": tracks,
    }
    path = cfg.out_dir / "corpus.json"
    tmp = path.with_name(".corpus.json.partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


def render_all(plans: list[TrackPlan], cfg: RenderConfig, jobs: int, resume: bool) -> list[tuple[str, str]]:
    tasks = (delayed(render_track)(plan, cfg, resume) for plan in plans)
    results = []
    with tqdm(total=len(plans), desc="render_corpus", unit="track", file=sys.stderr) as progress:
        for result in Parallel(n_jobs=jobs, return_as="generator")(tasks):
            results.append(result)
            progress.update(1)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Render a seeded procedural multi-stem music corpus (MUSDB18-HQ layout) "
        "with fluidsynth and espeak-ng."
    )
    parser.add_argument("out_dir", type=Path, help="output folder (created if needed)")
    parser.add_argument("--tracks", type=int, required=True, help="number of tracks")
    parser.add_argument("--seconds", type=float, required=True, help="length of every track in seconds")
    parser.add_argument("--seed", type=int, required=True, help="corpus seed (>= 0)")
    parser.add_argument("--sample-rate", type=int, default=44100, help="sample rate in Hz (default 44100)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel tracks (joblib; default 1)")
    parser.add_argument(
        "--split-valid",
        type=int,
        default=0,
        metavar="K",
        help="put the last K tracks under valid/ and the rest under train/",
    )
    parser.add_argument("--soundfont", default=None, help="GM soundfont (default: FluidR3_GM.sf2)")
    args = parser.parse_args(argv)
    problems = [
        (args.tracks < 1, "--tracks must be >= 1"),
        (args.seconds <= 0, "--seconds must be > 0"),
        (args.seed < 0, "--seed must be >= 0"),
        (args.jobs < 1, "--jobs must be >= 1"),
        (not 8000 <= args.sample_rate <= 96000, "--sample-rate must be within 8000..96000"),
        (not 0 <= args.split_valid <= args.tracks, "--split-valid must be within 0..--tracks"),
    ]
    for bad, message in problems:
        if bad:
            parser.error(message)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        soundfont = check_dependencies(args.soundfont)
        cfg = RenderConfig(args.out_dir.resolve(), args.seed, args.seconds, args.sample_rate, soundfont)
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        plans = [
            plan_track(args.seed, i, split_for(i, args.tracks, args.split_valid), args.seconds)
            for i in range(args.tracks)
        ]
        resume = previous_fingerprint(cfg.out_dir) == cfg.fingerprint()
        write_manifest(cfg, args, plans, complete=False)
        results = render_all(plans, cfg, args.jobs, resume)
        write_manifest(cfg, args, plans, complete=True)
    except MissingDependency as exc:
        print(f"render_corpus.py: error: {exc}; {INSTALL_HINT}", file=sys.stderr)
        return 1
    except RenderError as exc:
        print(f"render_corpus.py: error: {exc}", file=sys.stderr)
        return 1
    written = sum(status == "written" for _, status in results)
    hours = len(plans) * cfg.seconds / 3600.0
    print(
        f"render_corpus: {len(plans)} tracks in {cfg.out_dir} ({written} rendered, "
        f"{len(plans) - written} skipped), {hours:.4f} h of audio, {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

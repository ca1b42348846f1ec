"""Language ID and transcript routing on real speech in five corpora (English, Polish, Mandarin,
Urdu), with the multilingual Whisper base the recognizer uses.

For each corpus, ``--n`` clips spread evenly over its sorted file list: how often base's
language ID names the spoken language, its median probability, what it says instead when
wrong, the time of language ID alone (base encoder on the audio padded to ``--pad`` s +
``detect_language``), and what the text expert then gets: the tiny.en transcript (English),
a translation, or a masked text (and why). ``--pad`` may list several values to compare.

    .venv/bin/python bench/language.py [--data ../shared/data] [--n 50] [--pad 5]
        [--no-route] [--show 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

# (name, language, folder, how to list its clips)
CORPORA = [("RAVDESS", "en", "ravdess_speech", None),
           ("CREMA-D", "en", "crema_d_clips", "crema"),
           ("nEMO", "pl", "speech_more/nemo", "labels"),
           ("CASIA", "zh", "speech_more/casia", "labels"),
           ("URDU", "ur", "speech_more/urdu", "labels")]


def clip_paths(root: Path, folder: str, kind: str | None, n: int,
               offset: float = 0.0) -> list[Path]:
    """``n`` clips spread evenly over the corpus's sorted list (every speaker is reached);
    ``offset`` (0-1) shifts the picks by a fraction of the step: 0.5 gives clips disjoint from
    offset 0's, to check a rule chosen on them."""
    base = root / folder
    if kind == "labels":
        paths = sorted(base / r["path"] for r in csv.DictReader((base / "labels.csv").open()))
    elif kind == "crema":
        paths = sorted(base / f"{r['name']}.flv"
                       for r in csv.DictReader((base / "labels.csv").open()))
    else:
        paths = sorted(base.glob("**/*.flac"))
    if len(paths) <= n:
        return paths
    step = len(paths) / n
    return [paths[int((i + offset) * step)] for i in range(n)]


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from multimodal_emotion import media
    from multimodal_emotion.datasets import default_data_root
    from multimodal_emotion.encoders.language import LanguageRouter, load_base
    from multimodal_emotion.encoders.text import FasterWhisperTranscriber

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--pad", type=float, nargs="+", default=[5.0])
    p.add_argument("--no-route", action="store_true", help="language ID only, no transcripts")
    p.add_argument("--show", type=int, default=3, help="example transcripts per corpus (every "
                   "translation and every English transcript of a non-English clip is shown)")
    p.add_argument("--offset", type=float, default=0.0, help="shift the picked clips (0-1)")
    p.add_argument("--corpora", nargs="+", default=None, help="only these, e.g. nEMO CASIA")
    args = p.parse_args()
    root = Path(args.data) if args.data else default_data_root()

    base = load_base()
    english = FasterWhisperTranscriber()
    routers = {pad: LanguageRouter(english, base, pad_to_s=pad) for pad in args.pad}
    clips = {name: [media.load(c, fps=1).audio for c in clip_paths(root, folder, kind, args.n,
                                                                        args.offset)]
             for name, _, folder, kind in CORPORA if (root / folder).exists()
             and (not args.corpora or name in args.corpora)}
    print(f"data: {root}; {args.n} clips per corpus (fewer where the corpus has fewer), "
          f"offset {args.offset:g}; cores={os.cpu_count()}")
    for pad, router in routers.items():
        print(f"\n## language ID: Whisper base encoder on the audio padded to {pad:g} s")
        print("| corpus | language | clips | correct | probability when correct: median (min) | "
              "said instead | called English (its probabilities) | median ms |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, lang, _, _ in CORPORA:
            if name not in clips:
                continue
            found, times = [], []
            for wave in clips[name]:
                t = time.perf_counter()
                found.append(router.detect(router.encode_base(wave)))
                times.append((time.perf_counter() - t) * 1000)
            ok = [pr for lg, pr in found if lg == lang]
            wrong = Counter(lg for lg, _ in found if lg != lang).most_common(3)
            as_en = sorted(pr for lg, pr in found if lg == "en") if lang != "en" else []
            print(f"| {name} | {lang} | {len(found)} | {len(ok)}/{len(found)} "
                  f"({100 * len(ok) / len(found):.0f} %) | "
                  + (f"{statistics.median(ok):.2f} ({min(ok):.2f})" if ok else "-") + " | "
                  f"{', '.join(f'{lg} x{c}' for lg, c in wrong) or '-'} | "
                  + (f"{len(as_en)} ({', '.join(f'{pr:.2f}' for pr in as_en)})" if as_en
                     else ("-" if lang == "en" else "0")) + " | "
                  f"{statistics.median(times):.0f} |")
    if args.no_route:
        return 0
    router = routers[args.pad[0]]
    print(f"\n## what the text expert gets (pad {args.pad[0]:g} s; rules: "
          f"{vars(router.rules)})")
    print("| corpus | clips | English transcript (tiny.en) | translated | masked | "
          "masked because | median ms (whole routing) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    examples = []
    for name, lang, _, _ in CORPORA:
        if name not in clips:
            continue
        kinds, reasons, times = Counter(), Counter(), []
        for i, wave in enumerate(clips[name]):
            t = time.perf_counter()
            tr = router.transcribe(wave)
            times.append((time.perf_counter() - t) * 1000)
            kind = "masked" if tr.reason else ("translated" if tr.translated else "english")
            kinds[kind] += 1
            if tr.reason:
                reasons[_reason_kind(tr.reason)] += 1
            if i < args.show or kind == "translated" or (kind == "english" and lang != "en"):
                examples.append(f"{name} [{tr.language} {tr.language_probability:.2f}] "
                                f"{kind}: {tr.original!r} -> {tr.text!r}"
                                + (f" ({tr.reason})" if tr.reason else f" {tr.doubt}"))
        print(f"| {name} | {sum(kinds.values())} | {kinds['english']} | {kinds['translated']} "
              f"| {kinds['masked']} | {', '.join(f'{r} x{c}' for r, c in reasons.items()) or '-'}"
              f" | {statistics.median(times):.0f} |")
    print("\nexamples (original -> what the text expert reads):")
    for e in examples:
        print("  " + e)
    return 0


def _reason_kind(reason: str) -> str:
    if "language uncertain" in reason:
        return "language uncertain"
    if "log-probability" in reason:
        return "low log-prob"
    if "compression" in reason:
        return "repetitive"
    if "no speech" in reason:
        return "no speech"
    return reason


if __name__ == "__main__":
    sys.exit(main())

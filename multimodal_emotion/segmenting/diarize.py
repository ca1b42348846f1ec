"""Who spoke when in a mono recording: speaker embeddings of short speech windows, clustered.

The voice encoder is resemblyzer's (a 3-layer LSTM d-vector model, 256-d, whose weights ship
inside the wheel, so it runs offline). :class:`WindowEmbedder` is fed the Silero frames of the
first pass as they are decoded: it keeps only speech frames (the encoder was trained on speech
with silences trimmed), strings them into *pieces* that a silence of ``piece_gap_s`` or more
ends (a change of speaker nearly always sits in such a pause, so no window straddles it), and
embeds windows of ``window_s`` (1.6 s, the encoder's own partial length) every ``hop_s`` along
each piece. Audio is dropped as soon as its windows are embedded; what is kept is one 256-float
vector and a time span per window (about 1 KB per 0.8 s of speech).

:func:`cluster_speakers` then groups the windows: into ``speakers`` groups when the caller
knows the count, else into as many as agglomerative clustering finds at a cosine distance
threshold (``DEFAULT_DISTANCE``). The groups themselves come from spectral clustering, into
that many groups or into one or two more merged back, whichever partition makes the speaker
change most often between speech pieces, with the embeddings' silhouette as a counterweight
(:mod:`.turn_taking`: an angry customer's windows can lie farther from their calm ones than
the agent's do). Every window finally goes to its nearest centroid, and a window whose label
differs from both neighbours in the same piece takes theirs (one odd 1.6 s window is more
often a noisy embedding than a one-second turn).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError
from ..media import SAMPLE_RATE
from . import turn_taking
from .vad import FRAME, FRAME_S, VadConfig

EMBED_DIM = 256
# Cosine distance at which two groups of windows count as two speakers when the count is not
# given: chosen on calls of RAVDESS actors 1-12 (`bench/calls.py --tune` prints DER for each
# value; README "Calls"); the benchmark calls use actors 13-24.
DEFAULT_DISTANCE = 0.45
MAX_CLUSTERED = 1200  # windows clustered directly (the rest go to the nearest centroid)


MEL_N_FFT, MEL_HOP, MEL_BANDS = 400, 160, 40  # resemblyzer's 25 ms / 10 ms, 40 bands
NORM_DBFS = -30.0  # resemblyzer's volume target (raised only, never lowered)


class _VoiceEncoder:
    """resemblyzer's encoder (3-layer LSTM 40 -> 256, a linear layer, ReLU, L2 norm), built
    here and given the weights that ship in the resemblyzer wheel (``pretrained.pt``).

    Built rather than imported because ``import resemblyzer`` loads its ``audio`` module, which
    imports librosa's feature module and webrtcvad for the silence trimming this pipeline does
    with Silero: seconds of import for nothing. The test suite checks that the embeddings equal
    ``resemblyzer.VoiceEncoder``'s."""

    def __init__(self) -> None:
        import importlib.util
        import os

        import torch

        spec = importlib.util.find_spec("resemblyzer")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError("speaker diarization needs resemblyzer's encoder weights: "
                             "pip install --no-deps resemblyzer==0.1.4 (`make install` does it)")
        path = os.path.join(list(spec.submodule_search_locations)[0], "pretrained.pt")
        if not os.path.exists(path):
            raise ModelError(f"resemblyzer's encoder weights are missing ({path})")
        self.torch = torch
        self.lstm = torch.nn.LSTM(MEL_BANDS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, EMBED_DIM)
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items()
                                     if k.startswith("linear.")})
        self.lstm.eval(), self.linear.eval()

    def __call__(self, mels: np.ndarray) -> np.ndarray:
        """``[B, T, 40]`` mel frames -> ``[B, 256]`` L2-normed embeddings. One thread: the
        LSTM's small steps ran 6x faster on one thread than on two on busy cores (64 windows:
        0.66 s against 4.0 s)."""
        torch = self.torch
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                _, (hidden, _) = self.lstm(torch.from_numpy(np.ascontiguousarray(mels)))
                emb = torch.relu(self.linear(hidden[-1]))
                emb = emb / torch.norm(emb, dim=1, keepdim=True).clamp_min(1e-9)
        finally:
            torch.set_num_threads(threads)
        return emb.numpy().astype(np.float32)


@functools.lru_cache(maxsize=1)
def _encoder() -> _VoiceEncoder:
    return _VoiceEncoder()


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """Slaney-style mel filterbank ``[40, 201]`` (librosa.filters.mel's defaults: fmin 0, fmax
    8 kHz, area-normalised triangles), computed with numpy."""
    def hz_to_mel(f):
        f = np.asarray(f, float)
        lin = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, lin)

    def mel_to_hz(m):
        m = np.asarray(m, float)
        lin = m * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, lin)

    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, MEL_N_FFT // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), MEL_BANDS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:MEL_BANDS + 2] - mel_f[:MEL_BANDS]))[:, None]
    return weights.astype(np.float32)


def _mel(wav: np.ndarray) -> np.ndarray:
    """``[T, 40]`` power mel frames as resemblyzer computes them (volume raised to -30 dBFS,
    centred 400-sample Hann frames every 160 samples, zero padding), with numpy in float32."""
    wav = np.asarray(wav, np.float32)
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if wav.size else 0.0
    if rms > 0:
        change = NORM_DBFS - 20 * np.log10(rms)
        if change > 0:
            wav = wav * np.float32(10 ** (change / 20))
    y = np.pad(wav, MEL_N_FFT // 2)
    n = 1 + (y.size - MEL_N_FFT) // MEL_HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, MEL_N_FFT)[::MEL_HOP][:n]
    spec = np.fft.rfft(frames * _hann(), axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return power @ _mel_basis().T


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """The periodic Hann window librosa uses for its STFT."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_N_FFT) / MEL_N_FFT)).astype(np.float32)


def embed_windows(wavs: list[np.ndarray]) -> np.ndarray:
    """L2-normed speaker embeddings ``[n, 256]`` of 16 kHz waveforms (windows of equal length
    run as one batch)."""
    if not wavs:
        return np.zeros((0, EMBED_DIM), np.float32)
    enc = _encoder()
    mels = [_mel(w) for w in wavs]
    out = np.zeros((len(wavs), EMBED_DIM), np.float32)
    by_len: dict[int, list[int]] = {}
    for i, m in enumerate(mels):
        by_len.setdefault(m.shape[0], []).append(i)
    for idx in by_len.values():
        out[idx] = enc(np.stack([mels[i] for i in idx]))
    return out


@dataclass
class SpeakerWindows:
    """The embedded windows of a recording: ``spans[i] = (start, end)`` seconds of window
    ``i``'s first and last speech frame, ``piece[i]`` the speech piece it belongs to, and its
    embedding ``vectors[i]``."""

    spans: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    piece: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBED_DIM), np.float32))

    @property
    def centres(self) -> np.ndarray:
        return self.spans.mean(1) if len(self.spans) else np.zeros(0)


class WindowEmbedder:
    """Builds :class:`SpeakerWindows` online from Silero frames and their scores."""

    def __init__(self, cfg: VadConfig | None = None, window_s: float = 1.6, hop_s: float = 0.8,
                 piece_gap_s: float = 0.25, min_window_s: float = 0.5,
                 batch: int = 32) -> None:
        self.cfg = cfg or VadConfig()
        self.win = int(round(window_s / FRAME_S))  # frames per window
        self.hop = max(1, int(round(hop_s / FRAME_S)))
        self.gap = max(1, int(round(piece_gap_s / FRAME_S)))
        self.min_win = max(1, int(round(min_window_s / FRAME_S)))
        self.batch = batch
        self.on = False  # hysteresis state
        self.silent = 0  # non-speech frames since the last speech frame
        self.frame_no = 0  # index of the next frame fed
        self.piece_no = 0
        self.buf: list[np.ndarray] = []  # speech frames of the open piece not yet dropped
        self.idx: list[int] = []  # their frame indices
        self.next_start = 0  # position in buf where the next window starts
        self.emitted_end = 0  # buf position where the last emitted window ended (0: none)
        self.pending: list[tuple[np.ndarray, float, float, int]] = []
        self._spans: list[tuple[float, float]] = []
        self._pieces: list[int] = []
        self._vectors: list[np.ndarray] = []

    def add(self, probs: np.ndarray, frames: np.ndarray) -> None:
        """Frames ``[k, 512]`` and their scores, in order, as :class:`StreamingVAD` gives them."""
        for p, f in zip(probs.tolist(), frames):
            self.on = p >= (self.cfg.neg_threshold if self.on else self.cfg.threshold)
            if self.on:
                self.silent = 0
                self.buf.append(f)
                self.idx.append(self.frame_no)
                if len(self.buf) - self.next_start >= self.win:
                    self._emit(self.next_start, self.next_start + self.win)
                    self.next_start += self.hop
                    self._trim()
            else:
                self.silent += 1
                if self.silent == self.gap and self.buf:
                    self._close_piece()
            self.frame_no += 1
        if len(self.pending) >= self.batch:
            self._flush()

    def finish(self) -> SpeakerWindows:
        """Close the open piece, embed what is pending, and return every window."""
        if self.buf:
            self._close_piece()
        self._flush()
        if not self._spans:
            return SpeakerWindows()
        return SpeakerWindows(np.asarray(self._spans, float), np.asarray(self._pieces, int),
                              np.stack(self._vectors).astype(np.float32))

    # -- internals ---------------------------------------------------------------------------
    def _emit(self, a: int, b: int) -> None:
        wav = np.concatenate(self.buf[a:b])
        self.pending.append((wav, self.idx[a] * FRAME_S, (self.idx[b - 1] + 1) * FRAME_S,
                             self.piece_no))
        self.emitted_end = b

    def _trim(self) -> None:
        """Drop frames no later window needs."""
        k = self.next_start
        if k > 0:
            del self.buf[:k], self.idx[:k]
            self.emitted_end = max(0, self.emitted_end - k)
            self.next_start = 0

    def _close_piece(self) -> None:
        """End the open piece. A piece shorter than one window (but at least ``min_window_s``)
        gets one window of its own length; the tail of a longer piece after its last window
        (under ``hop_s``) is left to that window (frames take the nearest window's speaker)."""
        if self.emitted_end == 0 and len(self.buf) >= self.min_win:
            self._emit(0, len(self.buf))
        self.buf, self.idx = [], []
        self.next_start = self.emitted_end = 0
        self.piece_no += 1

    def _flush(self) -> None:
        if not self.pending:
            return
        vecs = embed_windows([w for w, *_ in self.pending])
        for (_, a, b, piece), v in zip(self.pending, vecs):
            self._spans.append((a, b))
            self._pieces.append(piece)
            self._vectors.append(v)
        self.pending = []


def cluster_speakers(windows: SpeakerWindows, speakers: int | None = None,
                     distance: float = DEFAULT_DISTANCE, min_share: float = 0.05,
                     finer: tuple[int, ...] = (1, 2),
                     weight: float = turn_taking.SILHOUETTE_WEIGHT, centre: bool = True,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Speaker index per window and the L2-normed centroids ``[k, 256]``.

    The count: ``speakers`` when given (at most the number of windows); else agglomerative
    clustering (cosine, average linkage) cut at ``distance``, counting only clusters that hold
    at least ``min_share`` of the windows (a few stray windows are noise, not a third party).
    The partition: spectral clustering (:func:`spectral_labels`) into ``k`` groups and, for
    each ``e`` in ``finer``, into ``k + e`` groups merged back into ``k`` in every possible
    way; of these candidates the one whose speakers change most often from one speech piece to
    the next, plus ``weight`` times the embeddings' silhouette, is kept
    (:mod:`.turn_taking` says why: emotion moves the embeddings more than a second voice of
    the same sex does). With ``centre`` the partition is made on the windows less the call's
    mean window (L2-normed again): what two voices share (sex, line, words) dominates raw
    cosines, and removing it let the turn-taking rule split same-sex calls better on the
    tuning calls (mean DER 6.3 -> 5.3 %; alone, without the rule, it was worse). The count is
    estimated on the raw windows, where its threshold was chosen. Average linkage alone, asked
    for two clusters, tends to split off a handful of outlying windows (a shout, a laugh) and
    leave both voices together. Every window
    then goes to the nearest centroid of the finer groups (mapped through the merge), isolated
    flips inside a piece are smoothed, and labels are numbered by first appearance in time.

    Runs on one BLAS / OpenMP thread: on the two shared cores, two threads made the
    eigendecomposition of 1,200 windows 5-15x slower (0.5 s against 3-9 s) and k-means 50x
    (0.13 s against 6.2 s), as with the encoder's LSTM."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _cluster(windows, speakers, distance, min_share, finer, weight, centre)


def _cluster(windows: SpeakerWindows, speakers: int | None, distance: float, min_share: float,
             finer: tuple[int, ...], weight: float, centre: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import AgglomerativeClustering

    X = windows.vectors
    n = len(X)
    if n == 0:
        return np.zeros(0, int), np.zeros((0, EMBED_DIM), np.float32)
    # cluster an evenly spaced subset of a long call: the affinity matrix grows as n^2
    sub = np.linspace(0, n - 1, MAX_CLUSTERED).round().astype(int) if n > MAX_CLUSTERED \
        else np.arange(n)
    if speakers is not None:
        k = min(speakers, len(sub))
    elif len(sub) < 2:
        k = 1
    else:
        ahc = AgglomerativeClustering(n_clusters=None, distance_threshold=distance,
                                      metric="cosine", linkage="average").fit_predict(X[sub])
        k = max(1, int((np.bincount(ahc) / len(sub) >= min_share).sum()))
    Y = X
    if centre and k > 1:
        Y = X - X.mean(0)
        Y = (Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-9)).astype(np.float32)
    groups, merge = _partition(Y, windows, sub, k, finer, weight)
    labels = _smooth(merge[groups], windows.piece)
    # renumber by first appearance; drop centroids no window kept
    order: list[int] = []
    for lab in labels[np.argsort(windows.centres, kind="stable")]:
        if lab not in order:
            order.append(int(lab))
    remap = {old: new for new, old in enumerate(order)}
    labels = np.array([remap[int(x)] for x in labels], int)
    return labels, _centroids(X, labels, len(order))


def _partition(X: np.ndarray, windows: SpeakerWindows, sub: np.ndarray, k: int,
               finer: tuple[int, ...], weight: float) -> tuple[np.ndarray, np.ndarray]:
    """The chosen partition of the (L2-normed) vectors ``X`` of ``windows``: each window's
    group (nearest centroid of the groups clustered on ``sub``) and the map from those groups
    to the ``k`` speakers."""
    if k <= 1:
        return np.zeros(len(X), int), np.zeros(1, int)
    m = len(sub)
    search = [k + e for e in finer if k + e < m] \
        if k <= turn_taking.MAX_SEARCHED_SPEAKERS else []
    vecs = spectral_vectors(X[sub], max([k] + search)) if k < m else None
    base = spectral_labels(X[sub], k, vectors=vecs)
    cands = [(base, np.arange(k))]
    for kk in search:
        over = spectral_labels(X[sub], kk, vectors=vecs)
        cands.extend((over, mp) for mp in turn_taking.merges(kk, k))
    if len(cands) == 1:
        return _nearest(X, X[sub], base, k), np.arange(k)
    dist = np.clip(1.0 - X[sub] @ X[sub].T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    nearest: dict[int, np.ndarray] = {}  # finer partition (by id) -> every window's group
    best, best_score = None, -np.inf
    for groups_sub, mp in cands:
        key = id(groups_sub)
        if key not in nearest:
            nearest[key] = _nearest(X, X[sub], groups_sub, int(groups_sub.max()) + 1)
        s = turn_taking.score(mp[nearest[key]], windows.piece, windows.centres, dist,
                              mp[groups_sub], weight)
        if s > best_score:  # ties keep the earlier candidate: the plain partition first
            best, best_score = (nearest[key], mp), s
    return best


def _nearest(X: np.ndarray, Xc: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Every row of ``X`` to the nearest centroid of ``Xc`` grouped by ``labels``."""
    return np.argmax(X @ _centroids(Xc, labels, k).T, axis=1)


def spectral_labels(X: np.ndarray, k: int, neighbours: float = 0.15,
                    vectors: np.ndarray | None = None) -> np.ndarray:
    """``k`` groups of L2-normed embeddings by spectral clustering: each window is linked to
    its ``neighbours`` share of most similar windows (cosine), the links symmetrised, and the
    rows of the ``k`` smallest eigenvectors of the normalised graph Laplacian grouped with
    k-means (fixed seed). Linking only near neighbours makes the graph follow each voice's own
    spread, so one loud stretch does not become a speaker of its own. ``vectors``: those
    eigenvectors already computed (:func:`spectral_vectors`, at least ``k`` of them), so
    several ``k`` share one eigendecomposition."""
    from sklearn.cluster import KMeans

    n = len(X)
    if k >= n:
        return np.arange(n)
    if vectors is None:
        vectors = spectral_vectors(X, k, neighbours)
    E = vectors[:, :k]
    E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-9)
    return KMeans(k, n_init=10, random_state=0).fit_predict(E)


def spectral_vectors(X: np.ndarray, count: int, neighbours: float = 0.15) -> np.ndarray:
    """The ``count`` smallest eigenvectors ``[n, count]`` of the normalised Laplacian of the
    windows' nearest-neighbour graph (see :func:`spectral_labels`). Only those are computed:
    the full decomposition of a long call's 1,200 windows took seconds on a loaded core."""
    from scipy.linalg import eigh

    n = len(X)
    sim = X @ X.T
    m = max(2, int(round(neighbours * n)))
    links = np.zeros_like(sim)
    np.put_along_axis(links, np.argsort(-sim, axis=1)[:, :m], 1.0, axis=1)
    A = (links + links.T) / 2
    np.fill_diagonal(A, 0.0)
    d = np.maximum(A.sum(1), 1e-9)
    lap = np.eye(n) - A / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    _, vecs = eigh(lap, subset_by_index=[0, min(count, n) - 1])
    return vecs


def _centroids(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    cents = np.stack([X[labels == j].mean(0) for j in range(k)])
    return (cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)) \
        .astype(np.float32)


def _smooth(labels: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """A window whose neighbours in the same piece agree with each other but not with it takes
    their label."""
    out = labels.copy()
    for i in range(1, len(labels) - 1):
        if piece[i - 1] == piece[i] == piece[i + 1] and labels[i - 1] == labels[i + 1] \
                != labels[i]:
            out[i] = labels[i - 1]
    return out


def label_frames(windows: SpeakerWindows, labels: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Speaker index at each time in ``times``: that of the window whose centre is nearest
    (among the windows whose span holds the time when there are any)."""
    centres = windows.centres
    order = np.argsort(centres, kind="stable")
    c_sorted, l_sorted = centres[order], labels[order]
    spans = windows.spans[order]
    pos = np.searchsorted(c_sorted, times)
    out = np.zeros(times.size, int)
    for j, (t, p) in enumerate(zip(times.tolist(), pos.tolist())):
        cands = [i for i in range(max(0, p - 3), min(len(c_sorted), p + 3))]
        inside = [i for i in cands if spans[i, 0] <= t < spans[i, 1]]
        pool = inside or cands
        best = min(pool, key=lambda i: abs(c_sorted[i] - t))
        out[j] = l_sorted[best]
    return out


__all__ = ["SpeakerWindows", "WindowEmbedder", "cluster_speakers", "embed_windows",
           "label_frames", "DEFAULT_DISTANCE", "SAMPLE_RATE", "FRAME"]

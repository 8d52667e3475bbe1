"""Whisper's log-mel front end in numpy (float64), the reference barnabee-inference's Rust
`features::whisper_mel` is tested against and the features the converter's self-check feeds
both ONNX Runtime and CTranslate2.

Definition (openai/whisper `log_mel_spectrogram`, Hugging Face `WhisperFeatureExtractor`):
16 kHz audio in [-1, 1] padded with zeros (or truncated) to 30 s = 480,000 samples; STFT with
a 400-sample periodic Hann window, n_fft 400, hop 160, centred (reflect padding 200 each
side), power spectrum, the last frame dropped → 3000 frames; 80 Slaney mel filters (librosa
defaults: Slaney mel scale, area normalisation, 0 .. 8 kHz); log10 of max(mel, 1e-10);
clamped to (max - 8); (x + 4) / 4.

Usage: whisper_mel.py IN.f32 OUT.f32   (raw little-endian float32 samples → [80, 3000] float32)
"""
import sys

import numpy as np

RATE, N_FFT, HOP, N_MELS = 16000, 400, 160, 80
N_SAMPLES, N_FRAMES = 30 * RATE, 3000


def hz_to_mel(f):
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m):
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), m * f_sp)


def mel_filters(n_mels=N_MELS):
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels) (htk=False, norm='slaney')."""
    fft_hz = np.linspace(0, RATE / 2, 1 + N_FFT // 2)
    pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(RATE / 2), n_mels + 2))
    fdiff = np.diff(pts)
    ramps = pts[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    return w * (2.0 / (pts[2:n_mels + 2] - pts[:n_mels]))[:, None]


def log_mel(audio, n_mels=N_MELS):
    """[n_mels, 3000] float32 log-mel of 16 kHz float audio."""
    a = np.zeros(N_SAMPLES, np.float64)
    x = np.asarray(audio, np.float64)[:N_SAMPLES]
    a[: len(x)] = x
    padded = np.pad(a, N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    n = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2  # [3001, 201]
    mel = mel_filters(n_mels) @ power[:-1].T  # [n_mels, 3000]
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)


if __name__ == "__main__":
    samples = np.fromfile(sys.argv[1], dtype="<f4")
    log_mel(samples).astype("<f4").tofile(sys.argv[2])

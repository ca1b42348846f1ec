"""The shipped default model's encoder configs: what every trainer and bench must embed with.

A leaf module (imports nothing from the package) so that ``training.audio`` and the other
trainers can read the recipe without importing ``training.default_model``, which imports them:
imports run one way, from the orchestrator down to the pieces.
"""

from __future__ import annotations

ENCODERS = {
    # Whisper base (multilingual) encoder layers 1-4 (run in torch, stopped after layer 4),
    # mean+std each: 4,096-d; each utterance scaled to a -20 dBFS active level and its log-mel
    # padded to 5 s (bench/speech_corpora.py; training.speech). Its CTranslate2 front end is
    # language ID's copy of base, so the recognizer loads base once.
    "audio": {"name": "whisper", "model_path": "base", "layers": [1, 2, 3, 4],
              "pad_to_s": 5.0, "loudness_dbfs": -20.0},
    "transcriber": {"name": "faster-whisper"},
    # all-mpnet-base-v2 with LoRA adapters on its top 3 layers (training.text_encoder)
    "text": {"name": "mpnet", "checkpoint": "text_encoder"},
    # BlazeFace + one followed face + eye alignment (bench/face_detect.py); mirror-image
    # test-time augmentation: FER2013 Test 69.4 -> 70.4 % (bench/fer2013.py)
    "face": {"name": "blazeface-cnn", "checkpoint": "face_cnn", "flip_tta": True},
}

# The face CNN: a 30-epoch one-cycle run from scratch, continued by two one-cycle runs of 15
# epochs at a third of the peak learning rate, then the three kept checkpoints averaged
# (BatchNorm statistics recomputed; training.face_cnn.train_face_cnn_stages). FER2013 Test with
# mirror TTA: 68.8 % (first stage alone), 69.6 / 69.8 % (second / third), 70.4 % (average);
# chosen by the hold-out (69.3 / 69.9 / 69.5 / 70.5 %).
FACE_CNN_STAGES = ({"epochs": 30, "lr": 3e-3}, {"epochs": 15, "lr": 1e-3},
                   {"epochs": 15, "lr": 1e-3})
FACE_CNN_AVERAGE_STAGES = True

"""Fitting what the package ships: the face CNN, the MFCC-LSTM, expert heads and fusion heads.

Training works on cached embeddings (see :mod:`multimodal_emotion.cache`), so only encoders with
their own trainable weights ever see raw media during training.
"""

"""Segmenting a recording into turns: voice activity (:mod:`.vad`), speaker clustering for
mono mixes (:mod:`.diarize`), the streaming pass that ties them together (:mod:`.find`), roles
(:mod:`.roles`) and the scores that judge turns against a reference (:mod:`.scoring`)."""

from .find import TurnsResult, find_turns
from .roles import assign_roles
from .vad import VadConfig

__all__ = ["TurnsResult", "VadConfig", "assign_roles", "find_turns"]

# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv and install the package (torch pinned to the machine's CPU wheel) first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLIP ?=

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,demo]"
	# The openai-whisper extra without triton (a GPU kernel compiler, hundreds of MB, unused on CPU).
	$(PY) -m pip install -q --no-deps openai-whisper more-itertools tiktoken
	# BlazeFace, the default face detector: mediapipe 0.10.21 is the last release with the bundled
	# face models; it pins numpy<2 / protobuf<5 yet runs with numpy 2 and protobuf 7, so no deps
	# (the two it imports, attrs and protobuf, are in pyproject.toml).
	$(PY) -m pip install -q --no-deps mediapipe==0.10.21
	# resemblyzer's speaker encoder (mono diarization): only its weights file is loaded
	# (multimodal_emotion/segmenting/diarize.py builds the LSTM); it declares webrtcvad, which has
	# no wheel for this Python, so no deps (webrtcvad-wheels, in the test extra, stands in).
	$(PY) -m pip install -q --no-deps resemblyzer==0.1.4
	touch $@

install: $(VENV)/.installed

# Analyze CLIP=path (any video or audio file), or a demo clip built from a real face photo
# (scikit-image's astronaut) and eSpeak NG speech when no CLIP is given.
demo: install
	@if [ -n "$(CLIP)" ]; then $(VENV)/bin/mer analyze $(CLIP); else \
	  $(PY) -m multimodal_emotion.demo demo.mp4 >/dev/null && $(VENV)/bin/mer analyze demo.mp4; fi

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: install
	$(PY) bench/latency.py

clean:
	rm -rf $(VENV) demo.mp4 .pytest_cache

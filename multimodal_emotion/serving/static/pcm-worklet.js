// AudioWorklet for the live page: the microphone's samples, resampled to 16 kHz mono and
// converted to PCM16, posted to the page in 0.1 s pieces (1600 samples) with their index.
"use strict";

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;  // the context's rate over the wire's
    this.pos = 0;                     // fractional read position in the input
    this.out = new Int16Array(1600);
    this.n = 0;
    this.sent = 0;                    // 16 kHz samples posted so far
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const ch = input[0];
    // mono: the first channel (getUserMedia gives one for a microphone)
    while (this.pos < ch.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const next = i + 1 < ch.length ? ch[i + 1] : ch[i];
      const v = ch[i] + (next - ch[i]) * frac;  // linear interpolation
      this.out[this.n++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
      if (this.n === this.out.length) {
        this.port.postMessage({ pcm: this.out.buffer, first: this.sent }, [this.out.buffer]);
        this.sent += this.n;
        this.out = new Int16Array(1600);
        this.n = 0;
      }
      this.pos += this.ratio;
    }
    this.pos -= ch.length;
    return true;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);

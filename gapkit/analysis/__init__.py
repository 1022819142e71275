"""Measurements on trained models: the signal-to-noise ratio of gradient estimates
(:mod:`~gapkit.analysis.snr`), checkpoint sweeps of a bound under amortized or optimal inference
(:mod:`~gapkit.analysis.sweep`), and downstream classification from q(z|x)
(:mod:`~gapkit.analysis.classify`)."""

"""Inference procedures for a fixed decoder: optimal inference per image or by an encoder trained on
the test set (:mod:`~gapkit.inference.optimal`), iterative refinement by gradient steps (SVI/GDIR,
:mod:`~gapkit.inference.refine`), buffered SVI (:mod:`~gapkit.inference.bsvi`) and adaptive iterative
refinement of binary posteriors (AIR, :mod:`~gapkit.inference.air`)."""

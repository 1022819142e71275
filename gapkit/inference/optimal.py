"""Optimal inference: the best q for a fixed decoder, in two forms, batched over a whole dataset.

* :func:`per_point` - the textbook optimal q: free variational parameters (mu_i, log sigma_i) for
  every data point, all optimized at once by Adam on the sum of the per-point negative ELBOs
  (so each point's step does not shrink with the number of points), starting from the encoder's
  output. With the model fixed this is the best diagonal Gaussian for every point.
* :func:`encoder` - the paper's (Zhang et al. 2022, Section 2.1, Eq. 13): copy the trained encoder,
  fix the decoder, and train the copy on the evaluation set itself by maximizing its ELBO (the
  ``"optimal-encoder"`` inference of :mod:`gapkit.analysis.sweep`; "amortized" always means the plain,
  untouched encoder).

:class:`PerPoint` holds the settings of :func:`per_point`, and :data:`TUNED` the one well-tuned choice per
preset (cosine learning-rate decay) that chapters 1 and 2 both use: chapter 1's budget study (ELBO - IWAE-10
gap against steps, with and without decay) is the evidence for it.

The gap between the amortized encoder's bound and the optimal bound on test data is the
amortized-inference generalization gap
(`chapter 2 <https://gapkit.github.io/gapkit/notebooks/02_generalization_gaps.html>`_);
on training data it is the amortization gap
(`chapter 5 <https://gapkit.github.io/gapkit/notebooks/05_iterative_refinement.html>`_).
`Chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_ introduces both forms.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import torch

from .. import smoke
from ..checks import nonneg_int, number, positive_int
from .. import bounds as _bounds
from ..bounds import elbo
from ..estimators import log_weights
from ..progress import tqdm

__all__ = ["per_point", "encoder", "PerPoint", "TUNED", "tuned"]


def _check(steps, lr, K):
    nonneg_int("steps", steps)
    number("lr", lr, 0.0, lo_open=True)
    positive_int("K", K)


@smoke.capped("optimal inference (per point)", x="x", K="K", steps_arg="steps", per_row=("init",))
def per_point(model, x: torch.Tensor, steps: int = 200, lr: float = 1e-2, K: int = 1, init=None,
              generator: torch.Generator | None = None, seed: int = 0, progress: bool = False,
              bound="elbo", lr_decay: bool = False, on_step=None):
    """Per-data-point optimal Gaussian q for a fixed model: returns ``(mu, std)``, each (N, Z).

    Maximizes sum_i ELBO_i(mu_i, sigma_i) by Adam (``bound``: any bound of :mod:`gapkit.bounds` by
    name or function, e.g. ``"iwae"`` for the K-sample IWAE bound),
    with K reparameterized samples per point and step. ``init`` is ``(mu, std)``; by default
    the model's encoder output. The model's parameters are not changed (no gradient reaches them).
    The points do not interact: the sum's gradient with respect to (mu_i, sigma_i) is point i's own.
    ``lr_decay=True`` anneals the step size along a cosine from ``lr`` to 0 over ``steps``, so that
    the last iterates settle at the optimum instead of jittering with the Monte Carlo noise of the
    gradient (`chapter 1 <https://gapkit.github.io/gapkit/notebooks/01_elbo_tightness.html>`_
    uses it to recover the exact posterior of the linear-Gaussian model). ``on_step(t, mu, std)``, when
    given, sees the iterate after step t = 1 .. steps (detached): with a constant learning rate the
    iterate after t steps is that of a run with ``steps=t``, so one run gives every shorter budget.

    Chapters 1, 2 and 5 (``notebooks/01_elbo_tightness``, ``notebooks/02_generalization_gaps``,
    ``notebooks/05_iterative_refinement``) explain it.
    """
    _check(steps, lr, K)
    reduce = _bounds.get(bound)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        mu0, std0 = model.encode(x) if init is None else init
    mu = mu0.detach().clone().requires_grad_(True)
    log_std = torch.log(std0.detach()).clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_std], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1)) if lr_decay else None
    req = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for t in tqdm(range(steps), desc="optimal inference", disable=not progress, leave=False):
            lw = log_weights(model, x, K, q=(mu, torch.exp(log_std)), generator=generator)  # (K, N)
            loss = -reduce(lw).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if on_step is not None:
                on_step(t + 1, mu.detach().clone(), torch.exp(log_std.detach()))
    finally:
        for p, r in zip(model.parameters(), req):
            p.requires_grad_(r)
    return mu.detach(), torch.exp(log_std.detach())


@smoke.capped("optimal inference (encoder)", x="x", K="K", steps_arg="epochs", fit=False)
def encoder(model, x: torch.Tensor, epochs: int = 100, lr: float = 5e-4, batch_size: int = 100,
              K: int = 1, generator: torch.Generator | None = None, seed: int = 0, progress: bool = False,
              on_epoch=None):
    """The paper's optimal inference: a copy of the encoder trained on ``x`` with the decoder fixed.

    Returns a copy of ``model`` whose encoder was trained by Adam on the ELBO of ``x`` (minibatches
    of ``batch_size``, ``epochs`` passes). The original model is untouched. ``on_epoch(e, copy)``, when
    given, sees the copy after epoch e = 1 .. epochs (to read, not to change): it is then the copy a run
    with ``epochs=e`` returns, so one run gives every shorter budget.

    Chapters 1 and 2 (``notebooks/01_elbo_tightness``, ``notebooks/02_generalization_gaps``) explain it.
    """
    _check(epochs, lr, K)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    out = copy.deepcopy(model)
    for p in out.decoder_parameters():
        p.requires_grad_(False)
    enc = out.encoder_parameters()
    opt = torch.optim.Adam(enc, lr=lr)
    n = len(x)
    for e in tqdm(range(epochs), desc="amortized optimal inference", disable=not progress, leave=False):
        perm = torch.randperm(n, device=x.device, generator=generator)
        for s in range(0, n, batch_size):
            xb = x[perm[s:s + batch_size]]
            loss = -elbo(log_weights(out, xb, K, generator=generator)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch is not None:
            mode = out.training
            out.eval()
            with torch.no_grad():
                on_epoch(e + 1, out)
            out.train(mode)
    for p in out.decoder_parameters():
        p.requires_grad_(True)
    return out.eval()


@dataclass(frozen=True)
class PerPoint:
    """Settings of :func:`per_point`: ``steps`` Adam steps of size ``lr`` (annealed along a cosine to 0
    when ``lr_decay``), ``K`` samples per point and step. Calling it runs :func:`per_point` with them.

    ``PerPoint(**settings.as_dict())`` round-trips; :meth:`scaled` multiplies the step budget.
    """
    steps: int
    lr: float
    K: int = 1
    lr_decay: bool = True

    def __post_init__(self):
        _check(self.steps, self.lr, self.K)
        if not isinstance(self.lr_decay, bool):
            raise ValueError(f"lr_decay must be True or False, got {self.lr_decay!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    def scaled(self, factor: int, lr_decay: bool | None = None) -> "PerPoint":
        """The same settings with ``factor`` times the steps (and ``lr_decay`` changed when given)."""
        positive_int("factor", factor)
        return replace(self, steps=self.steps * factor, lr_decay=self.lr_decay if lr_decay is None else lr_decay)

    def __call__(self, model, x: torch.Tensor, seed: int = 0, progress: bool = False, **kw):
        """:func:`per_point` with these settings: ``(mu, std)``, each (N, Z)."""
        return per_point(model, x, seed=seed, progress=progress, **self.as_dict(), **kw)


#: The one well-tuned per-point optimal inference per preset (:class:`PerPoint`), used by chapter 1 (its
#: per-point curves and the base of its budget study) and chapter 2 (the optimal-inference sweeps), chosen
#: from chapter 1's budget study at the ``book`` preset (ELBO - IWAE-10 against the number of steps, with
#: and without the cosine learning-rate decay; the chapter shows it). 200 steps keep chapter 2's cost.
TUNED = {"quick": PerPoint(steps=100, lr=5e-2, K=1, lr_decay=True),
         "book": PerPoint(steps=200, lr=5e-2, K=1, lr_decay=True),
         "paper": PerPoint(steps=1000, lr=5e-2, K=1, lr_decay=True)}
# lr 5e-2 rather than 2e-2: on chapter 2's overfit 500x500 model (which starts far from the optimum)
# 200 annealed steps of 2e-2 stop short of the optimum, 5e-2 reaches what 4x the steps reach


def tuned(preset: str) -> PerPoint:
    """The well-tuned per-point settings of a preset (:data:`TUNED`)."""
    if preset not in TUNED:
        raise ValueError(f"no tuned optimal inference for preset {preset!r}; valid: {sorted(TUNED)}")
    return TUNED[preset]

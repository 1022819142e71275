"""Adaptive iterative refinement (AIR), reweighted wake-sleep and BiHM for binary latents.

Gradient refinement (:mod:`gapkit.inference.refine`) needs reparameterized samples, which binary latents do
not have. AIR (Hjelm et al. 2016, arXiv 1511.06382) refines the Bernoulli means of a factorized
q(h | x) (:class:`gapkit.models.sbn.SBN`) by importance sampling instead::

    mu_0 = the recognition network's means q_psi(h = 1 | x)
    h^(k) ~ q_t = Bernoulli(mu_t),  k = 1..K                                (K, B, H)
    w~^(k) = w^(k) / sum_j w^(j),   w^(k) = p(x, h^(k)) / q_t(h^(k) | x)     (K, B), normalized over K
    mu_{t+1} = (1 - gamma) mu_t + gamma sum_k w~^(k) h^(k)                  (damping gamma, 0.9)

``sum_k w~^(k) h^(k)`` is the self-normalized importance-sampling estimate of the posterior mean
E_{p(h | x)}[h], so every step moves q toward the factorized Bernoulli with the posterior's
marginals. With BiHM weights (``weights="bihm"``, the supplement's Eq. 3) ``w^(k)`` is replaced by
``sqrt(p(x, h^(k)) / q_t(h^(k) | x))``.

Training objectives for :func:`fit` (in :mod:`gapkit.objectives.discrete`; each returns
:class:`gapkit.objectives.base.Losses`, losses to
*minimize*; no gradient flows through refinement or through the normalized weights):

=============================  ======================================================================
objective                      generative model p (theta)            recognition net q_psi
=============================  ======================================================================
``AIR(reweighted=False)``      -(1/K) sum_k log p(x, h_k), h ~ q_T    KL(q_T || q_psi) (closed form)
``AIR()`` (reweighted AIR)     -sum_k w~_k log p(x, h_k), h ~ q_T     KL(q_T || q_psi)
``AIR(encoder="inclusive")``   -sum_k w~_k log p(x, h_k), h ~ q_T     -sum_k w~_k log q_psi(h_k | x):
                                                                     KL(p(h | x) || q_psi), estimated
                                                                     with the refined samples
``RWS()``                      -sum_k w~_k log p(x, h_k), h ~ q_psi   wake: -sum_k w~_k log q_psi(h_k|x);
                                                                     sleep: -log q_psi(h'|x'), (h', x')
                                                                     ~ p; the mean of the two
``BiHM()``                     -sum_k w~_k log p(x, h_k), h ~ q_psi   -sum_k w~_k log q_psi(h_k | x)
                               with w = sqrt(p / q)                  (w = sqrt(p / q): the gradient of
                                                                     2 log p~*(x), Bornschein et al.)
=============================  ======================================================================

RWS is Bornschein & Bengio (2015); BiHM is Bornschein et al. (2016). Refinement is batched over
all images at once (``max_rows`` bounds the samples x images per pass); the sample dimension
comes first. `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_
explains all of it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .. import smoke
from ..bounds import bihm, ess, iwae
from ..checks import integer, nonneg_int, number, one_of, positive_int
from ..progress import tqdm
from ..models.sbn import SBN

__all__ = ["WEIGHTS", "ENCODER_LOSSES", "normalized_weights", "refine", "AIRTrajectory", "fit", "evaluate",
           "fit_identity", "log_likelihood", "score_function_gradient", "score_function_refine", "check_gamma",
           "check_weights"]

WEIGHTS = ("iw", "bihm")
ENCODER_LOSSES = ("kl", "inclusive")


def check_gamma(gamma):
    return number("gamma (the damping of AIR)", gamma, 0, 1, lo_open=True)


def check_weights(weights):
    return one_of("weights ('iw': p/q, 'bihm': sqrt(p/q))", weights, WEIGHTS)


def bernoulli_entropy(mu: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of factorized Bernoulli(mu), ``-sum_j [mu log mu + (1 - mu) log(1 - mu)]``: (..., H) -> (...)."""
    return -(torch.xlogy(mu, mu) + torch.xlogy(1 - mu, 1 - mu)).sum(-1)


def _start(model, x, init, K, steps, generator, seed, max_rows):
    """What both refiners set up: checked input, mu_0 (B, H), the generator, the chunk size (images a
    batched pass) and the outputs to fill: log-weights (T+1, K, B), entropies (T+1, B), final (B, H)."""
    model.check_x(x)
    mu0 = model.encode(x) if init is None else init
    if mu0.shape != (x.shape[0], model.h_dim):
        raise ValueError(f"init must have shape ({x.shape[0]}, {model.h_dim}), got {tuple(mu0.shape)}")
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    B = mu0.shape[0]
    new = lambda *shape: torch.empty(*shape, dtype=mu0.dtype, device=mu0.device)  # noqa: E731
    return mu0, generator, max(1, min(B, max_rows // K)), new(steps + 1, K, B), new(steps + 1, B), torch.empty_like(mu0)


def normalized_weights(log_w: torch.Tensor, weights: str = "iw") -> torch.Tensor:
    """Self-normalized importance weights over the sample dimension: (K, B) -> (K, B), summing to 1.

    ``"iw"``: ``w~_k = w_k / sum_j w_j`` with ``w = p(x, h) / q(h | x)`` (RWS, AIR);
    ``"bihm"``: the same with ``sqrt(w)`` (BiHM, Hjelm et al. 2016 supplement Eq. 3).
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_.
    """
    check_weights(weights)
    return torch.softmax(log_w if weights == "iw" else 0.5 * log_w, dim=0)


@dataclass
class AIRTrajectory:
    """An AIR run, detached. T = steps, K = samples per step.

    * ``mu``: (T+1, B, H) means at steps 0..T (None unless ``keep_mu``);
    * ``final``: (B, H), mu_T;
    * ``log_w``: (T+1, K, B), ``log p(x, h) - log q_t(h | x)`` for the K samples drawn from q_t
      at step t (those of steps < T also made the update);
    * ``entropy``: (T+1, B), the entropy of q_t in nats, ``-sum_j [mu log mu + (1 - mu) log(1 - mu)]``
      (it falls toward 0 when q collapses onto one configuration);
    * ``last_samples``: (K, B, H), the samples from q_T (None unless ``keep_last``).

    ``elbo``, ``iwae`` and ``ess`` are (T+1, B): the K-sample ELBO, IWAE-K and normalized ESS of q_t.
    """

    mu: torch.Tensor | None
    final: torch.Tensor
    log_w: torch.Tensor
    entropy: torch.Tensor
    last_samples: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        return self.log_w.shape[0] - 1

    @property
    def elbo(self) -> torch.Tensor:
        return self.log_w.mean(1)

    @property
    def iwae(self) -> torch.Tensor:
        return torch.logsumexp(self.log_w, 1) - math.log(self.log_w.shape[1])

    @property
    def ess(self) -> torch.Tensor:
        return ess(self.log_w.transpose(0, 1))


@smoke.capped("AIR refinement", x="x", K="K", steps_arg="steps", per_row=("init",), row_dims={"final": 0, "log_w": 2, None: 1})
@torch.no_grad()
def refine(model: SBN, x: torch.Tensor, steps: int = 20, K: int = 20, gamma: float = 0.9,
           weights: str = "iw", init: torch.Tensor | None = None, generator: torch.Generator | None = None,
           seed: int = 0, keep_mu: bool = False, keep_last: bool = False, max_rows: int = 1 << 12,
           progress: bool = False) -> AIRTrajectory:
    """AIR: ``steps`` refinement steps of every image's Bernoulli means, all images at once.

    ``mu_{t+1} = (1 - gamma) mu_t + gamma sum_k w~_k h_k``, ``h_k ~ Bernoulli(mu_t)`` (module
    docstring; Hjelm et al. 2016, Algorithm 1). ``init`` is mu_0 (B, H), default the recognition
    network's means. ``weights`` is ``"iw"`` (AIR) or ``"bihm"`` (refinement of the BiHM bound).
    Images go through in chunks of ``max_rows // K`` (memory only: each chunk is one batched
    tensor computation for all its images and samples). Returns an :class:`AIRTrajectory`.
    `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_.
    """
    nonneg_int("steps", steps)
    positive_int("K", K)
    gamma = check_gamma(gamma)
    check_weights(weights)
    mu0, generator, chunk, out_lw, out_ent, final = _start(model, x, init, K, steps, generator, seed, max_rows)
    B, H = mu0.shape
    out_mu = torch.empty(steps + 1, B, H, dtype=mu0.dtype, device=mu0.device) if keep_mu else None
    last = torch.empty(K, B, H, dtype=mu0.dtype, device=mu0.device) if keep_last else None
    for s in tqdm(range(0, B, chunk), desc="AIR", disable=not progress, leave=False):   # memory chunks
        xb, mu = x[s:s + chunk], mu0[s:s + chunk].detach()
        for t in range(steps + 1):
            if keep_mu:
                out_mu[t, s:s + chunk] = mu
            out_ent[t, s:s + chunk] = bernoulli_entropy(mu)                     # H(q_t)
            h = model.sample_q(mu, K, generator)                                # (K, b, H)
            lw = model.log_joint(xb, h) - model.log_q(h, mu)                    # (K, b)
            out_lw[t, :, s:s + chunk] = lw
            if t < steps:
                w = normalized_weights(lw, weights)                             # (K, b)
                mu = ((1 - gamma) * mu + gamma * torch.einsum("kb,kbh->bh", w, h)).clamp(0, 1)  # rounding
        final[s:s + chunk] = mu
        if keep_last:
            last[:, s:s + chunk] = h
    return AIRTrajectory(out_mu, final, out_lw, out_ent, last)


def score_function_gradient(model: SBN, x: torch.Tensor, logits: torch.Tensor, K: int = 100,
                            generator: torch.Generator | None = None):
    """Score-function (REINFORCE) estimate of the gradient of each image's ELBO in q's logits: (B, H).

    For q = Bernoulli(sigmoid(lambda)), ``grad_lambda E_q[log w] = E_q[(log w) (h - mu)]`` (the score
    ``grad_lambda log q(h) = h - mu`` has mean zero, so the entropy term's own gradient vanishes);
    estimated with K samples and the leave-one-out baseline ``b_k = (1/(K-1)) sum_{j != k} log w_j``
    (unbiased, as b_k does not depend on h_k)::

        g = (1/K) sum_k (log w_k - b_k) (h_k - mu)

    Also returns the samples' log-weights (K, B). The gradient refinement that binary latents allow;
    `chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_ compares it with AIR.
    """
    integer("K", K, lo=2)
    mu = torch.sigmoid(logits)
    h = model.sample_q(mu, K, generator)                                        # (K, B, H)
    lw = model.log_joint(x, h) - model.log_q(h, mu)                             # (K, B)
    base = (lw.sum(0, keepdim=True) - lw) / (K - 1)                             # leave-one-out, (K, B)
    return torch.einsum("kb,kbh->bh", lw - base, h - mu) / K, lw


@torch.no_grad()
@smoke.capped("score-function refinement", x="x", K="K", steps_arg="steps", per_row=("init",), row_dims={"final": 0, "log_w": 2, None: 1})
def score_function_refine(model: SBN, x: torch.Tensor, steps: int = 50, K: int = 100, lr: float = 0.01,
                          init: torch.Tensor | None = None, generator: torch.Generator | None = None,
                          seed: int = 0, max_rows: int = 1 << 12) -> AIRTrajectory:
    """Gradient refinement for binary latents: ``lambda_{t+1} = lambda_t + lr g_t`` on q's logits, with
    g_t the score-function estimate of :func:`score_function_gradient` (K samples per step, logits kept
    in [-15, 15]). Starts from the recognition network (or ``init``, means (B, H)); all images at once,
    in chunks of ``max_rows // K``. Returns an :class:`AIRTrajectory` (``log_w`` of the samples drawn
    at every step). `Chapter 8 <https://gapkit.github.io/gapkit/notebooks/08_discrete_latents.html>`_
    shows why AIR is used instead.
    """
    nonneg_int("steps", steps)
    integer("K", K, lo=2)
    number("lr", lr, 0, lo_open=True)
    mu0, generator, chunk, out_lw, out_ent, final = _start(model, x, init, K, steps, generator, seed, max_rows)
    B = mu0.shape[0]
    for s in range(0, B, chunk):                                                # memory chunks
        xb = x[s:s + chunk]
        lam = torch.logit(mu0[s:s + chunk].clamp(1e-6, 1 - 1e-6)).clamp(-15, 15)  # (b, H)
        for t in range(steps + 1):
            mu = torch.sigmoid(lam)
            out_ent[t, s:s + chunk] = bernoulli_entropy(mu)
            g, lw = score_function_gradient(model, xb, lam, K, generator)
            out_lw[t, :, s:s + chunk] = lw
            if t < steps:
                lam = (lam + lr * g).clamp(-15, 15)
        final[s:s + chunk] = torch.sigmoid(lam)
    return AIRTrajectory(None, final, out_lw, out_ent)


@torch.no_grad()
@smoke.capped("SBN log-likelihood", x="x", K="K", per_row=("mu",))
def log_likelihood(model: SBN, x: torch.Tensor, mu: torch.Tensor | None = None, K: int = 1000,
                   max_rows: int = 1 << 12, generator: torch.Generator | None = None, seed: int = 0):
    """IWAE-K estimate of log p(x) and the BiHM bound, from q = Bernoulli(mu): -> two (B,) tensors.

    ``iwae = log (1/K) sum_k w_k`` and ``bihm = 2 log (1/K) sum_k sqrt(w_k)``, ``w = p(x, h)/q(h|x)``
    (:func:`gapkit.bounds.iwae`, :func:`gapkit.bounds.bihm`), accumulated over chunks of samples
    with running log-sum-exps so that memory does not grow with K. ``mu`` defaults to the
    recognition network's means; pass AIR's ``final`` for a refined proposal.
    """
    positive_int("K", K)
    model.check_x(x)
    mu = model.encode(x) if mu is None else mu
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    B = len(x)
    b = max(1, min(B, max_rows))
    kc = max(1, min(K, max_rows // b))
    out_iw = torch.empty(B, device=x.device, dtype=mu.dtype)
    out_bh = torch.empty_like(out_iw)
    for s in range(0, B, b):                                                    # memory chunks
        xb, mb = x[s:s + b], mu[s:s + b]
        acc_iw = acc_bh = None
        for k0 in range(0, K, kc):
            h = model.sample_q(mb, min(kc, K - k0), generator)
            lw = model.log_joint(xb, h) - model.log_q(h, mb)                    # (k, b)
            a, c = torch.logsumexp(lw, 0), torch.logsumexp(0.5 * lw, 0)
            acc_iw = a if acc_iw is None else torch.logaddexp(acc_iw, a)
            acc_bh = c if acc_bh is None else torch.logaddexp(acc_bh, c)
        out_iw[s:s + b] = acc_iw - math.log(K)
        out_bh[s:s + b] = 2 * (acc_bh - math.log(K))
    return out_iw, out_bh


@torch.no_grad()
@smoke.capped("SBN evaluation", x="x", K="K", steps_arg="steps", fit=False)
def evaluate(model: SBN, x: torch.Tensor, K: int = 100, steps: int = 0, gamma: float = 0.9,
             weights: str = "iw", generator: torch.Generator | None = None, seed: int = 0) -> dict:
    """Dataset means after ``steps`` AIR steps (0: the recognition network): ``elbo`` (nats),
    ``iwae`` (the IWAE-K log-likelihood estimate, nats), ``bihm`` (the BiHM bound, nats) and ``ess``
    (normalized ESS), all from the same K samples of q_T per image."""
    tr = refine(model, x, steps, K, gamma, weights, generator=generator, seed=seed)
    lw = tr.log_w[-1]                                                           # (K, B)
    return {"elbo": lw.mean().item(), "iwae": iwae(lw).mean().item(), "bihm": bihm(lw).mean().item(),
            "ess": ess(lw).mean().item()}


def fit_identity(model: SBN, x_train: torch.Tensor, objective, epochs: int, batch_size: int, lr: float, seed: int,
                 eval_epochs=(), checkpoint_every: int = 1) -> dict:
    """What an SBN training folder belongs to: the architecture, the objective and its settings, the
    training settings and the data (a SHA-256 of ``x_train``); stored in its ``resume.pt``."""
    import json
    from ..train import _objective_config, _tensor_fingerprint   # the same records as train's folders
    ident = {"model": dict(model.config), "objective": _objective_config(objective),
             "fit": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                     "eval_epochs": sorted(int(e) for e in eval_epochs), "checkpoint_every": checkpoint_every},
             "data": _tensor_fingerprint(x_train)}
    if smoke.active():
        ident["smoke"] = True
    return json.loads(json.dumps(ident))


@smoke.capped("SBN training", x="x_train", steps_arg="epochs", unit="image-epoch", fit=False)
def fit(model: SBN, x_train: torch.Tensor, objective, epochs: int = 10, batch_size: int = 100,
        lr: float = 1e-3, seed: int = 0, eval_fn=None, eval_epochs=(), progress: bool = False,
        out_dir=None, checkpoint_every: int = 1) -> dict:
    """Minibatch training of an SBN with separate Adam optimizers for p (theta) and q_psi.

    ``eval_fn(model) -> dict`` runs after the epochs in ``eval_epochs`` (0 = before training) and
    its values go into the history with ``epoch``, ``updates`` and ``seconds`` (the cumulative
    training wall time, evaluation excluded). Returns the history (lists), plus ``epoch_time``.

    With ``out_dir``, every ``checkpoint_every`` epochs and after the last the whole training state
    (weights, both optimizers, the generator, the history) goes to ``out_dir/checkpoints/resume.pt``
    (:func:`gapkit.io.save_checkpoint`: atomic, checksummed), and the trained weights to
    ``epoch_NNNN.pt`` after the last epoch; a call with the same ``out_dir`` continues from
    ``resume.pt`` (a finished training only loads its weights) and ends with the parameters and
    history of an uninterrupted one on the CPU (``seconds`` and ``epoch_time`` aside). A folder of
    another training (:func:`fit_identity`) is refused before any work. ``eval_fn`` must draw from
    its own seeded generator, as its results before the resume come back from the checkpoint.
    """
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    positive_int("checkpoint_every", checkpoint_every)
    model.check_x(x_train)
    enc, dec = model.encoder_parameters(), model.decoder_parameters()
    opt_q, opt_p = torch.optim.Adam(enc, lr=lr), torch.optim.Adam(dec, lr=lr)
    gen = torch.Generator(device=x_train.device).manual_seed(seed)
    hist: dict = {"epoch_time": []}
    n = len(x_train)
    steps = math.ceil(n / batch_size)
    elapsed = 0.0
    start = 0
    resume_path = ident = None
    if out_dir is not None:
        from ..io import check_output, load_checkpoint
        from ..train import _check_training_folder          # the training loop's own folder check
        out_dir = check_output(out_dir, "dir", what="training folder")
        ident = fit_identity(model, x_train, objective, epochs, batch_size, lr, seed, eval_epochs, checkpoint_every)
        resume_path = out_dir / "checkpoints" / "resume.pt"
        if _check_training_folder(out_dir, ident):
            ck = load_checkpoint(resume_path, model, map_location=x_train.device)
            opt_q.load_state_dict(ck["optimizers"]["encoder"])
            opt_p.load_state_dict(ck["optimizers"]["decoder"])
            gen.set_state(ck["generator"].cpu() if x_train.device.type == "cpu" else ck["generator"])
            hist, start, elapsed = ck["history"], int(ck["epoch"]), float(ck["seconds"])
            if start >= epochs:
                model.eval()
                return hist

    def record(epoch):
        if eval_fn is None or epoch not in eval_epochs:
            return
        row = {"epoch": epoch, "updates": epoch * steps, "seconds": elapsed, **eval_fn(model)}
        for k, v in row.items():
            hist.setdefault(k, []).append(v)

    def checkpoint(epoch):
        from ..io import save_checkpoint
        if epoch == epochs:
            save_checkpoint(out_dir / "checkpoints" / f"epoch_{epoch:04d}.pt", model, epoch=epoch, identity=ident)
        save_checkpoint(resume_path, model, optimizers={"encoder": opt_q.state_dict(), "decoder": opt_p.state_dict()},
                        generator=gen.get_state(), history=hist, epoch=epoch, seconds=elapsed, identity=ident)

    if start == 0:
        record(0)
    model.train()
    for epoch in tqdm(range(start + 1, epochs + 1), desc=f"train {objective.name}", disable=not progress,
                      unit="epoch", initial=start, total=epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=x_train.device, generator=gen)
        for i in range(steps):
            xb = x_train[perm[i * batch_size:(i + 1) * batch_size]]
            losses = objective(model, xb, gen)
            ge = torch.autograd.grad(losses.encoder, enc, retain_graph=True, allow_unused=True)
            gd = torch.autograd.grad(losses.decoder, dec, allow_unused=True)
            for params, grads in ((enc, ge), (dec, gd)):
                for p, g in zip(params, grads):
                    p.grad = g
            opt_q.step()
            opt_p.step()
        dt = time.perf_counter() - t0
        elapsed += dt
        hist["epoch_time"].append(dt)
        record(epoch)
        if out_dir is not None and (epoch % checkpoint_every == 0 or epoch == epochs):
            checkpoint(epoch)
    model.eval()
    return hist

"""What a better encoder buys downstream: a classifier on z ~ q(z|x) (Zhang et al. 2022, Appendix B).

A classifier p_eta(y|z) is trained on stochastic representations of the labelled training images,
one fresh z ~ q_phi(z|x) per image and step, with the VAE (encoder included) fixed. At test time the
predictive distribution is averaged over K posterior samples,

    p(y|x) ~= (1/K) sum_k p_eta(y | z_k),  z_k ~ q_phi(z|x),

and the accuracy is that of argmax_y p(y|x). The classifier follows the paper: an MLP with two
hidden layers of 200 ReLU units and dropout 0.1, Adam (lr 3e-4), 10 epochs, K = 100 at test time.
`Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_
compares the standard and the reverse-half-asleep encoders.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .. import smoke
from ..checks import number, positive_int
from ..estimators import sample_q
from ..progress import tqdm

__all__ = ["Classifier", "train_classifier", "predictive", "accuracy", "downstream_accuracy"]


class Classifier(nn.Module):
    """p_eta(y|z): Z -> hidden -> hidden -> classes (logits), ReLU and dropout after each hidden layer."""

    def __init__(self, z_dim: int, n_classes: int = 10, hidden: int = 200, dropout: float = 0.1, layers: int = 2):
        super().__init__()
        for name, v in (("z_dim", z_dim), ("n_classes", n_classes), ("hidden", hidden), ("layers", layers)):
            positive_int(name, v)
        number("dropout", dropout, 0.0, 1.0, hi_open=True)
        mods, d = [], z_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden
        mods.append(nn.Linear(d, n_classes))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits: (..., Z) -> (..., C)."""
        return self.net(z)


def _check_xy(x, y):
    if not torch.is_tensor(y) or y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"labels must be a 1-d tensor with one entry per row of x ({len(x)}), got "
                         f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}")


@smoke.capped("classifier training", x="x", steps_arg="epochs", per_row=("y",), unit="image-epoch", fit=False)
def train_classifier(model, x: torch.Tensor, y: torch.Tensor, epochs: int = 10, lr: float = 3e-4,
                     batch_size: int = 100, hidden: int = 200, dropout: float = 0.1, n_classes: int | None = None,
                     generator: torch.Generator | None = None, seed: int = 0, progress: bool = False) -> Classifier:
    """Train p_eta(y|z) on (z, y), z ~ q(z|x) drawn fresh for every minibatch; the VAE is not changed.

    Minimizes the cross-entropy -(1/B) sum_b log p_eta(y_b | z_b) by Adam. Returns the classifier
    in eval mode.
    """
    _check_xy(x, y)
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    y = y.to(x.device)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    torch.manual_seed(seed)  # the classifier's initialization
    clf = Classifier(model.z_dim, n_classes, hidden, dropout).to(x.device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    n = len(x)
    clf.train()
    for _ in tqdm(range(epochs), desc="classifier", disable=not progress, leave=False):
        perm = torch.randperm(n, device=x.device, generator=generator)
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            with torch.no_grad():
                mu, std = model.encode(x[idx])
                z = sample_q(mu, std, 1, generator)[0]                # (B, Z)
            loss = nn.functional.cross_entropy(clf(z), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.eval()


@smoke.capped("classifier predictive", x="x", K="K")
@torch.no_grad()
def predictive(model, clf: Classifier, x: torch.Tensor, K: int = 100, max_rows: int = 1 << 16,
               generator: torch.Generator | None = None, seed: int = 0) -> torch.Tensor:
    """p(y|x) ~= (1/K) sum_k softmax(clf(z_k)), z_k ~ q(z|x): (N, D) -> (N, C), batched with at most
    ``max_rows`` (sample, image) rows per pass."""
    positive_int("K", K)
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    clf.eval()
    b = max(1, max_rows // K)
    out = []
    for s in range(0, len(x), b):
        mu, std = model.encode(x[s:s + b])
        z = sample_q(mu, std, K, generator)                           # (K, b, Z)
        out.append(torch.softmax(clf(z), dim=-1).mean(0))             # (b, C)
    return torch.cat(out)


def accuracy(model, clf: Classifier, x: torch.Tensor, y: torch.Tensor, K: int = 100, **kw) -> float:
    """Accuracy of argmax_y p(y|x) with the K-sample predictive."""
    _check_xy(x, y)
    p = predictive(model, clf, x, K, **kw)
    return float((p.argmax(-1) == y.to(p.device)).float().mean())


def downstream_accuracy(model, data, epochs: int = 10, K: int = 100, seed: int = 0, **kw) -> float:
    """Train a classifier on ``data``'s labelled training split through ``model``'s encoder and return
    its test accuracy (the K-sample predictive). ``data`` is a :class:`gapkit.data.Dataset` with labels.

    `Chapter 3 <https://gapkit.github.io/gapkit/notebooks/03_wake_sleep.html>`_
    reports it (Appendix B of Zhang et al. 2022).
    """
    if "train" not in data.labels or "test" not in data.labels:
        raise ValueError(f"dataset {data.name!r} has no labels; use 'mnist' or 'digits'")
    xtr, xte = data.fixed("train", seed), data.fixed("test", seed)
    clf = train_classifier(model, xtr, data.labels["train"].to(xtr.device), epochs=epochs, seed=seed, **kw)
    g = torch.Generator(device=xte.device).manual_seed(seed + 1)
    return accuracy(model, clf, xte, data.labels["test"].to(xte.device), K=K, generator=g)

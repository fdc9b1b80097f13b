"""Mult-VAE: a variational autoencoder for implicit feedback (Liang, Krishnan, Hoffman & Jebara,
"Variational Autoencoders for Collaborative Filtering", WWW 2018), in PyTorch.

A user is the bag of videos it watched. The encoder maps the L2-normalised row ``x_u`` (with
input dropout) to a Gaussian ``q(z|x) = N(μ, σ²)`` over a small latent taste vector; the decoder
maps ``z`` to a softmax over the whole catalogue, the multinomial the watched videos are drawn
from. Training maximises ``Σ x_u · log softmax(f(z)) − β · KL(q(z|x) ‖ N(0, I))`` with ``β``
annealed from 0 to ``beta`` (the paper's partially regularised ELBO). At serving time the
scores are ``f(μ)``, computed in numpy from the saved weights, for any history: a user outside
the fit needs no fold-in step.

Seeded from named streams (weights, shuffling, dropout masks and the reparameterisation noise
all come from :func:`mlsd.rng.torch_generator`), on ``num_threads`` torch threads.
"""

from __future__ import annotations

import logging
import math
import time
from typing import ClassVar, Self

import numpy as np
import torch
from scipy import sparse
from torch import nn

from mlsd.model_io import register_model
from mlsd.rng import torch_generator
from mlsd.systems.video_rec.model_cf import CFSource, interactions
from mlsd.training import torch_threads

log = logging.getLogger(__name__)


class MultVae(nn.Module):
    """items → hidden → (μ, log σ²) of ``latent`` → hidden → items (logits)."""

    def __init__(self, n_items: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.latent = latent
        self.enc_hidden = nn.Linear(n_items, hidden)
        self.enc_out = nn.Linear(hidden, 2 * latent)
        self.dec_hidden = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, n_items)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.enc_hidden(x))  # (batch, hidden)
        out = self.enc_out(h)  # (batch, 2 * latent)
        return out[:, : self.latent], out[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec_out(torch.tanh(self.dec_hidden(z)))  # (batch, items)


def _init(net: nn.Module, generator: torch.Generator) -> None:
    """Xavier-uniform weights and small normal biases (the paper's), from ``generator``."""
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, generator=generator)
            nn.init.normal_(m.bias, std=0.001, generator=generator)


@register_model
class VaeSource(CFSource):
    """Mult-VAE scores of every video for a watch history."""

    NAME = "Mult-VAE"
    ARRAYS: ClassVar[tuple[str, ...]] = (
        *("w_enc_", "b_enc_", "w_mu_", "b_mu_"),
        *("w_dec_", "b_dec_", "w_out_", "b_out_", "user_mu_"),
    )

    def __init__(
        self,
        hidden: int = 600,
        latent: int = 200,
        beta: float = 0.2,
        dropout: float = 0.5,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.latent = latent
        self.beta = beta
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.num_threads = num_threads
        self.seed = seed

    @property
    def n_items_(self) -> int:
        return int(self.b_out_.shape[0])

    @property
    def n_users_(self) -> int:
        return int(self.user_mu_.shape[0])

    def fit(self, user: np.ndarray, video: np.ndarray, click: np.ndarray, n_videos: int) -> Self:
        x = interactions(user, video, click, n_videos, self.NAME)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.NAME}: dropout must be in [0, 1), got {self.dropout}")
        t0 = time.perf_counter()
        with torch_threads(self.num_threads):
            net, self.losses_ = self._train(x)
        w = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
        self.w_enc_, self.b_enc_ = w["enc_hidden.weight"], w["enc_hidden.bias"]
        self.w_mu_ = w["enc_out.weight"][: self.latent]  # the mean half: what serving uses
        self.b_mu_ = w["enc_out.bias"][: self.latent]
        self.w_dec_, self.b_dec_ = w["dec_hidden.weight"], w["dec_hidden.bias"]
        self.w_out_, self.b_out_ = w["dec_out.weight"], w["dec_out.bias"]
        self.user_mu_ = self._mu(x)  # (users, latent): the fitted users' tastes
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _train(self, x: sparse.csr_matrix) -> tuple[MultVae, list[float]]:
        n_items = x.shape[1]
        gen = torch_generator(self.seed, "video-rec/vae/train")
        net = MultVae(n_items, self.hidden, self.latent)
        _init(net, torch_generator(self.seed, "video-rec/vae/init"))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        rows = np.flatnonzero(np.diff(x.indptr) > 0)  # users with at least one video
        steps_per_epoch = math.ceil(len(rows) / self.batch_size)
        anneal_steps = max(1, int(0.8 * self.epochs * steps_per_epoch))  # β reaches its cap
        step, losses = 0, []
        net.train()
        for _ in range(self.epochs):
            perm = rows[torch.randperm(len(rows), generator=gen).numpy()]
            total = 0.0
            for s in range(0, len(perm), self.batch_size):
                xb = torch.from_numpy(x[perm[s : s + self.batch_size]].toarray())  # (b, items)
                keep = torch.rand(xb.shape, generator=gen) >= self.dropout
                xin = nn.functional.normalize(xb * keep, dim=1) / (1.0 - self.dropout)
                mu, logvar = net.encode(xin)
                eps = torch.randn(mu.shape, generator=gen)
                z = mu + eps * torch.exp(0.5 * logvar)
                nll = -(nn.functional.log_softmax(net.decode(z), dim=1) * xb).sum(1).mean()
                kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()
                beta = self.beta * min(1.0, step / anneal_steps)
                loss = nll + beta * kl
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                step += 1
                total += float(loss.detach()) * len(xb)
            losses.append(total / max(len(rows), 1))
        return net, losses

    def _mu(self, hx: sparse.csr_matrix) -> np.ndarray:
        """The encoder's mean for binary rows, in numpy: ``(rows, latent)``."""
        norm = np.sqrt(np.asarray(hx.sum(axis=1)).ravel())
        norm[norm == 0] = 1.0
        xn = sparse.diags(1.0 / norm) @ hx  # L2-normalised rows
        h = np.tanh(np.asarray(xn @ self.w_enc_.T) + self.b_enc_)  # (rows, hidden)
        return np.asarray(h @ self.w_mu_.T + self.b_mu_, np.float32)

    def _decode(self, mu: np.ndarray) -> np.ndarray:
        h = np.tanh(mu @ self.w_dec_.T + self.b_dec_)  # (rows, hidden)
        return np.asarray(h @ self.w_out_.T + self.b_out_, np.float32)  # (rows, items)

    def _known_scores(self, users: np.ndarray) -> np.ndarray:
        return self._decode(self.user_mu_[users])

    def _history_scores(self, hx: sparse.csr_matrix) -> np.ndarray:
        return self._decode(self._mu(hx))

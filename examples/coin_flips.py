"""The coin-flip example: KL divergence as the average log-likelihood ratio.

Flip a coin whose heads-probability is ``p`` (the true coin) ``n`` times and score every flip
against a model coin with heads-probability ``q`` by its log-likelihood ratio

    llr = log(p / q)               for heads,
    llr = log((1 - p) / (1 - q))   for tails.

The flips are independent, so by the law of large numbers the average llr converges to its
expectation, p log(p/q) + (1-p) log((1-p)/(1-q)) = KL(Bern(p) || Bern(q)) =
``fastkl.kl_bernoulli(p, q)``; by the central limit theorem its distance from KL after n flips
is about sigma / sqrt(n), with sigma^2 = p (1-p) (log(p/q) - log((1-p)/(1-q)))^2.  On the same
flips the average negative log-likelihood under the model coin converges to the cross-entropy
H(p, q) = H(p) + KL(p || q): the extra cost, per flip, of coding the true coin's flips with the
model's probabilities.

Prints a table of the running averages at n = 10, 100, ... and saves a figure (matplotlib, the
optional extra ``fastkl[plot]``)::

    python examples/coin_flips.py                       # p = 0.5, q = 0.25, 100000 flips
    python examples/coin_flips.py --p 0.1 --q 0.5 --n 1000000 --plot flips.png
    python examples/coin_flips.py --no-plot
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

import fastkl


@dataclass
class CoinFlips:
    """The outcome of :func:`simulate`."""

    p: float
    q: float
    n: int
    seed: int
    #: running averages after 1, 2, ..., n flips
    mean_llr: np.ndarray
    mean_nll: np.ndarray
    kl: float               #: KL(Bern(p) || Bern(q)), nats
    entropy: float          #: H(p)
    cross_entropy: float    #: H(p, q)
    sigma_llr: float        #: standard deviation of one flip's log-likelihood ratio
    sigma_nll: float        #: standard deviation of one flip's negative log-likelihood under q

    def checkpoints(self) -> list[int]:
        """n = 10, 100, 1000, ... below the number of flips, and the number of flips."""
        ks = [10 ** e for e in range(1, 20) if 10 ** e < self.n]
        return ks + [self.n]


def simulate(p: float, q: float, n: int, seed: int = 0) -> CoinFlips:
    """Flip ``n`` coins from Bern(p) (seeded) and score them against Bern(q)."""
    if not (0.0 < p < 1.0 and 0.0 < q < 1.0):
        raise ValueError(f"p and q must lie strictly between 0 and 1, got p={p}, q={q}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    heads = np.random.default_rng(seed).random(n) < p
    a, b = math.log(p / q), math.log((1 - p) / (1 - q))          # llr of heads, tails
    count = np.arange(1, n + 1)
    mean_llr = np.cumsum(np.where(heads, a, b)) / count
    mean_nll = np.cumsum(np.where(heads, -math.log(q), -math.log1p(-q))) / count
    coin_p, coin_q = np.array([p, 1 - p]), np.array([q, 1 - q])
    return CoinFlips(
        p=p, q=q, n=n, seed=seed, mean_llr=mean_llr, mean_nll=mean_nll,
        kl=float(fastkl.kl_bernoulli(p, q)),
        entropy=float(fastkl.entropy(coin_p)),
        cross_entropy=float(fastkl.cross_entropy(coin_p, coin_q)),
        sigma_llr=math.sqrt(p * (1 - p)) * abs(a - b),
        sigma_nll=math.sqrt(p * (1 - p)) * abs(math.log(q) - math.log1p(-q)),
    )


def table(res: CoinFlips) -> str:
    """The running averages at the checkpoints against KL and H(p, q), as text."""
    lines = [
        f"coin p = {res.p:g} (true), coin q = {res.q:g} (model), {res.n} flips, seed {res.seed}",
        f"KL(p || q) = kl_bernoulli(p, q) = {res.kl:.6f} nats; "
        f"one flip's log-likelihood ratio has sigma = {res.sigma_llr:.4f}",
        "",
        f"{'n':>10} {'mean LLR':>10} {'|mean - KL|':>12} {'sigma/sqrt(n)':>14} {'z':>6} "
        f"{'mean NLL':>10} {'H(p, q)':>9}",
    ]
    for k in res.checkpoints():
        llr = float(res.mean_llr[k - 1])
        se = res.sigma_llr / math.sqrt(k)
        lines.append(
            f"{k:>10} {llr:>10.6f} {abs(llr - res.kl):>12.6f} {se:>14.6f} "
            f"{abs(llr - res.kl) / se:>6.2f} {float(res.mean_nll[k - 1]):>10.6f} {res.cross_entropy:>9.6f}"
        )
    lines += [
        "",
        f"cross-entropy H(p, q) = {res.cross_entropy:.12f}",
        f"entropy + KL          = {res.entropy + res.kl:.12f}   (H(p) = {res.entropy:.6f})",
    ]
    return "\n".join(lines)


def plot(res: CoinFlips, path: str) -> None:
    """Save the figure: the running averages converging to KL and to H(p) + KL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.unique(np.geomspace(1, res.n, 400).astype(np.int64)) - 1  # log-spaced flips
    ns = idx + 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), constrained_layout=True)
    band = 3 * res.sigma_llr / np.sqrt(ns)
    left.fill_between(ns, res.kl - band, res.kl + band, color="tab:blue", alpha=0.15, label=r"KL $\pm 3\sigma/\sqrt{n}$")
    left.plot(ns, res.mean_llr[idx], color="tab:blue", lw=1.2, label="average log-likelihood ratio")
    left.axhline(res.kl, color="black", lw=1, ls="--", label=f"kl_bernoulli(p, q) = {res.kl:.4f}")
    left.set(xscale="log", xlabel="flips n", ylabel="nats",
             title=f"p = {res.p:g} against q = {res.q:g}: average LLR")
    lim = res.kl + 4 * res.sigma_llr / math.sqrt(10)
    left.set_ylim(res.kl - (lim - res.kl), lim)
    left.legend(fontsize=8, loc="upper right")
    band = 3 * res.sigma_nll / np.sqrt(ns)
    right.fill_between(ns, res.cross_entropy - band, res.cross_entropy + band, color="tab:orange", alpha=0.15)
    right.plot(ns, res.mean_nll[idx], color="tab:orange", lw=1.2, label="average NLL under q")
    right.axhline(res.cross_entropy, color="black", lw=1, ls="--",
                  label=f"H(p) + KL = H(p, q) = {res.cross_entropy:.4f}")
    right.axhline(res.entropy, color="gray", lw=1, ls=":", label=f"H(p) = {res.entropy:.4f}")
    lim = res.cross_entropy + 4 * res.sigma_nll / math.sqrt(10)
    right.set_ylim(min(res.entropy - 0.05, 2 * res.cross_entropy - lim), lim)
    right.set(xscale="log", xlabel="flips n", ylabel="nats", title="cross-entropy = entropy + KL")
    right.legend(fontsize=8, loc="upper right")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--p", type=float, default=0.5, help="heads-probability of the true coin (default 0.5)")
    parser.add_argument("--q", type=float, default=0.25, help="heads-probability of the model coin (default 0.25)")
    parser.add_argument("--n", type=int, default=100_000, help="number of flips (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--plot", metavar="FILE", default="coin_flips.png",
                       help="save the figure to FILE (default coin_flips.png; needs matplotlib)")
    where.add_argument("--no-plot", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    try:
        res = simulate(args.p, args.q, args.n, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    print(table(res))
    if not args.no_plot:
        plot(res, args.plot)
        print(f"\nfigure saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

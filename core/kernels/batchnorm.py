"""Batch normalisation kernels over (N, C, H, W), statistics per channel C over N*H*W values.

Train: mean, var (biased) from the batch; xhat = (x - mean) * invstd, invstd = 1/sqrt(var + eps);
y = gamma * xhat + beta. Backward (m = N*H*W):
dgamma = sum(dy * xhat), dbeta = sum(dy),
dx = gamma * invstd * (dy - dbeta/m - xhat * dgamma/m)  (train);  dx = gamma * invstd * dy (eval).
"""

from __future__ import annotations

import numba


@numba.njit(parallel=True, cache=True)
def bn_stats(x, mean, var):
    """mean (C,), var (C,) (biased, float64 accumulation) of x (N, C, H, W) per channel."""
    n_, c_, h_, w_ = x.shape
    m = n_ * h_ * w_
    for c in numba.prange(c_):
        s = 0.0
        for n in range(n_):
            for y in range(h_):
                for z in range(w_):
                    s += x[n, c, y, z]
        mu = s / m
        q = 0.0
        for n in range(n_):
            for y in range(h_):
                for z in range(w_):
                    d = x[n, c, y, z] - mu
                    q += d * d
        mean[c] = mu
        var[c] = q / m


def bn_stats_reference(x, mean, var):
    n_, c_, h_, w_ = x.shape
    m = n_ * h_ * w_
    for c in range(c_):
        vals = [float(x[n, c, y, z]) for n in range(n_) for y in range(h_) for z in range(w_)]
        mu = sum(vals) / m
        mean[c] = mu
        var[c] = sum((v - mu) ** 2 for v in vals) / m


@numba.njit(parallel=True, cache=True)
def bn_apply(x, scale, shift, out):
    """out[n, c] = x[n, c] * scale[c] + shift[c]."""
    n_, c_, h_, w_ = x.shape
    for r in numba.prange(n_ * c_):
        n = r // c_
        c = r % c_
        a = scale[c]
        b = shift[c]
        for y in range(h_):
            for z in range(w_):
                out[n, c, y, z] = x[n, c, y, z] * a + b


def bn_apply_reference(x, scale, shift, out):
    n_, c_, h_, w_ = x.shape
    for n in range(n_):
        for c in range(c_):
            for y in range(h_):
                for z in range(w_):
                    out[n, c, y, z] = x[n, c, y, z] * scale[c] + shift[c]


@numba.njit(parallel=True, cache=True)
def bn_backward_reduce(dout, x, mean, invstd, sum_dy, sum_dy_xhat):
    """sum_dy[c] = sum dout[:, c]; sum_dy_xhat[c] = sum dout[:, c] * xhat[:, c] (overwritten)."""
    n_, c_, h_, w_ = x.shape
    for c in numba.prange(c_):
        s = 0.0
        t = 0.0
        mu = mean[c]
        for n in range(n_):
            for y in range(h_):
                for z in range(w_):
                    g = dout[n, c, y, z]
                    s += g
                    t += g * (x[n, c, y, z] - mu)
        sum_dy[c] = s
        sum_dy_xhat[c] = t * invstd[c]


def bn_backward_reduce_reference(dout, x, mean, invstd, sum_dy, sum_dy_xhat):
    n_, c_, h_, w_ = x.shape
    for c in range(c_):
        s = t = 0.0
        for n in range(n_):
            for y in range(h_):
                for z in range(w_):
                    s += float(dout[n, c, y, z])
                    t += float(dout[n, c, y, z]) * (float(x[n, c, y, z]) - mean[c]) * invstd[c]
        sum_dy[c] = s
        sum_dy_xhat[c] = t


@numba.njit(parallel=True, cache=True)
def bn_backward_apply(dout, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, dx):
    """dx = gamma*invstd*(dout - sum_dy/m - xhat*sum_dy_xhat/m), m = N*H*W (train mode)."""
    n_, c_, h_, w_ = x.shape
    m = n_ * h_ * w_
    for r in numba.prange(n_ * c_):
        n = r // c_
        c = r % c_
        k = gamma[c] * invstd[c]
        a = sum_dy[c] / m
        b = sum_dy_xhat[c] / m
        mu = mean[c]
        s = invstd[c]
        for y in range(h_):
            for z in range(w_):
                xhat = (x[n, c, y, z] - mu) * s
                dx[n, c, y, z] = k * (dout[n, c, y, z] - a - xhat * b)


def bn_backward_apply_reference(dout, x, mean, invstd, gamma, sum_dy, sum_dy_xhat, dx):
    n_, c_, h_, w_ = x.shape
    m = n_ * h_ * w_
    for n in range(n_):
        for c in range(c_):
            for y in range(h_):
                for z in range(w_):
                    xhat = (x[n, c, y, z] - mean[c]) * invstd[c]
                    dx[n, c, y, z] = (
                        gamma[c]
                        * invstd[c]
                        * (dout[n, c, y, z] - sum_dy[c] / m - xhat * sum_dy_xhat[c] / m)
                    )

#!/usr/bin/env python3
"""Checks the results of scripts/extreme-cases.mjs against the distillation loss computed at 60
digits with mpmath, and prints the extreme-case error table of docs/accuracy.md.

    pip install mpmath
    python3 scripts/extreme_cases_reference.py out/extreme-cases.json

For each case (kind, temperature, divergence, with or without labels) it reports the loss's
relative error and the largest gradient error divided by the documented bound
1e-5 max|g| + 2^-18 (1 + max|z|) |c| (z = finite logits / T, c = alpha T (with the T^2 factor) times
the upstream gradient). A ratio at most 1 keeps the statement; the loss must be within 1e-5
relative (1e-8 absolute below 1e-3). Exit status 1 if any case misses.

The formulas are written here from the definitions, sharing nothing with the kernels: q =
softmax(s/T), p = softmax(t/T), r = softmax(s); KL(p||q), KL(q||p), or beta KL(p||m) + (1 - beta)
KL(q||m) with m = beta p + (1 - beta) q; the hard term (1 - alpha)(-(1 - eps) log r_y - eps mean log r).
"""
import json
import sys
from collections import defaultdict

from mpmath import mp, mpf, exp, log, inf

mp.dps = 60


def val(v):
    return -inf if v == "-Infinity" else (inf if v == "Infinity" else mpf(v))


def log_softmax(z):
    finite = [v for v in z if v != -inf]
    m = max(finite)
    lse = m + log(sum(exp(v - m) for v in finite))
    return [v - lse if v != -inf else -inf for v in z]


def xlogy_diff(a, la, lb):
    """a (la - lb) with 0 log 0 = 0 and a > 0 facing b = 0 infinite."""
    if a == 0:
        return mpf(0)
    return a * (la - lb)


def row_terms(s, t, T, div, beta):
    lq = log_softmax([v / T for v in s])
    lp = log_softmax([v / T for v in t])
    q = [exp(v) if v != -inf else mpf(0) for v in lq]
    p = [exp(v) if v != -inf else mpf(0) for v in lp]
    C = len(s)
    if div == "kl":
        d = sum(xlogy_diff(p[c], lp[c], lq[c]) for c in range(C))
        kk = d if d != inf else 0
        gs = [q[c] - p[c] for c in range(C)]
        gt = [xlogy_diff(p[c], lp[c], lq[c]) - kk * p[c] for c in range(C)]
    elif div == "reverse-kl":
        d = sum(xlogy_diff(q[c], lq[c], lp[c]) for c in range(C))
        kk = d if d != inf else 0
        gs = [xlogy_diff(q[c], lq[c], lp[c]) - kk * q[c] for c in range(C)]
        gt = [p[c] - q[c] for c in range(C)]
    else:
        m = [beta * p[c] + (1 - beta) * q[c] for c in range(C)]
        lm = [log(v) if v > 0 else -inf for v in m]
        kpm = sum(xlogy_diff(p[c], lp[c], lm[c]) for c in range(C))
        kqm = sum(xlogy_diff(q[c], lq[c], lm[c]) for c in range(C))
        d = beta * kpm + (1 - beta) * kqm
        gs = [(1 - beta) * (xlogy_diff(q[c], lq[c], lm[c]) - kqm * q[c]) for c in range(C)]
        gt = [beta * (xlogy_diff(p[c], lp[c], lm[c]) - kpm * p[c]) for c in range(C)]
    return d, gs, gt


def exact(case):
    R, C, T = case["rows"], case["cols"], mpf(case["temperature"])
    S = [val(v) for v in case["student"]]
    Tt = [val(v) for v in case["teacher"]]
    labels = case["labels"]
    alpha = mpf(case["alpha"]) if labels else mpf(1)
    eps = mpf(case["labelSmoothing"]) if labels else mpf(0)
    w = alpha * T * T  # scaleByTemperatureSquared (the default)
    loss, GS, GT = mpf(0), [], []
    for r in range(R):
        s, t = S[r * C:(r + 1) * C], Tt[r * C:(r + 1) * C]
        d, gs, gt = row_terms(s, t, T, case["divergence"], mpf(case["beta"]))
        loss += w * d
        gs = [(w / T) * v for v in gs]
        gt = [(w / T) * v for v in gt]
        if labels and alpha < 1:
            y = labels[r]
            lr = log_softmax(s)
            finite = [v for v in lr if v != -inf]
            ce = -(1 - eps) * lr[y] - eps * (sum(lr) / C if len(finite) == C else -inf)
            loss += (1 - alpha) * ce
            rr = [exp(v) if v != -inf else mpf(0) for v in lr]
            gs = [gs[c] + (1 - alpha) * (rr[c] - (eps / C + ((1 - eps) if c == y else 0))) for c in range(C)]
        GS += gs
        GT += gt
    return loss, GS, GT, w / T


def main(path):
    data = json.load(open(path))
    rows = []
    worst = defaultdict(lambda: [0.0, 0.0, 0, 0])  # per (kind, T): loss rel err, grad ratio, cases, errors
    failed = 0
    for case in data["cases"]:
        key = (case["kind"], case["temperature"])
        if "error" in case:
            worst[key][3] += 1
            continue
        loss, GS, GT, c = exact(case)
        got = val(case["loss"]) if isinstance(case["loss"], str) else mpf(case["loss"])
        if got != got:
            lerr = float("inf")
        elif loss == inf or got == inf:
            lerr = 0.0 if loss == got else float("inf")
        else:
            lerr = float(abs(got - loss) / abs(loss)) if abs(loss) >= mpf("1e-3") else float(abs(got - loss) / mpf("1e-3"))
        finite = [abs(v) for v in (val(x) for x in case["student"] + case["teacher"]) if v not in (inf, -inf)]
        maxz = max(finite) / mpf(case["temperature"])
        ratio = 0.0
        for got_g, want_g in ((case["gradStudent"], GS), (case["gradTeacher"], GT)):
            finite_want = [abs(v) for v in want_g if v not in (inf, -inf)]
            bound = mpf("1e-5") * max(finite_want + [mpf(0)]) + mpf(2) ** -18 * (1 + maxz) * abs(c) + mpf("1e-37")
            for g, wv in zip(got_g, want_g):
                g = val(g) if isinstance(g, str) else mpf(g)
                if g != g:  # NaN: max() would pass over it, so it is a miss here
                    ratio = float("inf")
                elif wv in (inf, -inf) or g in (inf, -inf):
                    ratio = max(ratio, 0.0 if g == wv else float("inf"))
                else:
                    ratio = max(ratio, float(abs(g - wv) / bound))
        ok = lerr <= 1e-5 and ratio <= 1
        failed += 0 if ok else 1
        if not ok:
            print(f"MISS {case['kind']} T={case['temperature']} {case['divergence']} labels={bool(case['labels'])}: "
                  f"loss rel err {lerr:.3g}, grad err / bound {ratio:.3g}")
        wk = worst[key]
        wk[0], wk[1], wk[2] = max(wk[0], lerr), max(wk[1], ratio), wk[2] + 1
    print(f"backend {data['backend']}: {len(data['cases'])} cases, {failed} outside the statement")
    print()
    print("| kind | T | cases | refused | worst loss rel. error | worst grad error / bound |")
    print("|---|---|---|---|---|---|")
    for (kind, T), (le, gr, n, nerr) in worst.items():
        print(f"| {kind} | {T:g} | {n} | {nerr} | {le:.2e} | {gr:.3f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "out/extreme-cases.json"))

#!/usr/bin/env python3
"""PyTorch baseline for kdfuse_cuda_bench: the composed distillation loss a PyTorch user writes,

    loss = F.kl_div(F.log_softmax(s / T), F.softmax(t / T), reduction="batchmean") * T^2

forward + backward (gradient of the student logits), timed at the same shapes (4096 x 32000 and
4096 x 128000, float32) and reported the same way: ms per call and effective GB/s against the
12 bytes per element floor (read s and t, write the student gradient), beside a device-to-device
copy measured in the same run. Needs only PyTorch and a CUDA GPU (no Node, no kdfuse).

    python3 native/cuda/dev/bench_torch.py [--iters N] [--compile]
"""
import argparse
import sys

import torch
import torch.nn.functional as F


def time_ms(fn, iters):
    for _ in range(3):  # warm-up (and compilation with --compile)
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def copy_gbs(iters):
    n = 1 << 28  # 1 GiB of float32
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    ms = time_ms(lambda: b.copy_(a), iters)
    del a, b
    return 2 * 4 * n / (ms * 1e-3) / 1e9  # read + write


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the same loss")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device (torch.cuda.is_available() is False)")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name()} (PyTorch {torch.__version__})")
    copy = copy_gbs(args.iters)
    print(f"device-to-device copy (1 GiB, read + write): {copy:.0f} GB/s\n")
    print(f"{'shape':<13} {'call':<44} {'ms/call':>10} {'GB/s':>10} {'of copy':>8}")

    T = 2.0

    def loss_fn(s, t):
        return F.kl_div(F.log_softmax(s / T, dim=-1), F.softmax(t / T, dim=-1), reduction="batchmean") * (T * T)

    variants = [("KL T=2, grad s (fwd+bwd), eager", loss_fn)]
    if args.compile:
        variants.append(("KL T=2, grad s (fwd+bwd), torch.compile", torch.compile(loss_fn)))

    for rows, cols in [(4096, 32000), (4096, 128000)]:
        shape = f"{rows}x{cols}"
        try:
            g = torch.Generator(device="cuda").manual_seed(0)
            s = (2.0 * torch.randn(rows, cols, device="cuda", generator=g)).requires_grad_(True)
            t = 2.0 * torch.randn(rows, cols, device="cuda", generator=g)
        except torch.cuda.OutOfMemoryError:
            print(f"{shape:<13} out of memory allocating the inputs")
            continue
        for name, fn in variants:

            def step():
                s.grad = None
                fn(s, t).backward()

            try:
                ms = time_ms(step, args.iters)
            except torch.cuda.OutOfMemoryError:
                print(f"{shape:<13} {name:<44} out of memory")
                torch.cuda.empty_cache()
                continue
            gbs = 12.0 * rows * cols / (ms * 1e-3) / 1e9
            print(f"{shape:<13} {name:<44} {ms:10.3f} {gbs:10.0f} {100 * gbs / copy:7.0f}%")
        del s, t
        torch.cuda.empty_cache()
    print("\nGB/s = 12 bytes per element x elements / time (the floor of a fused kernel, as kdfuse_cuda_bench).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

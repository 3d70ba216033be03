#!/usr/bin/env python3
"""The kb_bench table in PyTorch, as the reference kb's speed goals are ratios against.

    python3 bench/torch_bench.py [--device cuda|cpu] [--rows name,name] [--iters N] [--json out.json] [--small]

Same rows, sizes, byte/flop formulas, warm-up and timing scheme as bench/kb_bench.c (median over
repeats of N calls between two CUDA events on the current stream; time.perf_counter on the CPU),
and the same JSON schema, so bench/compare.py can put the two side by side. float32 matrix
products are strict (allow_tf32 = False) except on the dot_tf32 row.
"""
import argparse
import datetime
import json
import statistics
import sys
import time

import torch

REPEATS = 5
WARMUP = 2


def sizes(small):
    """The same sizes as kb_bench; --small divides elements (or flops) by 64."""
    s, s3 = (64, 4) if small else (1, 1)
    return {
        "n": 64 * 1024 * 1024 // s,
        "rows": 65536 // s,
        "cols": 1024,
        "tn": 8192 // (8 if small else 1),
        "mm": 4096 // s3,
        "bb": 256 // s,
        "bm": 128,
        "bk": 64,
        "bn": 128,
        "cn": 64 // s, "cc": 128, "chw": 28, "co": 128,
        "pn": 64 // s, "pc": 256, "phw": 56,
        "ctcb": 64 // s, "lb": 64 // s,
        "cnnb": 32 if small else 128,
    }


def make_rows(z, dev):
    """(name, shape, unit, formula, amount, tf32, operands() -> fn) per row, in kb_bench's order.
    Operands are made lazily so --rows only allocates what it runs."""
    n, R, C, T, M = z["n"], z["rows"], z["cols"], z["tn"], z["mm"]
    B, BM, BK, BN = z["bb"], z["bm"], z["bk"], z["bn"]
    gen = torch.Generator(device=dev).manual_seed(1234)

    def uni(*shape):
        # values in [-1, 1), as kb_bench's inputs
        return torch.rand(*shape, device=dev, generator=gen, dtype=torch.float32) * 2 - 1

    cache = {}

    def get(key, *shape):
        if key not in cache:
            cache[key] = uni(*shape)
        return cache[key]

    def vec(key):
        return get(key, n)

    def mat():
        return get("x", R, C)

    def add():
        a, b = vec("a"), vec("b")
        return lambda: a + b

    def chain():
        a, b = vec("a"), vec("b")
        return lambda: a * b + torch.exp(a)

    def sum_last():
        x = mat()
        return lambda: x.sum(-1)

    def sum_first():
        x = mat()
        return lambda: x.sum(0)

    def softmax():
        x = mat()
        return lambda: torch.softmax(x, -1)

    def argmax():
        x = mat()
        return lambda: torch.argmax(x, -1)

    def cumsum():
        x = mat()
        return lambda: torch.cumsum(x, -1)

    def transpose():
        t = get("t", T, T)
        return lambda: t.t().contiguous()

    def dot():
        x, y = get("da", M, M), get("db", M, M)
        return lambda: x @ y

    def batch_dot():
        x, y = get("ba", B, BM, BK), get("bb", B, BK, BN)
        return lambda: torch.bmm(x, y)

    CN, CC, CHW, CO = z["cn"], z["cc"], z["chw"], z["co"]
    PN, PC, PHW = z["pn"], z["pc"], z["phw"]
    F = torch.nn.functional

    def conv_operands(cf):
        # the kb kernel (3, 3, C, O) is torch's (O, C, 3, 3); channels_last memory format for NHWC
        x, w = get("cx", CN, CC, CHW, CHW), get("cw", CO, CC, 3, 3)
        if not cf:
            x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
        return x, w

    def conv(cf):
        def make():
            x, w = conv_operands(cf)
            return lambda: F.conv2d(x, w, padding=1)
        return make

    def convb(cf):
        # y and the gradients of y.sum() w.r.t. x and w, as kb's gradients of sum(y)
        def make():
            x, w = conv_operands(cf)
            x, w = x.detach().requires_grad_(), w.detach().requires_grad_()

            def step():
                with torch.enable_grad():
                    y = F.conv2d(x, w, padding=1)
                    return y, torch.autograd.grad(y.sum(), [x, w])
            return step
        return make

    def maxpool():
        x = get("px", PN, PC, PHW, PHW)
        return lambda: F.max_pool2d(x, 3, 2)

    def uniform():
        out = torch.empty(n, device=dev)
        return lambda: out.uniform_()

    def normal():
        out = torch.empty(n, device=dev)
        return lambda: out.normal_()

    CB, LB = z["ctcb"], z["lb"]
    CT, CCL, CL = 200, 32, 50

    def ctc():
        # Keras ctc_batch_cost: log(y + eps), time-major, (re-)normalised, blank = C - 1, summed
        # loss, gradient w.r.t. the probabilities y
        y = torch.softmax(2 * uni(CB, CT, CCL), -1).requires_grad_()
        tgt = torch.randint(0, CCL - 1, (CB, CL), device=dev, generator=gen)
        il = torch.full((CB,), CT, dtype=torch.long, device=dev)
        tl = torch.full((CB,), CL, dtype=torch.long, device=dev)

        def step():
            with torch.enable_grad():
                lp = torch.log_softmax(torch.log(y.transpose(0, 1) + 1e-7), 2)
                loss = F.ctc_loss(lp, tgt, il, tl, blank=CCL - 1, reduction="none")
                return loss, torch.autograd.grad(loss.sum(), [y])
        return step

    def lstm():
        m = torch.nn.LSTM(512, 512, batch_first=True).to(dev)
        x = uni(LB, 100, 512).requires_grad_()
        params = [x] + list(m.parameters())

        def step():
            with torch.enable_grad():
                y, _ = m(x)
                return y, torch.autograd.grad(y.sum(), params)
        return step

    def bn_train():
        x, g, b = get("px", PN, PC, PHW, PHW), get("g", PC), get("be", PC)
        rm, rv = torch.zeros(PC, device=dev), torch.ones(PC, device=dev)
        return lambda: F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-3)

    NB = z["cnnb"]

    def cnn_step(cf):
        # one training step of Keras' mnist_cnn (as examples/cnn_model.c) with Adam (lr 1e-3, eps
        # 1e-7 as Keras), dropout on, on one fixed batch: zero_grad, forward, backward, step
        def make():
            nn = torch.nn
            m = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(128, 10)).to(dev)
            x = torch.rand(NB, 1, 28, 28, device=dev, generator=gen)
            t = torch.arange(NB, device=dev) % 10
            if not cf:
                m, x = m.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
            m.train()
            opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)

            def step():
                with torch.enable_grad():
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(m(x), t)
                    loss.backward()
                    opt.step()
                    return loss
            return step
        return make

    f = 4.0
    cnn_flops = 3 * 2.0 * NB * (26 * 26 * 32 * 9 + 24 * 24 * 64 * 9 * 32 + 9216 * 128 + 128 * 10)
    cshape, pshape = f"{CN}x{CC}x{CHW}x{CHW}->{CO}", f"{PN}x{PC}x{PHW}x{PHW}"
    cflops = 2.0 * CN * CHW * CHW * CO * 9 * CC
    POH = (PHW - 3) // 2 + 1
    return [
        ("add", f"{n}", "GB/s", "3*4*n", 3 * f * n, False, add),
        ("chain", f"{n}", "GB/s", "3*4*n (a, b in, y out)", 3 * f * n, False, chain),
        ("sum_last", f"{R}x{C}", "GB/s", "4*R*C + 4*R", f * (R * C + R), False, sum_last),
        ("sum_first", f"{R}x{C}", "GB/s", "4*R*C + 4*C", f * (R * C + C), False, sum_first),
        ("softmax", f"{R}x{C}", "GB/s", "2*4*R*C", 2 * f * R * C, False, softmax),
        ("argmax", f"{R}x{C}", "GB/s", "4*R*C + 8*R", f * R * C + 8.0 * R, False, argmax),
        ("cumsum", f"{R}x{C}", "GB/s", "2*4*R*C", 2 * f * R * C, False, cumsum),
        ("transpose", f"{T}x{T}", "GB/s", "2*4*n*n", 2 * f * T * T, False, transpose),
        ("dot_fp32", f"{M}x{M}x{M}", "TFLOP/s", "2*M*N*K", 2.0 * M * M * M, False, dot),
        ("dot_tf32", f"{M}x{M}x{M}", "TFLOP/s", "2*M*N*K", 2.0 * M * M * M, True, dot),
        ("batch_dot", f"{B}x{BM}x{BK}x{BN}", "TFLOP/s", "2*B*M*N*K", 2.0 * B * BM * BN * BK, False, batch_dot),
        ("conv_nhwc", cshape, "TFLOP/s", "2*N*H*W*O*9*C", cflops, False, conv(False)),
        ("conv_nchw", cshape, "TFLOP/s", "2*N*H*W*O*9*C", cflops, False, conv(True)),
        ("convb_nhwc", cshape, "TFLOP/s", "3*2*N*H*W*O*9*C (y, dx, dkernel)", 3 * cflops, False, convb(False)),
        ("convb_nchw", cshape, "TFLOP/s", "3*2*N*H*W*O*9*C (y, dx, dkernel)", 3 * cflops, False, convb(True)),
        ("maxpool", pshape, "GB/s", "4*N*C*H*W + 4*N*C*OH*OW", f * PN * PC * (PHW * PHW + POH * POH), False, maxpool),
        ("bn_train", pshape, "GB/s", "3*4*N*C*H*W (x read twice, y written)", 3 * f * PN * PC * PHW * PHW, False,
         bn_train),
        ("uniform", f"{n}", "GB/s", "4*n (written)", f * n, False, uniform),
        ("normal", f"{n}", "GB/s", "4*n (written)", f * n, False, normal),
        ("ctc", f"T{CT}xB{CB}xC{CCL}xL{CL}", "GB/s", "2*4*B*T*C (y_pred read, gradient written)", 2 * f * CB * CT * CCL,
         False, ctc),
        ("lstm", f"T100xB{LB}x512->512", "TFLOP/s", "3*2*T*B*(I+H)*4H", 3 * 2.0 * 100 * LB * 1024 * 4 * 512, False, lstm),
        ("cnn_nhwc", f"B{NB}x28x28", "TFLOP/s", "3*2*B*(forward multiply-adds)", cnn_flops, False, cnn_step(False)),
        ("cnn_nchw", f"B{NB}x28x28", "TFLOP/s", "3*2*B*(forward multiply-adds)", cnn_flops, False, cnn_step(True)),
    ]


def set_tf32(on):
    # cuDNN convolutions default to TF32 in PyTorch: off too, as kb's strict FP32
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def time_calls(fn, dev, iters, repeats):
    """Median per-call milliseconds over `repeats` runs of `iters` calls, after WARMUP calls."""
    for _ in range(WARMUP):
        fn()
    times = []
    if dev == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        for _ in range(repeats):
            start.record()
            for _ in range(iters):
                fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / iters)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            times.append((time.perf_counter() - t0) * 1e3 / iters)
    return statistics.median(times)


def copy_bandwidth(dev, nbytes):
    """GB/s of a device-to-device copy of nbytes: 2 * bytes / time, as kb_bench measures it."""
    src = torch.ones(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    ms = time_calls(lambda: dst.copy_(src), dev, 1, REPEATS)
    del src, dst
    return 2.0 * nbytes / (ms * 1e6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default=None)
    ap.add_argument("--rows", default=None)
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_bench: CUDA asked for, but torch sees no GPU")
    iters = args.iters or (20 if dev == "cuda" else 3)
    repeats = REPEATS if dev == "cuda" else 3
    z = sizes(args.small)
    rows = make_rows(z, dev)
    names = [r[0] for r in rows]
    pick = names if args.rows is None else args.rows.split(",")
    for p in pick:
        if p not in names:
            sys.exit(f"torch_bench: unknown row '{p}'; rows: {' '.join(names)}")

    devname = torch.cuda.get_device_name() if dev == "cuda" else "cpu (torch, %d threads)" % torch.get_num_threads()
    copy_bytes = 1 << (24 if args.small else 30)
    copy_gbs = copy_bandwidth(dev, copy_bytes)
    print(f"torch_bench: torch {torch.__version__}, {devname}{', --small sizes' if args.small else ''}, "
          f"{iters} calls x {repeats} repeats per row (median), copy {copy_gbs:.1f} GB/s ({copy_bytes >> 20} MiB)")
    print(f"{'row':<10} {'shape':<18} {'ms':>10} {'throughput':>12} {'of copy':>8}  {'check':<6} detail")
    results = []
    for name, shape, unit, formula, amount, tf32, operands in rows:
        if name not in pick:
            continue
        res = {"name": name, "shape": shape, "unit": unit, "formula": formula, "amount": amount,
               "ms": None, "throughput": None, "frac_copy": None, "check": "error", "detail": ""}
        try:
            if dev == "cuda":
                set_tf32(tf32)
            with torch.no_grad():
                fn = operands()
                ms = time_calls(fn, dev, iters, repeats)
            res["ms"] = ms
            res["throughput"] = amount / (ms * (1e9 if unit == "TFLOP/s" else 1e6))
            if unit == "GB/s" and copy_gbs > 0:
                res["frac_copy"] = res["throughput"] / copy_gbs
            # PyTorch is the reference here, not the thing under test: its values are not re-checked.
            res["check"] = "ok"
            res["detail"] = "reference, not checked"
        except Exception as e:  # a row that fails (e.g. out of memory) is reported, the others still run
            res["detail"] = f"{type(e).__name__}: {e}"[:250]
        finally:
            if dev == "cuda":
                set_tf32(False)
        tp = "-" if res["ms"] is None else f"{res['throughput']:.2f} {'TF/s' if unit == 'TFLOP/s' else 'GB/s'}"
        fr = "-" if res["frac_copy"] is None else f"{res['frac_copy']:.3f}"
        print(f"{name:<10} {shape:<18} {res['ms'] or 0:>10.4f} {tp:>12} {fr:>8}  {res['check']:<6} {res['detail']}",
              flush=True)
        results.append(res)

    doc = {
        "tool": "torch",
        "torch_version": torch.__version__,
        "device": devname,
        "device_kind": dev,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "small": args.small,
        "iters": iters,
        "repeats": repeats,
        "copy_gbs": copy_gbs,
        "rows": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0 if all(r["check"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

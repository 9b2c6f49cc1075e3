"""Do the capacity layout's weight gradients overlap the data gradients on a second stream? (issue #3, T4096 E32)

The backward of the T4096 E32 capacity layer's expert MLP is two weight-read-bound data gradients (dgrad, ~88 µs
each: the weights, 268 MB, read once), two write-bound weight gradients (wgrad, ~102 µs: 268 MB written after a K
loop of 160) and the GELU backward between them. Nothing but the end of the backward waits for a weight gradient,
so each can run on a side stream beside the data path. Both orders are captured as CUDA graphs (as the layer runs)
and replayed alternately; medians of 20 replays in each of three rounds, µs.
The large shapes' products are timed the same way (the dropless ones through libtorch's grouped GEMM, equal groups).
Usage: python3 bench/python/wgrad_side_stream.py [part of a shape's name]
"""
import torch

import sys

# name: experts, rows per expert, model width, expert width, grouped (dropless: one flat buffer and libtorch's grouped GEMM)
SHAPES = {"T4096-E32 capacity": (32, 160, 1024, 4096, False), "T16384-E64 capacity": (64, 320, 2048, 8192, False),
          "T16384-E64 dropless": (64, 256, 2048, 8192, True), "T16384-E16-k1 dropless": (16, 1024, 2048, 8192, True),
          "T16384-E16-k2 dropless": (16, 2048, 2048, 8192, True)}


def median_us(graph, reps=20, warmup=3):
    for _ in range(warmup): graph.replay()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in pairs:
        s.record(); graph.replay(); e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in pairs)
    return times[len(times) // 2] * 1e3


def measure(name, E, C, M, F, grouped):
    torch.manual_seed(0)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    rows = (E, C) if not grouped else (E * C,)
    x, pre, h, dy = torch.randn(*rows, M, **bf), torch.randn(*rows, F, **bf), torch.randn(*rows, F, **bf), torch.randn(*rows, M, **bf)
    w1, w2 = torch.randn(E, M, F, **bf) * M ** -0.5, torch.randn(E, F, M, **bf) * F ** -0.5
    side = torch.cuda.Stream()
    ends = (torch.arange(1, E + 1, device="cuda") * C).to(torch.int32)

    def mm(a, b):  # a [.., rows, k] · b [E, k, n] per expert
        return torch._grouped_mm(a, b, offs=ends) if grouped else torch.bmm(a, b)

    def wgrad(a, b):  # a [.., rows, p]ᵀ · b [.., rows, q] per expert → [E, p, q]
        return torch._grouped_mm(a.t(), b, offs=ends) if grouped else torch.bmm(a.transpose(1, 2), b)

    def serial():
        dh = mm(dy, w2.transpose(1, 2))
        dw2 = wgrad(h, dy)
        dpre = torch.ops.aten.gelu_backward(dh, pre)
        dx = mm(dpre, w1.transpose(1, 2))
        dw1 = wgrad(x, dpre)
        return dx, dw1, dw2

    def forked():
        main_stream = torch.cuda.current_stream()
        side.wait_stream(main_stream)
        with torch.cuda.stream(side):
            dw2 = wgrad(h, dy)
        dh = mm(dy, w2.transpose(1, 2))
        dpre = torch.ops.aten.gelu_backward(dh, pre)
        side.wait_stream(main_stream)
        with torch.cuda.stream(side):
            dw1 = wgrad(x, dpre)
        dx = mm(dpre, w1.transpose(1, 2))
        main_stream.wait_stream(side)
        return dx, dw1, dw2

    def only(what):
        def run():
            if what == "dgrad": return mm(dy, w2.transpose(1, 2))
            if what == "wgrad": return wgrad(h, dy)
            return torch.ops.aten.gelu_backward(pre, pre)
        return run

    graphs, outputs = {}, {}
    variants = {"serial": serial, "forked": forked, "one dgrad": only("dgrad"), "one wgrad": only("wgrad"), "gelu backward": only("gelu")}
    for variant, fn in variants.items():
        warm = torch.cuda.Stream()
        warm.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(warm):
            for _ in range(2): fn()
        torch.cuda.current_stream().wait_stream(warm)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs[variant] = fn()
        graphs[variant] = graph
    graphs["serial"].replay(); graphs["forked"].replay(); torch.cuda.synchronize()
    same = all(torch.equal(a, b) for a, b in zip(outputs["serial"], outputs["forked"]))
    times = {variant: [] for variant in graphs}
    for _ in range(3):
        for variant, graph in graphs.items():
            times[variant].append(median_us(graph))
    print(f"{name}: " + "   ".join(f"{variant} {sorted(values)[1]:.1f}" for variant, values in times.items())
          + f"   saved {sorted(times['serial'])[1] - sorted(times['forked'])[1]:.1f} µs; forked equal to serial: {same}", flush=True)


def main():
    for name, shape in SHAPES.items():
        if len(sys.argv) > 1 and sys.argv[1] not in name: continue
        measure(name, *shape)


if __name__ == "__main__":
    main()

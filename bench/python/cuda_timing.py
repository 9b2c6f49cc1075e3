"""The timing rule of the Python probes: median of `iters` runs after `warmup`, each between CUDA events and synchronised."""
import torch


def median_ms(fn, warmup=5, iters=20):
    times = []
    for i in range(warmup + iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); end.record(); torch.cuda.synchronize()
        if i >= warmup: times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]

"""The timing rules of the Python probes: medians between CUDA events, each run synchronised or all back to back."""
import torch


def median_ms(fn, warmup=5, iters=20):
    times = []
    for i in range(warmup + iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); end.record(); torch.cuda.synchronize()
        if i >= warmup: times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def median_back_to_back_ms(fn, reps=10, warmup=2):
    """Median of `reps` runs issued back to back after `warmup` (events between them, one synchronisation at the end):
    the GPU does not idle between runs, as in a training step, so a power-capped clock shows in the times."""
    for _ in range(warmup): fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for start, end in events:
        start.record(); fn(); end.record()
    torch.cuda.synchronize()
    return sorted(start.elapsed_time(end) for start, end in events)[reps // 2]

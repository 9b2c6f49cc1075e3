"""Does a GEMM-bound MoE layer run at the clock a kernel profiler sees? (issue #3, one H200, PyTorch 2.11)
Times libtorch's grouped GEMM on T16384-E16-k2's first expert product (x·W1: 32768 rows, 16 equal groups, 2048 → 8192)
one call at a time after 200 ms idle, and as 300 back-to-back calls (medians of the last 200), while nvidia-smi samples
the SM clock, power and the clock-event reasons every 20 ms; prints both phases side by side.
Usage: python3 bench/python/sustained_gemm.py
"""
import datetime
import os
import subprocess
import tempfile
import time

import torch

FIELDS = "timestamp,clocks.sm,power.draw,power.limit,temperature.gpu,clocks_event_reasons.active"
log = tempfile.NamedTemporaryFile("w+", suffix=".csv", delete=False)
sampler = subprocess.Popen(["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits", "-lms", "20"],
                           stdout=log, stderr=subprocess.DEVNULL)
time.sleep(1.0)

R, M, F, E = 32768, 2048, 8192, 16
bf = dict(device="cuda", dtype=torch.bfloat16)
x, w = torch.randn(R, M, **bf), torch.randn(E, M, F, **bf) * 0.02
offs = torch.arange(1, E + 1, device="cuda", dtype=torch.int32) * (R // E)
gemm = lambda: torch._grouped_mm(x, w, offs=offs)
tflop = 2.0 * R * M * F / 1e12
for _ in range(5): gemm()
torch.cuda.synchronize()


def timed(n, idle):
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for start, end in events:
        if idle:
            torch.cuda.synchronize(); time.sleep(0.2)
        start.record(); gemm(); end.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


phases = {}
t0 = time.time(); isolated = timed(20, idle=True); phases["one call after 200 ms idle"] = (t0, time.time(), isolated)
time.sleep(0.5)
t0 = time.time(); sustained = timed(300, idle=False)[100:]; phases["300 back-to-back calls (last 200)"] = (t0, time.time(), sustained)
time.sleep(0.2)
sampler.terminate(); sampler.wait()
log.seek(0)
samples = []
for line in log.read().splitlines():
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 6: continue
    try:
        stamp = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        samples.append((stamp, float(parts[1]), float(parts[2]), float(parts[3]), float(parts[4]), parts[5]))
    except ValueError:
        continue
os.unlink(log.name)
median = lambda v: sorted(v)[len(v) // 2] if v else float("nan")
for name, (begin, end, times) in phases.items():
    # The isolated phase's samples while a call runs are few: keep the samples of the busiest half (highest power).
    inside = [s for s in samples if begin <= s[0] <= end]
    if name.startswith("one call"): inside = sorted(inside, key=lambda s: s[2])[len(inside) // 2:]
    reasons = sorted({s[5] for s in inside})
    ms = median(times)
    print(f"{name:36} {ms:6.3f} ms ({tflop / ms * 1e3:4.0f} TFLOP/s)  SM clock {median([s[1] for s in inside]):5.0f} MHz  "
          f"power {median([s[2] for s in inside]):4.0f} W of {median([s[3] for s in inside]):4.0f}  "
          f"{median([s[4] for s in inside]):3.0f} C  {len(inside)} samples  clock-event reasons {' '.join(reasons)}", flush=True)

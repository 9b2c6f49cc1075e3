"""All-to-all (bf16, equal splits) and all-reduce through torch.distributed, timed the way bench/CommBench times the
project's NCCL binding, so that both are measured in the same session on the same GPUs.

    NCCL_NVLS_ENABLE=0 python3 -m torch.distributed.run --nproc_per_node N bench/python/a2a_torch.py --out DIR

Writes DIR/comm-torch-{N}gpus.json (rank 0). A sample starts after a barrier and ends when this rank's GPU is done;
its time is the slowest rank's; the reported latency is the median sample. Back-to-back: 20 calls, one wait.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist

BACK_TO_BACK = 20


def measure(operation, warmup, iterations):
    for _ in range(warmup):
        operation()
    torch.cuda.synchronize()
    samples = []
    for _ in range(iterations):
        dist.barrier()
        torch.cuda.synchronize()
        began = time.perf_counter()
        operation()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - began) * 1e6)
    dist.barrier()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(BACK_TO_BACK):
        operation()
    torch.cuda.synchronize()
    samples.append((time.perf_counter() - began) * 1e6 / BACK_TO_BACK)
    slowest = torch.tensor(samples, dtype=torch.float64, device="cuda")
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    slowest = slowest.tolist()
    return statistics.median(slowest[:-1]), slowest[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", default="1,8,64,256")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()

    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    n = dist.get_world_size()
    rows = []
    for op in ("all-to-all", "all-reduce"):
        for mb in (int(s) for s in args.sizes_mb.split(",")):
            size = mb << 20
            send = torch.ones(size // 2, dtype=torch.bfloat16, device="cuda")
            receive = torch.empty_like(send)
            if op == "all-to-all":
                run = lambda: dist.all_to_all_single(receive, send)  # noqa: E731
            else:
                run = lambda: dist.all_reduce(send)  # noqa: E731
            median, back_to_back = measure(run, args.warmup, args.iterations)
            factor = (n - 1) / n if op == "all-to-all" else 2 * (n - 1) / n
            row = {"gpus": n, "op": op, "mb": mb, "median_us": median, "back_to_back_us": back_to_back,
                   "busbw_GBps": size / (median * 1e-6) * factor / 1e9,
                   "busbw_back_to_back_GBps": size / (back_to_back * 1e-6) * factor / 1e9}
            rows.append(row)
            if dist.get_rank() == 0:
                print(f"torch {n} GPUs {op} {mb} MB: median {median:.1f} us, back-to-back {back_to_back:.1f} us, "
                      f"busbw {row['busbw_GBps']:.1f} GB/s", flush=True)
    if dist.get_rank() == 0:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"comm-torch-{n}gpus.json"), "w") as f:
            json.dump(rows, f, indent=2)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

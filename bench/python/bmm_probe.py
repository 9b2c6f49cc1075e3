"""Times the expert GEMMs of the first TARGETS.md row in PyTorch, beside the C# breakdown (same machine, same run)."""
import torch
from cuda_timing import median_ms

E, C, M, F = 16, 1280, 2048, 8192
buf = torch.randn(E, C, M, device="cuda", dtype=torch.bfloat16)
w1 = (torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16)
ms = median_ms(lambda: torch.bmm(buf, w1))
print(f"torch bmm [{E},{C},{M}]x[{E},{M},{F}]: {ms:.3f} ms, {2*E*C*M*F/ms/1e9:.0f} TFLOP/s")
h = torch.bmm(buf, w1)
print(f"torch gelu [{E},{C},{F}]: {median_ms(lambda: torch.nn.functional.gelu(h)):.3f} ms")
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
print(f"torch matmul 8192^3: {2*8192**3/median_ms(lambda: a @ a)/1e9:.0f} TFLOP/s")

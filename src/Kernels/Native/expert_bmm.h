// The capacity layout's expert GEMMs through cuBLASLt (expert_bmm.cpp); cuda_graph.cpp exports them to C#.
#pragma once

#include <ATen/ATen.h>

namespace moe {

// x [E, m, k] · w [E, k, n] → [E, m, n] (bf16 or fp16, on one GPU), differentiable in both: the forward and both
// gradients are batched GEMMs, each run by whichever ran fastest for its shape: one of cuBLASLt's algorithms or cuBLAS.
at::Tensor expert_bmm(const at::Tensor& x, const at::Tensor& w);

}  // namespace moe

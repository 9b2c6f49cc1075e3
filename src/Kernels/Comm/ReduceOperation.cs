namespace Orleans.MoE.Kernels.Comm;

public enum ReduceOperation
{
    Sum,
    Max,
}

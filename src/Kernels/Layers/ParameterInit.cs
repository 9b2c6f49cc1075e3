using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Layers;

/// <summary>
/// Normal initialisation from an explicit generator. TorchSharp 0.107's <c>nn.init.normal_</c> ignores the
/// generator it is given and draws from torch's global one, so a job's weights would depend on whatever else the
/// process drew first (other jobs on the same silo, other tests); drawing with <c>randn(generator)</c> does not.
/// </summary>
public static class ParameterInit
{
    public static void Normal(Tensor parameter, double std, Generator? generator)
    {
        using var noGrad = torch.no_grad();
        if (generator is null)
        {
            nn.init.normal_(parameter, 0, std);
            return;
        }
        using var draw = torch.randn(parameter.shape, dtype: parameter.dtype, device: parameter.device, generator: generator);
        parameter.copy_(draw.mul_(std));
    }
}

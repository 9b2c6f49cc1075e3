using TorchSharp;
using static TorchSharp.torch;

namespace Orleans.MoE.Kernels.Distillation;

/// <summary>
/// T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over tokens (Hinton et al.; the T² keeps the
/// gradient scale independent of T). Logits are [..., V]; the teacher's carry no gradient.
/// </summary>
public static class KnowledgeDistillationLoss
{
    public static Tensor Compute(Tensor studentLogits, Tensor teacherLogits, double temperature)
    {
        long vocab = studentLogits.shape[^1];
        var student = (studentLogits.reshape(-1, vocab).to_type(ScalarType.Float32) / temperature).log_softmax(-1);
        var teacher = (teacherLogits.detach().reshape(-1, vocab).to_type(ScalarType.Float32) / temperature).log_softmax(-1);
        var perToken = (teacher.exp() * (teacher - student)).sum(-1);
        return perToken.mean() * (temperature * temperature);
    }
}

using Orleans.MoE.Kernels.Model;
using TorchSharp;

namespace Orleans.MoE.Kernels.Distillation;

/// <summary>
/// Initialises a shallower student from its teacher: embeddings and the final norm as they are, and student block
/// i from teacher block <c>layers[i]</c> (the two blocks must have the same shape: dense vs MoE, expert counts).
/// </summary>
public static class StudentInitialiser
{
    public static void CopyFromTeacher(GptModel student, GptModel teacher, IReadOnlyList<int> layers)
    {
        var source = teacher.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = torch.no_grad();
        foreach (var (name, parameter) in student.named_parameters())
        {
            string teacherName = name;
            if (name.StartsWith("blocks.", StringComparison.Ordinal))
            {
                int dot = name.IndexOf('.', 7);
                int index = int.Parse(name[7..dot], System.Globalization.CultureInfo.InvariantCulture);
                teacherName = $"blocks.{layers[index]}{name[dot..]}";
            }
            if (!source.TryGetValue(teacherName, out var from) || !from.shape.SequenceEqual(parameter.shape))
                throw new ArgumentException($"student parameter '{name}' has no teacher parameter '{teacherName}' of shape [{string.Join(", ", parameter.shape)}]");
            parameter.copy_(from);
        }
    }
}

namespace Orleans.MoE.Kernels.Comm.CostModel;

/// <summary>Weighted linear least squares for the few unknowns of a cost model (normal equations, columns rescaled).</summary>
public static class LeastSquares
{
    /// <summary>
    /// The x minimising Σ wᵢ² (rowᵢ·x − yᵢ)². Columns are scaled to unit size first: seconds and bytes differ by
    /// ~15 orders of magnitude, which would otherwise ruin the normal equations' conditioning.
    /// </summary>
    public static double[] Solve(IReadOnlyList<double[]> rows, IReadOnlyList<double> targets, IReadOnlyList<double> weights)
    {
        int k = rows[0].Length;
        var scale = new double[k];
        for (int j = 0; j < k; j++) scale[j] = Math.Max(rows.Max(r => Math.Abs(r[j])), double.Epsilon);
        var normal = new double[k, k + 1];
        for (int i = 0; i < rows.Count; i++)
        {
            double w2 = weights[i] * weights[i];
            for (int a = 0; a < k; a++)
            {
                for (int b = 0; b < k; b++) normal[a, b] += w2 * rows[i][a] / scale[a] * rows[i][b] / scale[b];
                normal[a, k] += w2 * rows[i][a] / scale[a] * targets[i];
            }
        }
        var solution = GaussJordan(normal, k);
        for (int j = 0; j < k; j++) solution[j] /= scale[j];
        return solution;
    }

    static double[] GaussJordan(double[,] m, int k)
    {
        for (int col = 0; col < k; col++)
        {
            int pivot = Enumerable.Range(col, k - col).MaxBy(r => Math.Abs(m[r, col]));
            if (Math.Abs(m[pivot, col]) < 1e-12)
                throw new InvalidOperationException("the points do not determine the fit (too few distinct sizes or GPU counts)");
            for (int c = 0; c <= k; c++) (m[col, c], m[pivot, c]) = (m[pivot, c], m[col, c]);
            for (int r = 0; r < k; r++)
            {
                if (r == col) continue;
                double f = m[r, col] / m[col, col];
                for (int c = 0; c <= k; c++) m[r, c] -= f * m[col, c];
            }
        }
        return Enumerable.Range(0, k).Select(j => m[j, k] / m[j, j]).ToArray();
    }
}

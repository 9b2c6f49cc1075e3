using System.Text.RegularExpressions;
using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Kernels.Tests;

public class BrownCorpusTests
{
    private static readonly Lazy<IReadOnlyList<CorpusText>> All = new(() => BrownCorpus.LoadAll(CacheDirectory.Default()));

    [Fact]
    public void HasFiveHundredTextsInFifteenGenres()
    {
        Assert.Equal(500, All.Value.Count);
        Assert.Equal(15, All.Value.Select(t => t.Genre).Distinct().Count());
        Assert.Equal(500, All.Value.Select(t => t.Id).Distinct().Count());
        Assert.StartsWith("The Fulton County Grand Jury said Friday", All.Value[0].Text);
        Assert.Equal("ca01", All.Value[0].Id);
    }

    [Fact]
    public void TextsHoldNoTagRemnants()
    {
        // Brown tags are lowercase letters, optionally with -tl/-hl/-nc suffixes or '$'; none should survive.
        var tag = new Regex(@"\w/(at|nn|nns|np|vbd|vbz|jj|in|cc|cs|rb|pps|ppss)(-tl|-hl|\$)?(\s|$)");
        foreach (var text in All.Value)
        {
            Assert.False(tag.IsMatch(text.Text), $"{text.Id} still holds a tag: {tag.Match(text.Text).Value}");
            Assert.DoesNotContain("``", text.Text);
            // '' survives only inside words such as 4' 10'' (inches), never as a quote token of its own.
            Assert.DoesNotMatch(@"(^|\s)''(\s|$)", text.Text);
        }
        Assert.Contains('\n', All.Value[0].Text);
    }

    [Fact]
    public void EveryGenreIsInEverySplitAndNoTextIsInTwo()
    {
        var splits = BrownCorpus.Split(All.Value);
        var genres = All.Value.Select(t => t.Genre).ToHashSet();
        Assert.Equal(genres, splits.Train.Select(t => t.Genre).ToHashSet());
        Assert.Equal(genres, splits.Validation.Select(t => t.Genre).ToHashSet());
        Assert.Equal(genres, splits.Test.Select(t => t.Genre).ToHashSet());
        var ids = splits.Train.Concat(splits.Validation).Concat(splits.Test).Select(t => t.Id).ToList();
        Assert.Equal(500, ids.Count);
        Assert.Equal(500, ids.Distinct().Count());
        // Genre a has 44 texts: indices 8, 18, 28, 38 validate and 9, 19, 29, 39 test.
        Assert.Equal(["ca09", "ca19", "ca29", "ca39"], splits.Validation.Where(t => t.Genre == 'a').Select(t => t.Id));
        Assert.Equal(["ca10", "ca20", "ca30", "ca40"], splits.Test.Where(t => t.Genre == 'a').Select(t => t.Id));
        // Genre m has 6 texts, too few for the modulo rule: its last two are held out.
        Assert.Equal(["cm05"], splits.Validation.Where(t => t.Genre == 'm').Select(t => t.Id));
        Assert.Equal(["cm06"], splits.Test.Where(t => t.Genre == 'm').Select(t => t.Id));
    }

    [Fact]
    public void LoadReturnsTheSameSplitEveryTime()
    {
        var first = BrownCorpus.Load(CacheDirectory.Default());
        var second = BrownCorpus.Load(CacheDirectory.Default());
        Assert.Equal(first.Test.Select(t => t.Id), second.Test.Select(t => t.Id));
        Assert.Equal(first.Validation.Select(t => t.Text), second.Validation.Select(t => t.Text));
    }

    [Fact]
    public void SplitRefusesAGenreTooSmallForThreeSplits()
    {
        CorpusText[] texts = [new("x1", 'x', "a"), new("x2", 'x', "b")];
        var e = Assert.Throws<ArgumentException>(() => BrownCorpus.Split(texts));
        Assert.Contains("genre 'x' has 2 texts", e.Message);
    }
}

using Orleans.MoE.Kernels.Data;

namespace Orleans.MoE.Kernels.Tests;

public class BrownDetokenizerTests
{
    [Fact]
    public void StripsTagsAndAttachesPunctuationAndQuotes()
    {
        const string tagged =
            "\tThe/at jury/nn said/vbd ,/, ``/`` no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n";
        Assert.Equal("The jury said, \"no evidence\" that any irregularities took place.", BrownDetokenizer.Detokenize(tagged));
    }

    [Fact]
    public void HandlesParenthesesClausesAndSlashesInsideWords()
    {
        const string tagged =
            "(/( as/cs the/at Law/nn-tl specifies/vbz )/) ;/. don't/do* you/ppss ?/. the/at farmers/nns '/' union/nn " +
            "3/4/cd inch/nn ,/, //in and/cc it/pps 's/bez here/rb :/: done/vbn !/.";
        Assert.Equal(
            "(as the Law specifies); don't you? the farmers' union 3/4 inch, / and it's here: done!",
            BrownDetokenizer.Detokenize(tagged));
    }

    [Fact]
    public void BlankLinesSeparateParagraphsAndSentenceLinesJoinWithSpaces()
    {
        const string tagged = "\n\n\tFirst/od one/cd ./.\nSecond/od sentence/nn ./.\n\n\n\tNew/jj paragraph/nn ./.\n";
        Assert.Equal("First one. Second sentence.\nNew paragraph.", BrownDetokenizer.Detokenize(tagged));
    }
}

from agent.call.clauses import ClauseSplitter, speakable


def stream(text, size=3):
    splitter, out = ClauseSplitter(), []
    for i in range(0, len(text), size):
        out += splitter.feed(text[i : i + size])
    return out + splitter.flush()


def test_sentences_and_early_first_clause():
    out = stream("Sure, we are open on Monday, from 8 am. A check-up costs 3.50 dollars! Anything else?")
    assert out == ["Sure, we are open on Monday,", "from 8 am.", "A check-up costs 3.50 dollars!", "Anything else?"]


def test_short_first_comma_is_not_cut():
    assert stream("Yes, we do.") == ["Yes, we do."]


def test_no_punctuation_flushes_at_end():
    assert stream("hello there") == ["hello there"]


def test_speakable_strips_markup():
    assert speakable("**Open** _today_ `now`\n\n# yes") == "Open today now yes"

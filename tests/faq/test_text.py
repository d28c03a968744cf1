from refarch.faq.text import clean_text, clean_text_reference


def test_code_blocks_are_dropped_even_across_lines():
    html = "<p>Why does <code>sort()</code> fail?</p><pre><code>var a = [10, 9];\na.sort();</code></pre><p>Thanks</p>"
    assert clean_text(html) == "why does sort() fail? thanks"


def test_links_become_their_text_and_bare_urls_disappear():
    html = 'See <a href="https://x.org/a">the MDN page</a> and <a href="https://y.org">https://y.org</a>.'
    assert clean_text(html) == "see the mdn page and ."


def test_entities_are_decoded_and_spaces_collapsed():
    assert clean_text("<p>a &amp; b</p>\n\n<p>C&lt;T&gt;</p>") == "a & b c<t>"


def test_empty_and_missing_text_give_empty_string():
    assert clean_text("") == ""
    assert clean_text(None) == ""
    assert clean_text("<p> </p>") == ""


def test_reference_cleaning_keeps_its_quirks():
    # greedy link match: the text between the first <a> and the last </a> survives
    html = '<a href="u">doc</a> mid <a href="v">http://v.org</a><pre><code>x</code></pre>'
    assert clean_text_reference(html) == "doc mid http://v.org"
    # a multi-line code block is not removed (no DOTALL), entities are kept
    assert clean_text_reference("<pre><code>a\nb</code></pre>&amp;") == "a\nb&amp;"
    # a link whose text is a URL is removed
    assert clean_text_reference('X <a href="h">https://h.org</a>') == "x "

"""The page shell both reports share: the title escaped, the stylesheet inline, nothing loaded from elsewhere."""

from multifield.pages import STYLESHEET, page_html


def test_a_page_is_self_contained_with_its_title_escaped_and_its_own_rules_after_the_shared_ones():
    page = page_html("<b>R&D</b>", "<p>body</p>", css=".mine{color:red}")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</main></body></html>")
    assert page.count("&lt;b&gt;R&amp;D&lt;/b&gt;") == 2 and "<b>" not in page  # the title and the heading
    assert f"<style>{STYLESHEET}.mine{{color:red}}</style>" in page
    assert "<p>body</p></main>" in page
    assert "<link" not in page and "<script" not in page and "http" not in page

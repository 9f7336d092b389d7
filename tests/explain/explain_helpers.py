"""Reading the explain report's HTML back in tests: the shaded words and what each one carries."""

import html
import json
import re

WORD = re.compile(r'<span class="w" [^>]*?title="([^"]*)" data-weight="([0-9.]+)" data-tokens="([^"]*)">(.*?)</span>')


def shown_words(fragment: str) -> list[dict]:
    """The shaded words of an HTML fragment: text, tooltip, weight and the tokens behind it."""
    return [
        {"word": html.unescape(word), "title": html.unescape(title), "weight": float(weight),
         "tokens": json.loads(html.unescape(tokens))}
        for title, weight, tokens, word in WORD.findall(fragment)
    ]

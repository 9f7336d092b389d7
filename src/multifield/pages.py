"""The look of multifield's HTML reports: one stylesheet and one page shell, shared by the explain report and
the training report, so that both are self-contained pages that read alike."""

from __future__ import annotations

import html

STYLESHEET = """
:root{--ink:#1f2328;--muted:#656d76;--line:#d8dee4;--soft:#f6f8fa;--accent:#2f55d4;--bar:#9db2f5;
--right:#1a7f37;--wrong:#cf222e;--missed:#9a6700}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;color:var(--ink);
background:#fff;line-height:1.5}
main{max-width:980px;margin:0 auto;padding:2rem 1.25rem 3rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:0 0 .3rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
.lead{color:var(--muted);margin:0 0 1.2rem}
.record{border:1px solid var(--line);border-radius:10px;padding:1rem 1.25rem;margin:1.1rem 0;background:#fff}
.record h2 .id{font-weight:400;color:var(--muted);font-size:.8rem;margin-left:.5rem}
.truth{font-size:.88rem;color:var(--muted);margin-bottom:.3rem}
.label-grid{display:grid;grid-template-columns:minmax(7rem,11rem) 1fr 3rem 4.2rem;gap:.2rem .7rem;align-items:center;
font-size:.88rem;margin:.5rem 0 .8rem}
.label-grid .label.predicted{font-weight:600}
.bar{height:.62rem;background:#eef1f5;border-radius:99px;overflow:hidden}
.bar span{display:block;height:100%;background:var(--bar);border-radius:99px}
.bar.predicted span{background:var(--accent)}
.score{text-align:right;font-variant-numeric:tabular-nums;color:var(--muted)}
.mark{font-size:.8rem}
.right{color:var(--right)}.wrong{color:var(--wrong)}.missed{color:var(--missed)}
.field{margin:.75rem 0 0}
.field-name{font-size:.72rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);font-weight:600}
.words{font-size:.98rem}
.words.empty{color:var(--muted);font-style:italic}
.w{border-radius:3px;padding:1px 0;cursor:help}
.unread{color:#9aa1a9}
.head{display:block;margin:.15rem 0}.head-name{font-size:.75rem;color:var(--muted);margin-right:.5rem}
.legend{font-size:.85rem;color:var(--muted)}
.scale{display:inline-block;width:7rem;height:.7rem;vertical-align:middle;border-radius:3px;margin:0 .3rem;
background:linear-gradient(90deg,rgba(255,170,0,0),rgba(255,170,0,.85))}
"""


def page_html(title: str, body: str, css: str = "") -> str:
    """A whole HTML document: ``title`` as its title and heading, then ``body`` (HTML, already escaped), styled
    by ``STYLESHEET`` and ``css`` (rules of this page only) inline, with nothing loaded from elsewhere."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{STYLESHEET}{css}</style></head><body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )


__all__ = ["STYLESHEET", "page_html"]

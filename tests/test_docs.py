"""The built documentation: every public function has a reference page, no
internal link is broken, and the key pages hold their key sections.

The checks live in ``docs/check_site.py`` (``.ci/run`` runs it right after
building the site); here they run under pytest against ``docs/_build/html``,
or the folder named by ``FASTKL_DOCS_HTML``, and are skipped when no site has
been built (``sphinx-build -W -b html docs docs/_build/html`` builds one).
The checker itself is tested on a small synthetic site, built or not.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKER = os.path.join(ROOT, "docs", "check_site.py")
SITE = os.environ.get("FASTKL_DOCS_HTML") or os.path.join(ROOT, "docs", "_build", "html")

if not os.path.exists(CHECKER):  # an installed wheel's tests, without the docs folder
    pytest.skip("docs/check_site.py is not here (tests run outside a source checkout)", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("fastkl_docs_check_site", CHECKER)
check_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_site)

built = pytest.mark.skipif(not os.path.exists(os.path.join(SITE, "index.html")),
                           reason=f"no built documentation at {SITE}")


@built
def test_every_public_name_has_a_reference_page():
    passed, failures = check_site.check_api(SITE)
    assert not failures, "\n".join(failures)
    assert passed >= 20


@built
def test_no_broken_internal_link():
    passed, failures = check_site.check_links(SITE)
    assert not failures, "\n".join(failures[:50])
    assert passed > 100


@built
def test_key_pages_hold_their_sections():
    passed, failures = check_site.check_pages(SITE)
    assert not failures, "\n".join(failures)
    assert passed == len(check_site.KEY_PAGES)


def _page(folder, name, body):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")


def test_link_checker_finds_missing_pages_and_anchors(tmp_path):
    _page(tmp_path, "index.html",
          '<h1 id="top">x</h1><a href="a.html#here">ok</a> <a href="#top">ok</a>'
          '<a href="https://example.org/">external</a> <a href="gone.html">broken</a>'
          '<a href="a.html#nowhere">broken anchor</a> <img src="_static/missing.png">')
    _page(tmp_path, "a.html", '<p id="here">a</p><a href="../outside.html">leaves</a>')
    passed, failures = check_site.check_links(str(tmp_path))
    assert passed == 2
    assert len(failures) == 4
    text = "\n".join(failures)
    assert "missing gone.html" in text and "no #nowhere in a.html" in text
    assert "missing _static/missing.png" in text and "leaves the site" in text


def test_api_check_reports_an_undocumented_name(tmp_path):
    _page(tmp_path, "index.html", "")
    passed, failures = check_site.check_api(str(tmp_path))
    assert passed == 0
    assert any("fastkl.kl_divergence" in f for f in failures)

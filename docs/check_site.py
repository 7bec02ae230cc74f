"""Check a built HTML site of the fastkl documentation.

Usage::

    python docs/check_site.py docs/_build/html

Three checks, each counted as passed or failed:

* **API coverage** -- every public name of ``fastkl.__all__`` (and every
  function of ``fastkl.reference.__all__``) has its page under
  ``generated/``, and the page documents that object (its anchor is there).
  ``__version__`` is a string, mentioned on the API page, not a page of its
  own.
* **Internal links** -- every relative ``href``/``src`` of every HTML page
  points at a file of the site, and every ``#fragment`` at an ``id`` (or
  ``name``) of the target page.  External links are not followed (the build
  machine may have no network).
* **Key pages** -- the pages of the site's table of contents exist and hold
  their key sections.

Prints one line per failure and ends with ``docs: N passed, M failed``; the
exit status is 1 when anything failed.  ``tests/test_docs.py`` runs the same
checks under pytest when a built site is present.
"""

from __future__ import annotations

import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

#: Pages that must exist, with text each must contain (its key sections).
KEY_PAGES = {
    "index.html": ["Install", "pip install fastkl", "Quick start"],
    "conventions.html": ["Argument order", "Zeros, infinities and NaN", "Log-probabilities as input",
                         "Normalisation", "Shapes and broadcasting", "Reductions", "dtypes", "bfloat16",
                         "Validation", "RuntimeWarning", "Threads", "SIMD levels"],
    "api.html": ["Measures on probability rows", "Pairwise matrices", "Logits and losses",
                 "Reference implementations"],
    "errors.html": ["contains negative, NaN or infinite values", "does not hold probabilities that sum to 1",
                    "FASTKL_SIMD", "is out of range for", "fastkl: error:"],
    "guides/coming-from.html": ["Side by side", "batchmean", "rel_entr", "jensenshannon",
                                "softmax_cross_entropy_with_integer_labels", "Argument order"],
    "guides/losses.html": ["Softmax cross-entropy", "ignore_index", "Label smoothing", "grad_out",
                           "Knowledge distillation", "T^2"],
    "guides/scaling.html": ["Arrays in memory", "--memory", "Dask arrays"],
    "guides/performance.html": ["The memory floor", "SIMD levels and runtime dispatch", "One row driver",
                                "Accuracy", "throughput-kl-float64.png"],
    "article.html": ["Two coins", "Cross-entropy is entropy plus KL", ".png"],
}


class _Page(HTMLParser):
    """The ids and the relative link targets of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_data(self, data):
        self.text.append(data)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link", "area")) or (name == "src" and tag in ("img", "script")):
                self.links.append(value)


def _parse(path: str) -> _Page:
    page = _Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def _html_files(site: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(site):
        # _static holds the theme's own files (template fragments, not pages)
        dirs[:] = [d for d in dirs if not d.startswith((".", "_sources", "_static"))]
        found += [os.path.join(folder, f) for f in files if f.endswith(".html")]
    return sorted(found)


def check_api(site: str) -> tuple[int, list[str]]:
    """Every public name has a generated page documenting it."""
    import fastkl
    from fastkl import reference

    expected = [f"fastkl.{name}" for name in fastkl.__all__ if name != "__version__"]
    expected += [f"fastkl.reference.{name}" for name in reference.__all__]
    expected.append("fastkl.cli.main")
    failures = []
    for full in expected:
        path = os.path.join(site, "generated", f"{full}.html")
        if not os.path.exists(path):
            failures.append(f"api: no page for {full} (generated/{full}.html)")
            continue
        anchor = "module-" + full if full == "fastkl.reference" else full
        if anchor not in _parse(path).ids:
            failures.append(f"api: generated/{full}.html does not document {full} (no #{anchor})")
    return len(expected) - len(failures), failures


def check_links(site: str) -> tuple[int, list[str]]:
    """Every relative link of every page resolves, fragments included."""
    pages: dict[str, _Page] = {}

    def page(path: str) -> _Page:
        if path not in pages:
            pages[path] = _parse(path)
        return pages[path]

    checked, failures = 0, []
    for path in _html_files(site):
        rel_page = os.path.relpath(path, site)
        for link in page(path).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue  # external: not followed
            checked += 1
            target = path if not parts.path else os.path.normpath(
                os.path.join(os.path.dirname(path), unquote(parts.path)))
            if os.path.isdir(target):
                target = os.path.join(target, "index.html")
            if not os.path.abspath(target).startswith(os.path.abspath(site) + os.sep):
                failures.append(f"link: {rel_page}: {link} leaves the site")
                continue
            if not os.path.exists(target):
                failures.append(f"link: {rel_page}: {link} -> missing {os.path.relpath(target, site)}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.endswith(".html") and fragment not in page(target).ids:
                failures.append(f"link: {rel_page}: {link} -> no #{fragment} in {os.path.relpath(target, site)}")
    return checked - len(failures), failures


def check_pages(site: str) -> tuple[int, list[str]]:
    """The key pages exist and hold their key sections."""
    passed, failures = 0, []
    for rel, needles in KEY_PAGES.items():
        path = os.path.join(site, rel)
        if not os.path.exists(path):
            failures.append(f"page: {rel} is missing")
            continue
        parsed = _parse(path)
        # the words a reader sees (highlighting splits code into spans), and the
        # link and image targets
        text = " ".join("".join(parsed.text).split()) + " " + " ".join(parsed.links)
        missing = [n for n in needles if " ".join(n.split()) not in text]
        if missing:
            failures.append(f"page: {rel} lacks {', '.join(repr(m) for m in missing)}")
        else:
            passed += 1
    return passed, failures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    site = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build", "html")
    if not os.path.exists(os.path.join(site, "index.html")):
        print(f"docs: no built site at {site} (run sphinx-build first)", file=sys.stderr)
        return 1
    passed, failed = 0, []
    for check in (check_api, check_links, check_pages):
        ok, failures = check(site)
        passed += ok
        failed += failures
    for line in failed:
        print(line)
    print(f"docs: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

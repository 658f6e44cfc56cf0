"""HTML of the documents: Jinja2 templates in ``templates/certificates/`` filled with a view.

Autoescape is on for every template (``.html.j2``), so a name or an explanation can never
inject markup, styles or URLs into the page. The stylesheet is a separate file
(``base.css``) linked from the templates, never inlined, so autoescaping cannot mangle it and
nothing in it depends on content. The only markup not escaped is the QR code's SVG, which
:mod:`creditbank.render.qr` builds from the code matrix alone.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

import jinja2
from markupsafe import Markup

from creditbank.render.views import CertificateView, DocumentView, TranscriptView

#: the folder of the document templates and their stylesheet (shipped in the package)
TEMPLATE_DIR: Final = Path(__file__).resolve().parent.parent / "templates" / "certificates"


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the document templates (one per process).

    Returns:
        An environment loading from :data:`TEMPLATE_DIR` with autoescape on, strict undefined
        variables and trimmed blocks.

    Raises:
        Nothing: templates are loaded lazily, by :func:`render_html`.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "j2"), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["isodate"] = lambda d: d.isoformat() if d is not None else ""
    return env


def render_html(view: DocumentView, *, link_stylesheet: bool = True) -> str:
    """Fill the template of ``view``'s kind.

    Args:
        view: a :class:`TranscriptView` or a :class:`CertificateView`.
        link_stylesheet: link ``base.css`` from the page (True: a self-contained page for a
            browser or a bare WeasyPrint); :func:`creditbank.render.pdf.render_pdf` passes
            False and hands WeasyPrint the stylesheet it parsed once per process.

    Returns:
        The HTML document (UTF-8 text); relative URLs resolve against :data:`TEMPLATE_DIR`.

    Raises:
        TypeError: for any other object (a programmer error).
        jinja2.TemplateError: a broken template (a programmer error, never caught).
    """
    if isinstance(view, TranscriptView):
        name = "transcript.html.j2"
    elif isinstance(view, CertificateView):
        name = "certificate.html.j2"
    else:  # pragma: no cover - typed callers cannot get here
        raise TypeError(f"no template for {type(view).__name__}")
    template = environment().get_template(name)
    return template.render(
        view=view,
        qr=Markup(view.verification.qr_svg),  # noqa: S704 - built by qr.py from the matrix only
        link_stylesheet=link_stylesheet,
    )

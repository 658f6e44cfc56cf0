"""HTML → PDF/A-3b with the signed credential attached (WeasyPrint).

:func:`render_pdf` turns a view into the unsigned PDF the bank then signs
(:mod:`creditbank.render.pdfsign`):

* PDF/A-3b (``pdf_variant="pdf/a-3b"``: sRGB output intent, XMP metadata with
  ``pdfaid:part=3``/``conformance=B``, a file identifier);
* the credential JSON attached byte for byte as ``credential.json``
  (``application/json``) and declared an *associated file* of the document: the file
  specification carries ``/AFRelationship /Source`` and is listed once in the catalog's
  ``/AF`` array (WeasyPrint 70 lists it twice; the finisher removes the duplicate);
* Title, Author and Producer set alike in the Info dictionary and the XMP packet, the
  Producer already being the one the signer writes (:data:`PRODUCER`), so signing does not
  make them disagree;
* fonts resolved and every character checked before layout (:mod:`creditbank.render.fonts`):
  a missing font or an uncovered character is an error, never boxes; fonts are embedded as
  subsets (``full_fonts`` stays off);
* a URL fetcher that serves only files inside the template folder and ``data:`` URLs; any
  other URL (``file:///etc/passwd``, ``http://…``) stops the rendering with
  ``render.fetch_refused``;
* the stylesheet (``base.css``) parsed once per process (:func:`document_stylesheet`, with
  one shared ``FontConfiguration``) and handed to every rendering, instead of WeasyPrint
  re-parsing the page's ``<link>`` each time (docs/benchmarks.md §7).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import pydyf
import weasyprint
from pyhanko.pdf_utils.metadata.model import VENDOR as PYHANKO_VENDOR
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from creditbank.errors import InvalidInputError
from creditbank.render.fonts import check_coverage, require_fonts
from creditbank.render.html import TEMPLATE_DIR, render_html
from creditbank.render.views import DocumentView

#: the name of the attached credential
ATTACHMENT_NAME: Final = "credential.json"
#: the Producer written in Info and XMP before signing; equal to what pyHanko writes when it
#: signs (it sets XMP ``pdf:Producer`` to its own name and keeps an Info Producer that already
#: names it), so the two stay equal in the signed file
PRODUCER: Final = PYHANKO_VENDOR
#: the Creator (Info ``/Creator``, XMP ``xmp:CreatorTool``): who laid the document out
CREATOR: Final = f"creditbank (WeasyPrint {weasyprint.__version__})"
#: largest credential accepted as an attachment
MAX_CREDENTIAL_BYTES: Final = 8 * 1024 * 1024

_XMP_PRODUCER = re.compile(rb'pdf:Producer="[^"]*"')


class RefusedFetch(FatalURLFetchingError):  # type: ignore[misc]  # noqa: N818 - WeasyPrint is untyped
    """A URL outside the template folder was requested; stops the rendering."""


class TemplateFetcher(URLFetcher):  # type: ignore[misc]  # WeasyPrint ships no type hints
    """A WeasyPrint URL fetcher that serves only the template folder and ``data:`` URLs.

    Every refused URL is remembered in :attr:`refused` and stops the rendering, so content can
    never make the renderer read a local file or reach the network.
    """

    def __init__(self, root: Path = TEMPLATE_DIR) -> None:
        super().__init__(allowed_protocols=("file", "data"), allow_redirects=False)
        self.root = root.resolve()
        self.refused: list[str] = []

    def _refuse(self, url: str, why: str) -> RefusedFetch:
        self.refused.append(url)
        return RefusedFetch(f"refused to fetch {url[:200]!r}: {why}")

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        """Serve ``url`` when it is a ``data:`` URL or a file inside the template folder.

        Args:
            url: the absolute URL WeasyPrint asks for.
            headers: ignored (no HTTP is ever made).

        Returns:
            The response WeasyPrint reads.

        Raises:
            RefusedFetch: for any other URL (stops the rendering).
        """
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            return super().fetch(url, headers)
        if scheme != "file":
            raise self._refuse(url, "only template files may be loaded")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise self._refuse(url, "remote file URL")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise self._refuse(url, "outside the template folder")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), path.read_bytes(), headers={"Content-Type": media_type}, status=200
        )


def _finisher(document: Any, pdf: pydyf.PDF) -> None:
    """Deduplicate ``/AF`` and set the Producer alike in Info and XMP."""
    if "AF" in pdf.catalog:
        seen: list[Any] = []
        for ref in pdf.catalog["AF"]:
            if ref not in seen:
                seen.append(ref)
        pdf.catalog["AF"] = pydyf.Array(seen)
    pdf.info["Producer"] = pydyf.String(PRODUCER)
    pdf.info["Creator"] = pydyf.String(CREATOR)
    ref = pdf.catalog["Metadata"]
    ref_text = ref.decode() if isinstance(ref, bytes) else str(ref)
    metadata = pdf.objects[int(ref_text.split()[0])]
    packet = b"".join(
        part if isinstance(part, bytes) else str(part).encode() for part in metadata.stream
    )
    producer = (
        f'pdf:Producer="{PRODUCER}" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmp:CreatorTool="{CREATOR}"'
    )
    packet, count = _XMP_PRODUCER.subn(producer.encode(), packet, count=1)
    if count != 1:  # pragma: no cover - WeasyPrint always writes pdf:Producer
        raise RuntimeError("WeasyPrint's XMP packet has no pdf:Producer")
    metadata.stream = [packet]


#: the file name of the documents' stylesheet in :data:`TEMPLATE_DIR`
STYLESHEET: Final = "base.css"

_css_lock = threading.Lock()
_css: tuple[weasyprint.CSS, FontConfiguration] | None = None


def document_stylesheet() -> tuple[weasyprint.CSS, FontConfiguration]:
    """The documents' stylesheet, parsed once per process, and the font configuration it uses.

    Parsing ``base.css`` (selectors, ``@page`` rules and margin boxes) is repeated work if
    WeasyPrint follows the page's ``<link>`` on every rendering; the parsed stylesheet holds no
    state of a document, so one object serves every rendering of the process. It is read
    through :class:`TemplateFetcher` like any template resource.

    Returns:
        The parsed stylesheet and the ``FontConfiguration`` shared by every rendering.

    Raises:
        InvalidInputError: ``render.fetch_refused`` when the stylesheet asks for a URL outside
            the template folder.
    """
    global _css  # one parsed stylesheet per process
    with _css_lock:
        if _css is None:
            font_config = FontConfiguration()
            path = TEMPLATE_DIR / STYLESHEET
            try:
                css = weasyprint.CSS(
                    url=path.as_uri(),
                    url_fetcher=TemplateFetcher(),
                    font_config=font_config,
                    media_type="print",
                )
            except RefusedFetch as e:  # pragma: no cover - base.css loads nothing
                raise InvalidInputError(str(e), code="render.fetch_refused") from e
            _css = (css, font_config)
        return _css


def _as_datetime(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def render_pdf(view: DocumentView, credential: bytes) -> bytes:
    """Render ``view`` as a PDF/A-3b with ``credential`` attached as its source.

    Args:
        view: what the document shows (built from ``credential``).
        credential: the exact bytes of the signed credential JSON.

    Returns:
        The unsigned PDF bytes (sign them with :func:`creditbank.render.pdfsign.sign_pdf`).

    Raises:
        ConfigurationError: ``render.font_missing`` when a document font is not installed.
        InvalidInputError: ``render.glyph_missing`` when the view holds a character no document
            font can draw; ``render.fetch_refused`` when the page asked for a URL outside the
            template folder; ``input.too_large`` when the credential is too large;
            ``render.attachment`` when the credential is empty.
    """
    if not credential:
        raise InvalidInputError("the credential to attach is empty", code="render.attachment")
    if len(credential) > MAX_CREDENTIAL_BYTES:
        raise InvalidInputError("the credential is too large to attach", code="input.too_large")
    require_fonts()
    check_coverage(view.text())
    html = render_html(view, link_stylesheet=False)
    stylesheet, font_config = document_stylesheet()
    fetcher = TemplateFetcher()
    stamp = _as_datetime(view.issued_on)
    attachment = weasyprint.Attachment(
        string=credential,
        name=ATTACHMENT_NAME,
        description="可验证凭证 Verifiable credential (W3C VC 2.0, eddsa-jcs-2022)",
        relationship="Source",
        created=stamp,
        modified=stamp,
        url_fetcher=fetcher,
    )
    document = weasyprint.HTML(
        string=html, base_url=TEMPLATE_DIR.as_uri() + "/", url_fetcher=fetcher
    )
    try:
        pdf: bytes = document.write_pdf(
            stylesheets=[stylesheet],
            font_config=font_config,
            pdf_variant="pdf/a-3b",
            attachments=[attachment],
            finisher=_finisher,
            full_fonts=False,
            pdf_identifier=hashlib.sha256(credential).hexdigest()[:32].encode(),
        )
    except RefusedFetch as e:
        raise InvalidInputError(str(e), code="render.fetch_refused") from e
    if fetcher.refused:  # pragma: no cover - a refusal always raises above
        raise InvalidInputError(
            f"refused to fetch {fetcher.refused[0][:200]!r}", code="render.fetch_refused"
        )
    return pdf

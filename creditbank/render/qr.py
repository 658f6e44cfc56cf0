"""The verification QR code: ``{public_base_url}/v/{code}`` as a vector SVG with a quiet zone.

The symbol is built by ``qrcode`` (error correction M, so a crease or a stamp does not defeat
it) and written as one SVG path of horizontal runs, so no seams appear between modules when
it is rasterised, and no Pillow is needed. The SVG carries its own white background over the
4-module quiet zone that ISO/IEC 18004 requires; the template places it at
:data:`QR_SIZE_MM` so the symbol itself is more than 30 mm wide.
"""

from __future__ import annotations

from typing import Final

import qrcode
import qrcode.constants

from creditbank.core.codes import format_code
from creditbank.errors import InvalidInputError

#: modules of white around the symbol (ISO/IEC 18004 minimum)
QUIET_ZONE: Final = 4
#: printed width of the whole SVG (symbol + quiet zone), in millimetres
QR_SIZE_MM: Final = 40
#: longest URL accepted (a QR of this size stays readable)
MAX_URL_LENGTH: Final = 200


def verification_url(public_base_url: str, code: str) -> str:
    """The URL a document's QR code encodes: ``{public_base_url}/v/{XXXX-XXXX-XXXX-XXXX}``.

    Args:
        public_base_url: the bank's public base URL (``https://bank.example``).
        code: the verification code in any accepted form.

    Returns:
        The verification URL.

    Raises:
        InvalidInputError: ``code.malformed`` for a bad code; ``render.url`` when the base URL
            is not http(s).
    """
    base = public_base_url.rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise InvalidInputError("the public base URL must be http(s)", code="render.url")
    return f"{base}/v/{format_code(code)}"


def qr_matrix(data: str) -> list[list[bool]]:
    """The QR symbol for ``data`` with its quiet zone, as rows of dark (True) modules.

    Args:
        data: the text to encode (a URL).

    Returns:
        A square matrix including the :data:`QUIET_ZONE` border.

    Raises:
        InvalidInputError: ``render.url`` when ``data`` is empty or longer than
            :data:`MAX_URL_LENGTH`.
    """
    if not data or len(data) > MAX_URL_LENGTH:
        raise InvalidInputError(
            f"a QR code takes 1 to {MAX_URL_LENGTH} characters", code="render.url"
        )
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE)
    qr.add_data(data)
    qr.make(fit=True)
    return [[bool(cell) for cell in row] for row in qr.get_matrix()]


def qr_svg(data: str, size_mm: float = QR_SIZE_MM) -> str:
    """Encode ``data`` as a standalone SVG document (white background, black modules).

    Args:
        data: the text to encode (a URL).
        size_mm: printed width and height, quiet zone included.

    Returns:
        The SVG markup (ASCII, no external references).

    Raises:
        InvalidInputError: ``render.url`` when ``data`` is empty or too long.
    """
    matrix = qr_matrix(data)
    n = len(matrix)
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    size = f"{size_mm:g}mm"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{size}" height="{size}" '
        f'viewBox="0 0 {n} {n}" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )

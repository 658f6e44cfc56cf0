"""Our versioned JSON-LD context (terms the VC 2.0 and Open Badges 3.0 contexts lack).

The file ships in the package (``creditbank/data/contexts/creditbank-v1.jsonld``) and is served
at ``{public_base_url}/contexts/creditbank/v1``. Changing a published version changes what
signed credentials mean: add a ``v2`` file instead.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

VC_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
OB_V3_CONTEXT: Final = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CONTEXT_FILE: Final = "creditbank-v1.jsonld"
CONTEXT_PATH: Final = "/contexts/creditbank/v1"
CONTEXT_MEDIA_TYPE: Final = "application/ld+json"


def context_url(public_base_url: str) -> str:
    """The URL our context is served at for a bank at ``public_base_url``."""
    return public_base_url.rstrip("/") + CONTEXT_PATH


@functools.cache
def context_bytes() -> bytes:
    """The exact bytes of the packaged context file (served as they are)."""
    return resources.files("creditbank").joinpath("data", "contexts", CONTEXT_FILE).read_bytes()


def credential_contexts(public_base_url: str) -> list[str]:
    """The ``@context`` of every credential: VC 2.0, OB 3.0.3, ours."""
    return [VC_V2_CONTEXT, OB_V3_CONTEXT, context_url(public_base_url)]

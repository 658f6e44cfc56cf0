"""Credential build, sign and verify rates against the bare Ed25519 algorithm (issue 8).

Warm process, pure core code (no database). Documents: a one-record certificate and a
60-record transcript with a conversion, built from the in-memory signed ledger of the
credential tests (``tests/credential_fixtures.py``: real institution-signed entries, an RFC 9162
tree, a signed checkpoint).

For each document, interleaved in rounds so both sides see the same machine load:

* ``sign``: :func:`create_proof` — JCS of the proof configuration and of the document,
  SHA-256 of both, Ed25519 over the 64-byte hash data; vs the bare library signing the same
  canonical document bytes (``Ed25519PrivateKey.sign(jcs(doc))``).
* ``verify``: :func:`verify_credential_proof` of the signed document vs the bare library
  verifying the same bytes (``Ed25519PublicKey.verify(sig, jcs(doc))``).
* naive: the same proof with the ``rfc8785`` reference canonicalizer (pure Python) instead of
  the repository's JCS fast path.
* ratios are medians of the ratios measured within each round (both sides a few ms apart).
* ``build+sign``: the transcript builder (parses each entry, cross-checks the content) plus the
  proof, and ``check_credential``: every offline check (proof, checkpoint, per-record
  signature, inclusion, name commitment, facts).

Target: sign and verify rate >= 0.8x the bare algorithm; build+sign of 60 records a few ms.

    .venv/bin/python -m bench.bench_credentials [--rounds 61] [--per-round 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bench import machine_info, print_table, write_json
from creditbank.core.credentials import proof as proof_mod
from creditbank.core.credentials.build import build_transcript_credential, issue
from creditbank.core.credentials.proof import create_proof, jcs, verify_credential_proof
from creditbank.core.credentials.verify import check_credential

# the credential tests' in-memory ledger (real signed entries), shared rather than copied
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from credential_fixtures import T_ISSUE, T_UNTIL, World, make_world


def _rate(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def _naive_proof(doc: dict[str, Any], key: Ed25519PrivateKey, vm: str) -> str:
    config = proof_mod.proof_config(doc["@context"], verification_method=vm, created="x")
    data = (
        hashlib.sha256(rfc8785.dumps(config)).digest() + hashlib.sha256(rfc8785.dumps(doc)).digest()
    )
    return proof_mod.multibase_b58(key.sign(data))


def measure(
    name: str, w: World, doc: dict[str, Any], rounds: int, per_round: int
) -> dict[str, Any]:
    unsigned = {k: v for k, v in doc.items() if k != "proof"}
    signed = w.sign(unsigned)
    vm = signed["proof"]["verificationMethod"]
    signer = w.bank_signer
    private: Ed25519PrivateKey = signer.private
    public: Ed25519PublicKey = private.public_key()
    canonical = jcs(unsigned)
    bare_sig = private.sign(canonical)
    created = signed["proof"]["created"]
    ops: dict[str, Callable[[], Any]] = {
        "sign": lambda: create_proof(unsigned, signer, verification_method=vm, created=created),
        "bare sign": lambda: private.sign(jcs(unsigned)),
        "bare sign (bytes given)": lambda: private.sign(canonical),
        "verify": lambda: verify_credential_proof(signed, signer.public_bytes),
        "bare verify": lambda: public.verify(bare_sig, jcs(unsigned)),
        "bare verify (bytes given)": lambda: public.verify(bare_sig, canonical),
        "naive sign (rfc8785 reference)": lambda: _naive_proof(unsigned, private, vm),
    }
    rates: dict[str, list[float]] = {k: [] for k in ops}
    n_naive = max(1, per_round // 20)
    for _ in range(rounds):
        for k, fn in ops.items():
            rates[k].append(_rate(fn, n_naive if k.startswith("naive") else per_round))
    med = {k: statistics.median(v) for k, v in rates.items()}

    def ratio(a: str, b: str) -> float:  # median of same-round ratios: robust to load swings
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    return {
        "document": name,
        "bytes": len(canonical),
        "medians_per_s": med,
        "sign_ratio": ratio("sign", "bare sign"),
        "verify_ratio": ratio("verify", "bare verify"),
        "sign_ratio_vs_bytes_given": ratio("sign", "bare sign (bytes given)"),
        "verify_ratio_vs_bytes_given": ratio("verify", "bare verify (bytes given)"),
        "naive_sign_ratio": ratio("naive sign (rfc8785 reference)", "bare sign"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=61)
    ap.add_argument("--per-round", type=int, default=60)
    ap.add_argument("--json")
    args = ap.parse_args()
    small = make_world()
    big = make_world(extra_records=53)
    assert big.transcript is not None
    cert = small.certificate_credential(small.certificate_record)
    transcript = big.transcript_credential()
    assert len(transcript["credentialSubject"]["records"]) == 60
    results = [
        measure("certificate (1 record)", small, cert, args.rounds, args.per_round),
        measure("transcript (60 records)", big, transcript, args.rounds, args.per_round // 4),
    ]
    content = big.transcript

    def build_and_sign() -> dict[str, Any]:
        doc = build_transcript_credential(
            content,
            issuer=big.issuer,
            credential_id="urn:uuid:x",
            valid_from=T_ISSUE,
            valid_until=T_UNTIL,
            status=big.status(),
        )
        return issue(doc, big.bank_signer, issuer=big.issuer, created=T_ISSUE)

    def check_all() -> None:
        checks = check_credential(
            transcript, did_document=big.did_document, keys=big.keys, log_key=big.log_key
        )
        assert all(c.ok for c in checks)

    build_ms = statistics.median(1000 / _rate(build_and_sign, 20) for _ in range(args.rounds))
    check_ms = statistics.median(1000 / _rate(check_all, 5) for _ in range(args.rounds))
    rows = []
    for r in results:
        m = r["medians_per_s"]
        rows.append(
            [
                r["document"],
                r["bytes"],
                m["sign"],
                m["bare sign"],
                r["sign_ratio"],
                m["verify"],
                m["bare verify"],
                r["verify_ratio"],
                r["naive_sign_ratio"],
            ]
        )
    print_table(
        "eddsa-jcs-2022 vs bare Ed25519 over the same canonical bytes (ops/s, medians)",
        [
            "document",
            "JCS bytes",
            "sign",
            "bare sign",
            "ratio",
            "verify",
            "bare verify",
            "ratio",
            "naive sign ratio",
        ],
        rows,
    )
    print_table(
        "60-record transcript (ms, median)",
        ["build + sign", "offline check_credential (all checks)"],
        [[build_ms, check_ms]],
    )
    write_json(
        args.json,
        {
            "machine": machine_info(),
            "results": results,
            "transcript60_build_sign_ms": build_ms,
            "transcript60_check_ms": check_ms,
        },
    )


if __name__ == "__main__":
    main()

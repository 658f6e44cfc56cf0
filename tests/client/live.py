"""A real bank for the client's end-to-end tests: the API served by uvicorn on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from sqlalchemy import text

from creditbank.api.app import create_app
from creditbank.client.poster import generate_key_file
from creditbank.config import Settings
from creditbank.core.entries import parse_entry
from creditbank.core.signing import Ed25519Signer
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank, init_home

INSTITUTION = "INS-T"


@dataclass
class LiveBank:
    bank: Bank
    url: str
    token: str
    key_path: Path
    signer: Ed25519Signer

    def record_count(self) -> int:
        with self.bank.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM records")).scalar_one())

    def distinct_record_ids(self) -> int:
        with self.bank.engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(DISTINCT record_id) FROM records")).scalar_one()
            )

    def record_entries(self, first: int = 2) -> list[str]:
        """``type:record_id`` of every record entry in the log (after the registrations)."""
        size = self.bank.ledger.head().size
        out = []
        for i in range(first, size):
            e = parse_entry(bytes(self.bank.ledger.entry(i).data))
            out.append(f"{e.type}:{e.body['record_id']}")
        return out


@contextmanager
def serve(settings: Settings, key_dir: Path) -> Iterator[LiveBank]:
    """Initialise a home, register ``INS-T`` with a fresh key file and serve the API."""
    bank = init_home(settings)
    try:
        key_path = key_dir / "ins-t.key"
        signer = generate_key_file(key_path, INSTITUTION)
        svc.register_institution(
            bank,
            INSTITUTION,
            kind="college",
            name_zh="测试学院",
            name_en="Test College",
            public_keys=[signer.public_bytes],
        )
        token, _ = svc.issue_institution_token(bank, INSTITUTION)
        app = create_app(settings, bank=bank)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield LiveBank(bank, f"http://127.0.0.1:{port}", token, key_path, signer)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    finally:
        bank.close()

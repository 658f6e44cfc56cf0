"""Accounts: sign-up, Argon2 passwords, sign-in limits, sessions, claiming a learner identity
with a one-time code, the account's own API tokens, operator binding and erasure.

Runs on a validating home (SQLite, and PostgreSQL with CREDITBANK_TEST_PG_URL) with a fixed
clock; codes are read back from an :class:`OutboxSender` (the pluggable sender a deployment
replaces with SMS or mail).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from creditbank.config import Settings
from creditbank.core.identity import gb11643_check_char
from creditbank.core.signing import Ed25519Signer
from creditbank.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from creditbank.service import institutions
from creditbank.service.accounts import (
    CODE_ATTEMPTS,
    IDLE_TTL,
    LOCK_AFTER,
    SESSION_TTL,
    Account,
    Accounts,
    OutboxSender,
    normalize_login,
)
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.storage.tables import accounts_t, learners_t, tokens_t
from creditbank.storage.token_repo import lookup_token

#: cheap Argon2id parameters: the tests check behaviour, not cost
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"  # noqa: S105 - a test password


def rid(seq: int) -> str:
    first17 = f"110101{19900101}{seq:03d}"
    return first17 + gb11643_check_char(first17)


@pytest.fixture
def vbank(settings: Settings, clock: FixedClock) -> Iterator[Bank]:
    """A validating home with institution INS-A registered."""
    b = init_home(settings, clock=clock)
    institutions.register_institution(
        b,
        "INS-A",
        kind="college",
        name_zh="甲学院",
        name_en="College A",
        public_keys=[Ed25519Signer.from_seed(bytes(range(32))).public_bytes],
    )
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def outbox() -> OutboxSender:
    return OutboxSender()


@pytest.fixture
def accounts(vbank: Bank, outbox: OutboxSender) -> Accounts:
    return Accounts(vbank, sender=outbox, hasher=FAST)


def learner(bank: Bank, seq: int = 1, name: str = "王建国") -> str:
    return institutions.resolve(bank, name=name, doc_type="resident_id", number=rid(seq)).learner_id


def test_logins_normalise_and_refuse_junk() -> None:
    assert normalize_login(" Wang@Example.COM ") == "wang@example.com"
    assert normalize_login("+86 138-0013-8000") == "+8613800138000"
    assert normalize_login("(010) 6552.1234") == "01065521234"
    for bad in ("", "wang", "a@b", "12345", "+86 138 0013 8000 1111 22", "x@@example.com"):
        with pytest.raises(InvalidInputError) as e:
            normalize_login(bad)
        assert e.value.code == "account.login"


def test_sign_up_stores_argon2id_never_the_password(accounts: Accounts, vbank: Bank) -> None:
    acc = accounts.sign_up_worker("wang@example.com", PASSWORD, "王建国")
    assert (acc.role, acc.learner_id, acc.label) == ("worker", None, "王建国")
    with vbank.engine.connect() as conn:
        stored = conn.execute(select(accounts_t.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    with pytest.raises(ConflictError) as e:
        accounts.sign_up_worker("WANG@example.com", "another password")
    assert e.value.code == "account.exists"
    with pytest.raises(InvalidInputError) as e2:
        accounts.sign_up_worker("li@example.com", "short")
    assert e2.value.code == "account.password"


def test_sign_in_same_answer_for_unknown_login_and_wrong_password(accounts: Accounts) -> None:
    accounts.sign_up_worker("wang@example.com", PASSWORD)
    answers = []
    for login, pw in (("nobody@example.com", PASSWORD), ("wang@example.com", "wrong password!")):
        with pytest.raises(AuthError) as e:
            accounts.sign_in(login, pw)
        answers.append((e.value.code, e.value.message))
    assert answers[0] == answers[1] == ("auth.bad_credentials", answers[0][1])
    signed = accounts.sign_in("Wang@Example.com", PASSWORD)
    assert signed.token.startswith("cbs_")
    assert len(signed.token) > 40
    assert accounts.session(signed.token) == signed.account


def test_sign_in_locks_after_failures_and_unlocks_later(
    accounts: Accounts, clock: FixedClock
) -> None:
    accounts.sign_up_worker("13800138000", PASSWORD)
    for _ in range(LOCK_AFTER):
        with pytest.raises(AuthError):
            accounts.sign_in("13800138000", "not the password")
    with pytest.raises(RateLimitedError) as e:
        accounts.sign_in("13800138000", PASSWORD)  # even the right password waits
    assert e.value.code == "auth.locked"
    assert 1 <= e.value.retry_after <= 61
    clock.advance(61)
    with pytest.raises(AuthError):  # one more failure doubles the lock
        accounts.sign_in("13800138000", "not the password")
    with pytest.raises(RateLimitedError) as e2:
        accounts.sign_in("13800138000", PASSWORD)
    assert 61 <= e2.value.retry_after <= 121
    clock.advance(121)
    assert accounts.sign_in("13800138000", PASSWORD).account.login == "13800138000"
    with pytest.raises(AuthError):  # the count starts again after a success
        accounts.sign_in("13800138000", "not the password")
    assert accounts.sign_in("13800138000", PASSWORD)


def test_sessions_expire_when_idle_and_at_their_end(accounts: Accounts, clock: FixedClock) -> None:
    accounts.sign_up_worker("wang@example.com", PASSWORD)
    idle = accounts.sign_in("wang@example.com", PASSWORD).token
    clock.advance(IDLE_TTL.total_seconds() + 1)
    assert accounts.session(idle) is None
    assert accounts.session(idle) is None  # and it is gone for good
    busy = accounts.sign_in("wang@example.com", PASSWORD).token
    steps = int(SESSION_TTL / (IDLE_TTL / 2))
    for _ in range(steps - 1):
        clock.advance(IDLE_TTL.total_seconds() / 2)
        assert accounts.session(busy) is not None
    clock.advance(IDLE_TTL.total_seconds() / 2)
    assert accounts.session(busy) is None
    out = accounts.sign_in("wang@example.com", PASSWORD).token
    accounts.sign_out(out)
    assert accounts.session(out) is None
    for junk in (None, "", "cbs_x", "x" * 500, out[:-1] + "A"):
        assert accounts.session(junk) is None


def _claim(accounts: Accounts, outbox: OutboxSender, acc: Account, seq: int, name: str) -> str:
    code_id = accounts.start_claim(acc, name=name, doc_type="resident_id", number=rid(seq))
    code = outbox.last_code(acc.login)
    assert code is not None
    assert len(code) == 6
    assert code.isdigit()
    return accounts.finish_claim(acc, code_id, code)


def test_claim_binds_the_learner_with_number_name_and_code(
    accounts: Accounts, outbox: OutboxSender, vbank: Bank
) -> None:
    lid = learner(vbank, 1, "王建国")
    acc = accounts.sign_up_worker("wang@example.com", PASSWORD)
    assert _claim(accounts, outbox, acc, 1, " 王建国 ") == lid
    assert accounts.get(acc.account_id).learner_id == lid
    again = accounts.get(acc.account_id)
    with pytest.raises(ConflictError) as e:
        accounts.start_claim(again, name="王建国", doc_type="resident_id", number=rid(1))
    assert e.value.code == "account.already_claimed"


def test_claim_does_not_reveal_whether_details_match(
    accounts: Accounts, outbox: OutboxSender, vbank: Bank
) -> None:
    learner(vbank, 1, "王建国")
    acc = accounts.sign_up_worker("li@example.com", PASSWORD)
    for seq, name in ((1, "李秀英"), (2, "王建国")):  # wrong name; a number nobody posted for
        code_id = accounts.start_claim(acc, name=name, doc_type="resident_id", number=rid(seq))
        assert code_id.startswith("OTC-")  # same answer as a match: a code is sent
        code = outbox.last_code(acc.login)
        assert code is not None
        with pytest.raises(AuthError) as e:
            accounts.finish_claim(acc, code_id, code)
        assert e.value.code == "claim.failed"
    assert accounts.get(acc.account_id).learner_id is None
    with pytest.raises(InvalidInputError) as bad:  # a malformed number is said at once
        accounts.start_claim(acc, name="王建国", doc_type="resident_id", number="110101199001010")
    assert bad.value.code.startswith("identity.")


def test_claim_codes_are_single_use_limited_and_personal(
    accounts: Accounts, outbox: OutboxSender, vbank: Bank, clock: FixedClock
) -> None:
    lid = learner(vbank, 3, "张伟")
    acc = accounts.sign_up_worker("zhang@example.com", PASSWORD)
    other = accounts.sign_up_worker("thief@example.com", PASSWORD)
    code_id = accounts.start_claim(acc, name="张伟", doc_type="resident_id", number=rid(3))
    code = outbox.last_code(acc.login)
    assert code is not None
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(AuthError):
        accounts.finish_claim(other, code_id, code)  # another account's code
    for _ in range(CODE_ATTEMPTS):
        with pytest.raises(AuthError):
            accounts.finish_claim(acc, code_id, wrong)
    with pytest.raises(AuthError):  # exhausted: even the right code fails now
        accounts.finish_claim(acc, code_id, code)
    code_id = accounts.start_claim(acc, name="张伟", doc_type="resident_id", number=rid(3))
    code = outbox.last_code(acc.login)
    assert code is not None
    clock.advance(601)
    with pytest.raises(AuthError):  # expired
        accounts.finish_claim(acc, code_id, code)
    assert _claim(accounts, outbox, acc, 3, "张伟") == lid
    # the learner is taken: a second account's claim with the right details fails
    with pytest.raises(AuthError):
        _claim(accounts, outbox, other, 3, "张伟")
    admin = accounts.add_admin("admin@example.com", PASSWORD)
    with pytest.raises(ForbiddenError):
        accounts.start_claim(admin, name="张伟", doc_type="resident_id", number=rid(3))


def test_live_claim_codes_are_limited(accounts: Accounts, vbank: Bank) -> None:
    acc = accounts.sign_up_worker("wang@example.com", PASSWORD)
    for _ in range(3):
        accounts.start_claim(acc, name="王建国", doc_type="resident_id", number=rid(9))
    with pytest.raises(RateLimitedError) as e:
        accounts.start_claim(acc, name="王建国", doc_type="resident_id", number=rid(9))
    assert e.value.code == "claim.too_many"


def test_tokens_are_the_accounts_own(accounts: Accounts, outbox: OutboxSender, vbank: Bank) -> None:
    lid = learner(vbank, 1)
    worker = accounts.sign_up_worker("wang@example.com", PASSWORD)
    with pytest.raises(ConflictError) as e:
        accounts.create_token(worker)
    assert e.value.code == "account.not_claimed"
    _claim(accounts, outbox, worker, 1, "王建国")
    worker = accounts.get(worker.account_id)
    made = accounts.create_token(worker, "my phone")
    row = lookup_token(vbank.engine, made.token)
    assert row is not None
    assert (row.role, row.subject) == ("learner", lid)
    op = accounts.add_operator("registrar@ins-a.edu.cn", PASSWORD, "INS-A")
    op_token = accounts.create_token(op)
    op_row = lookup_token(vbank.engine, op_token.token)
    assert op_row is not None
    assert (op_row.role, op_row.subject) == ("institution", "INS-A")
    admin = accounts.add_admin("admin@bank.example", PASSWORD)
    assert accounts.create_token(admin).role == "auditor"
    assert [t["token_id"] for t in accounts.list_tokens(worker)] == [made.token_id]
    with pytest.raises(NotFoundError):  # another account's token: unknown to this one
        accounts.revoke_token(worker, op_token.token_id)
    assert lookup_token(vbank.engine, op_token.token) is not None
    accounts.revoke_token(worker, made.token_id)
    accounts.revoke_token(worker, made.token_id)  # idempotent
    assert lookup_token(vbank.engine, made.token) is None
    assert accounts.list_tokens(worker)[0]["revoked_at"] is not None


def test_operators_are_bound_to_a_registered_institution(accounts: Accounts) -> None:
    with pytest.raises(NotFoundError) as e:
        accounts.add_operator("x@example.com", PASSWORD, "INS-NOPE")
    assert e.value.code == "registry.unknown"
    op = accounts.add_operator("x@example.com", PASSWORD, "INS-A", "教务处")
    assert (op.role, op.institution_id, op.learner_id) == ("operator", "INS-A", None)


def test_erasure_removes_personal_data_and_the_account(
    accounts: Accounts, outbox: OutboxSender, vbank: Bank
) -> None:
    lid = learner(vbank, 1)
    acc = accounts.sign_up_worker("wang@example.com", PASSWORD)
    _claim(accounts, outbox, acc, 1, "王建国")
    acc = accounts.get(acc.account_id)
    token = accounts.create_token(acc).token
    session = accounts.sign_in("wang@example.com", PASSWORD).token
    with pytest.raises(AuthError):
        accounts.erase_worker(acc, "wrong password!")
    size = vbank.ledger.head().size
    got = accounts.erase_worker(acc, PASSWORD)
    assert got["tokens_revoked"] >= 1
    assert lookup_token(vbank.engine, token) is None
    assert accounts.session(session) is None
    with pytest.raises(NotFoundError):
        accounts.get(acc.account_id)
    with vbank.engine.connect() as conn:
        person = conn.execute(select(learners_t).where(learners_t.c.learner_id == lid)).one()
        live = conn.execute(select(tokens_t).where(tokens_t.c.revoked_at.is_(None))).all()
    assert person.name is None
    assert person.lookup_key is None
    assert person.erased_at is not None
    assert live == []
    assert vbank.ledger.head().size == size  # the log is untouched


def test_worker_for_a_known_learner(accounts: Accounts, vbank: Bank) -> None:
    lid = learner(vbank, 5)
    acc = accounts.add_worker_for("w@example.com", PASSWORD, lid)
    assert acc.learner_id == lid
    with pytest.raises(ConflictError) as e:
        accounts.add_worker_for("w2@example.com", PASSWORD, lid)
    assert e.value.code == "account.learner_taken"
    with pytest.raises(NotFoundError):
        accounts.add_worker_for("w3@example.com", PASSWORD, "LRN-0000000000000000")


def test_development_sender_writes_the_code_to_the_server_log(
    vbank: Bank, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = Accounts(vbank, hasher=FAST)  # the default sender: development mode
    acc = accounts.sign_up_worker("dev@example.com", PASSWORD)
    with caplog.at_level("WARNING", logger="creditbank.service.accounts"):
        accounts.start_claim(acc, name="王建国", doc_type="resident_id", number=rid(7))
    lines = [r.getMessage() for r in caplog.records if "one-time claim code" in r.getMessage()]
    assert len(lines) == 1
    assert "dev@example.com" in lines[0]
    code = lines[0].split(": ")[1].split(" ")[0]
    assert len(code) == 6
    assert code.isdigit()

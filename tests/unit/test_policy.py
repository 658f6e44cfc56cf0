"""The authorization policy (:mod:`creditbank.core.policy`): the whole principal × action table,
written out here once more by hand, and the decisions over resources.

:data:`EXPECTED` names the grant of every role for every action — nothing is left to a
default — and :func:`test_the_table_is_exactly_the_expected_one` fails if the policy's table
differs in any pair, gains a role or an action, or loses one. The route-level matrix
(tests/api/test_authz_matrix.py) checks the routes against the same decisions end to end.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import pytest

from creditbank.core import policy
from creditbank.core.entries import ENTRY_TYPES, PRIVATE_TYPES
from creditbank.core.policy import (
    ANONYMOUS,
    Action,
    Grant,
    InstitutionRecords,
    LearnerData,
    LogEntry,
    PostedEntry,
    Principal,
)
from creditbank.core.registry import InstitutionState, Registry
from creditbank.errors import AuthError, ForbiddenError

D, A, S, P, W = Grant.DENY, Grant.ALLOW, Grant.SELF, Grant.PUBLIC, Grant.OWN

ROLES: Final = ("anonymous", "auditor", "institution", "learner", "worker", "operator", "admin")

#: action -> the grant of each role, in the order of ROLES:
#:          anonymous auditor institution learner worker operator admin
EXPECTED: Final[dict[Action, tuple[Grant, ...]]] = {
    Action.ENTRY_READ: (P, A, W, W, P, P, P),
    Action.RECORDS_POST: (D, D, S, D, D, D, D),
    Action.RECORD_ENTRY_POST: (D, D, W, D, D, D, D),
    Action.LEARNERS_RESOLVE: (D, D, S, D, D, D, D),
    Action.INSTITUTION_RECORDS_LIST: (D, D, W, D, D, W, D),
    Action.LEARNER_RECORDS_READ: (D, A, D, W, D, D, D),
    Action.CONVERSION_APPLY: (D, D, D, S, D, D, D),
    Action.CONVERSION_READ: (D, D, D, S, D, D, D),
    Action.CONVERSION_PREVIEW: (D, D, D, S, D, D, D),
    Action.DOCUMENT_ISSUE: (D, D, D, S, D, D, D),
    Action.DOCUMENT_LIST: (D, D, D, S, D, D, D),
    Action.DOCUMENT_REVOKE: (D, D, D, S, D, D, D),
    Action.DOCUMENT_READ: (D, A, D, W, D, D, D),
    Action.SHARE_CODES_MANAGE: (D, D, D, S, D, D, D),
    Action.ACCOUNT_MANAGE: (D, D, D, D, A, A, A),
    Action.PORTAL_WORKER: (D, D, D, D, A, D, D),
    Action.PORTAL_CONSOLE: (D, D, D, D, D, A, D),
    Action.PORTAL_ADMIN: (D, D, D, D, D, D, A),
}

#: a resource of each kind that every OWN grant's holder owns (subject "S") and one it does
#: not, per role; public entries are allowed to every PUBLIC/OWN grant
OWNED: Final = {
    "institution": {
        Action.ENTRY_READ: LogEntry("record.posted", "LRN-1", frozenset({"S"})),
        Action.RECORD_ENTRY_POST: PostedEntry("S"),
        Action.INSTITUTION_RECORDS_LIST: InstitutionRecords("S"),
    },
    "learner": {
        Action.ENTRY_READ: LogEntry("record.posted", "S", frozenset({"INS-A"})),
        Action.LEARNER_RECORDS_READ: LearnerData("S"),
        Action.DOCUMENT_READ: LearnerData("S"),
    },
    "operator": {Action.INSTITUTION_RECORDS_LIST: InstitutionRecords("INS-A", custodian="S")},
}
NOT_OWNED: Final = {
    "institution": {
        Action.ENTRY_READ: LogEntry("record.posted", "S", frozenset({"INS-A"})),
        Action.RECORD_ENTRY_POST: PostedEntry("INS-A"),
        Action.INSTITUTION_RECORDS_LIST: InstitutionRecords("INS-A", custodian="INS-B"),
    },
    "learner": {
        Action.ENTRY_READ: LogEntry("record.posted", "LRN-2", frozenset({"S"})),
        Action.LEARNER_RECORDS_READ: LearnerData("LRN-2"),
        Action.DOCUMENT_READ: LearnerData("LRN-2"),
    },
    "operator": {Action.INSTITUTION_RECORDS_LIST: InstitutionRecords("INS-A")},
}


def test_the_table_is_exactly_the_expected_one() -> None:
    assert policy.ROLES == ROLES
    assert set(EXPECTED) == set(Action)
    assert set(policy.GRANTS) == set(ROLES)
    for role_no, role in enumerate(ROLES):
        assert set(policy.GRANTS[role]) == set(Action), role
        for action in Action:
            assert policy.GRANTS[role][action] is EXPECTED[action][role_no], (role, action)
            assert policy.grant(role, action) is EXPECTED[action][role_no], (role, action)
    assert set(policy.NEEDS) == set(Action)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(Action), ids=str)
def test_every_pair_decides_as_its_grant(role: str, action: Action) -> None:
    """Each pair, with a subject and without, with no resource, a public one, one the
    principal owns and one it does not: allowed exactly as the grant says."""
    g = EXPECTED[action][ROLES.index(role)]
    who, nobody = Principal(role, "S"), Principal(role)
    public = LogEntry("institution.registered")
    owned = OWNED.get(role, {}).get(action)
    foreign = NOT_OWNED.get(role, {}).get(action)
    for resource in (None, public, owned, foreign):
        got, got_nobody = (
            policy.allows(who, action, resource),
            policy.allows(nobody, action, resource),
        )
        if g is A:
            assert got
            assert got_nobody
        elif g is D:
            assert not got
            assert not got_nobody
        elif g is S:
            assert got
            assert not got_nobody
        elif g is P:
            assert got is (resource is public)
            assert got_nobody is (resource is public)
        else:  # OWN: public or owned, and only with a subject for the owned
            assert owned is not None, (role, action)
            assert foreign is not None, (role, action)
            assert got is (resource is public or resource is owned), resource
            assert got_nobody is (resource is public), resource


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_unknown_roles_resources_and_actions_fail_closed(action: Action) -> None:
    for role in ("mystery", "", "Auditor", "root", "bank"):
        for subject in (None, "S"):
            assert policy.grant(role, action) is D
            assert not policy.allows(Principal(role, subject), action)
            assert not policy.allows(
                Principal(role, subject), action, LogEntry("institution.registered")
            )
    for role in ROLES:
        assert policy.grant(role, str(action)) is D  # a string is not an Action
        assert policy.grant(role, "records.delete") is D
        assert not policy.allows(Principal(role, "S"), "records.delete")
        if EXPECTED[action][ROLES.index(role)] in (P, W):
            for odd in (object(), "S", {"public": True}, ("S",)):
                assert not policy.allows(Principal(role, "S"), action, odd)


def test_entry_reads_over_every_entry_type() -> None:
    learner, inst, auditor = (
        Principal("learner", "LRN-1"),
        Principal("institution", "INS-A"),
        (Principal("auditor")),
    )
    for type_ in ENTRY_TYPES:
        private = type_ in PRIVATE_TYPES
        entry = LogEntry(type_, "LRN-1", frozenset({"INS-A"}))
        assert policy.allows(auditor, Action.ENTRY_READ, entry)
        assert policy.allows(learner, Action.ENTRY_READ, entry)
        assert policy.allows(inst, Action.ENTRY_READ, entry)
        other = LogEntry(type_, "LRN-2", frozenset({"INS-B"}))
        for who in (ANONYMOUS, learner, inst, Principal("worker", "LRN-2")):
            assert policy.allows(who, Action.ENTRY_READ, other) is not private, (who, type_)
        # the issuer alone grants nothing: without entitled institutions nobody reads it
        assert policy.allows(inst, Action.ENTRY_READ, LogEntry(type_, "LRN-1")) is not private
        assert inst.may_read_entry(type_, "INS-A", "LRN-1") is not private


def test_posting_authority_of_custodians() -> None:
    """An entry is posted by its signer, for itself or as the custodian of its ward."""
    caller = Principal("institution", "INS-C")
    cases = [
        (PostedEntry("INS-C"), True),
        (PostedEntry("INS-C", "INS-C", ward_known=True), True),
        (PostedEntry("INS-C", "INS-W", ward_known=True, ward_custodian="INS-C"), True),
        (PostedEntry("INS-C", "INS-W", ward_known=True, ward_custodian="INS-D"), False),
        (PostedEntry("INS-C", "INS-W", ward_known=True, ward_custodian=None), False),
        # an unknown ward is the ledger's refusal (record.unknown_institution), not this one
        (PostedEntry("INS-C", "INS-NONE", ward_known=False), True),
        (PostedEntry("INS-D"), False),
        (PostedEntry("INS-D", "INS-W", ward_known=True, ward_custodian="INS-C"), False),
        (PostedEntry(None), False),
    ]
    for entry, allowed in cases:
        assert policy.allows(caller, Action.RECORD_ENTRY_POST, entry) is allowed, entry
        assert not policy.allows(Principal("auditor"), Action.RECORD_ENTRY_POST, entry)
        assert not policy.allows(Principal("learner", "INS-C"), Action.RECORD_ENTRY_POST, entry)


def test_listing_records_of_a_closed_institution() -> None:
    b, c = Principal("institution", "INS-B"), Principal("institution", "INS-C")
    assert policy.allows(b, Action.INSTITUTION_RECORDS_LIST, InstitutionRecords("INS-B"))
    assert not policy.allows(c, Action.INSTITUTION_RECORDS_LIST, InstitutionRecords("INS-B"))
    closed = InstitutionRecords("INS-B", custodian="INS-C")
    assert policy.allows(b, Action.INSTITUTION_RECORDS_LIST, closed)
    assert policy.allows(c, Action.INSTITUTION_RECORDS_LIST, closed)
    assert not policy.allows(Principal("learner", "INS-C"), Action.INSTITUTION_RECORDS_LIST, closed)


def test_refusals_raise_401_for_anonymous_and_403_for_others() -> None:
    with pytest.raises(AuthError) as e:
        policy.authorize(ANONYMOUS, Action.RECORDS_POST)
    assert e.value.code == "auth.required"
    assert not isinstance(e.value, ForbiddenError)
    assert "an institution token" in e.value.message
    with pytest.raises(ForbiddenError) as f:
        policy.authorize(Principal("learner", "LRN-1"), Action.RECORDS_POST)
    assert f.value.code == "auth.forbidden"
    with pytest.raises(ForbiddenError) as g:
        policy.authorize(
            Principal("institution", "INS-C"),
            Action.INSTITUTION_RECORDS_LIST,
            InstitutionRecords("INS-B"),
            code="auth.wrong_institution",
            message="no",
        )
    assert (g.value.code, g.value.message) == ("auth.wrong_institution", "no")
    policy.authorize(Principal("institution", "INS-B"), Action.RECORDS_POST)  # no raise


def test_acting_subject_and_reader_scope() -> None:
    assert policy.acting_subject(Principal("learner", "L"), Action.CONVERSION_APPLY) == "L"
    assert policy.acting_subject(Principal("institution", "I"), Action.RECORDS_POST) == "I"
    # OWN: the subject acts; the service asks about the resource
    assert (
        policy.acting_subject(Principal("institution", "I"), Action.INSTITUTION_RECORDS_LIST) == "I"
    )
    with pytest.raises(AuthError) as e:
        policy.acting_subject(ANONYMOUS, Action.CONVERSION_APPLY)
    assert e.value.code == "auth.required"
    for who in (Principal("learner"), Principal("auditor"), Principal("institution", "L")):
        with pytest.raises(ForbiddenError):
            policy.acting_subject(who, Action.CONVERSION_APPLY)
    assert policy.reader_scope(Principal("auditor"), Action.DOCUMENT_READ) is None
    assert policy.reader_scope(Principal("learner", "L"), Action.DOCUMENT_READ) == "L"
    for who in (Principal("institution", "I"), Principal("learner"), Principal("admin")):
        with pytest.raises(ForbiddenError):
            policy.reader_scope(who, Action.DOCUMENT_READ)
    with pytest.raises(AuthError):
        policy.reader_scope(ANONYMOUS, Action.DOCUMENT_READ)


def test_portal_accounts_map_to_principals() -> None:
    assert policy.principal_of_account("worker", None, "L") == Principal("worker", "L")
    assert policy.principal_of_account("operator", "I", None) == Principal("operator", "I")
    assert policy.principal_of_account("admin", "I", "L") == Principal("admin")
    odd = policy.principal_of_account("superuser", "I", "L")
    assert not any(policy.allows(odd, a, LogEntry("institution.registered")) for a in Action)


def test_entitled_institutions_follow_the_registry() -> None:
    registry = Registry("BANK")
    registry.institutions["INS-W"] = InstitutionState(
        "INS-W", "university", "W", "W", closed_on=date(2025, 1, 1), custodian="INS-K"
    )
    assert policy.entitled_institutions(registry, "institution.registered", "X", {}) == (
        frozenset()
    )
    assert policy.entitled_institutions(registry, "record.posted", "INS-A", {}) == {"INS-A"}
    got = policy.entitled_institutions(
        registry, "record.posted", "INS-C", {"on_behalf_of": "INS-W"}
    )
    assert got == {"INS-C", "INS-W", "INS-K"}  # issuer, owner, the owner's custodian
    got = policy.entitled_institutions(
        registry, "record.posted", "INS-C", {"on_behalf_of": "INS-NONE"}
    )
    assert got == {"INS-C", "INS-NONE"}  # an unregistered owner has no custodian
    assert policy.reads_institutions(Principal("institution", "I"))
    assert not policy.reads_institutions(Principal("learner", "L"))

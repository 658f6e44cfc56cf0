"""Who may do what: the bank's one authorization policy (docs/architecture.md, issue #11).

Every decision is a pure function of three things:

* a :class:`Principal`: who calls. API callers are ``anonymous`` or hold a token of role
  ``auditor``, ``institution`` or ``learner``; people in the portals hold a session of role
  ``worker``, ``operator`` or ``admin`` (:func:`principal_of_account`). ``subject`` is whom
  the principal speaks for: an institution id, a learner id, or None.
* an :class:`Action`: what it wants to do.
* a resource, when the decision depends on what the action is about: a log entry
  (:class:`LogEntry`), one posted record entry (:class:`PostedEntry`), an institution's
  records (:class:`InstitutionRecords`) or a learner's data (:class:`LearnerData`). The
  caller fills in the facts the decision needs (the entitled institutions, the custodian)
  from the registry or the stored row; the policy reads nothing.

:data:`GRANTS` is the whole table: every role × action pair is one of :class:`Grant`.
Anything not in it (an unknown role, an unknown action, a missing resource where one is
needed, a principal without the subject its grant needs) is denied: the policy fails closed.
Routes open to everyone (the log's checkpoints and proofs, the rules, verification, the
issuer's public material) take no principal and have no action here; the route matrix
(tests/api/test_authz_matrix.py) checks that they stay open and that every other route
refuses whom this table refuses.

Routes and services ask :func:`authorize` (which raises the refusal) or :func:`allows` (a
bool, for per-item answers such as a batch of entries); they never compare roles themselves.
Scoping what an allowed caller sees (only the learner's own documents) stays with the
service, which is handed the learner id :func:`reader_scope` returns.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from creditbank.core.entries import PRIVATE_TYPES
from creditbank.core.registry import Registry
from creditbank.errors import AuthError, ForbiddenError

#: API roles (bearer tokens; ``anonymous`` without one)
API_ROLES: Final = ("anonymous", "auditor", "institution", "learner")
#: portal roles (a signed-in account's session)
PORTAL_ROLES: Final = ("worker", "operator", "admin")
ROLES: Final = API_ROLES + PORTAL_ROLES


class Action(StrEnum):
    """Everything a principal may be allowed to do."""

    # -- the log
    ENTRY_READ = "log.entry.read"
    # -- institutions (API)
    RECORDS_POST = "records.post"
    RECORD_ENTRY_POST = "records.post_entry"
    LEARNERS_RESOLVE = "learners.resolve"
    INSTITUTION_RECORDS_LIST = "institutions.records.list"
    # -- learners (API) and auditors
    LEARNER_RECORDS_READ = "learners.records.read"
    CONVERSION_APPLY = "conversions.apply"
    CONVERSION_READ = "conversions.read"
    CONVERSION_PREVIEW = "conversions.what_if"
    DOCUMENT_ISSUE = "documents.issue"
    DOCUMENT_LIST = "documents.list"
    DOCUMENT_REVOKE = "documents.revoke"
    DOCUMENT_READ = "documents.read"
    SHARE_CODES_MANAGE = "share_codes.manage"
    # -- the portals
    ACCOUNT_MANAGE = "account.manage"
    PORTAL_WORKER = "portal.worker"
    PORTAL_CONSOLE = "portal.console"
    PORTAL_ADMIN = "portal.admin"


class Grant(Enum):
    """How a role stands to an action."""

    #: never
    DENY = "deny"
    #: always
    ALLOW = "allow"
    #: on the principal's own data only: it needs a subject, and the caller acts for it
    SELF = "self"
    #: on a public resource only
    PUBLIC = "public"
    #: on a public resource, or one whose holders (for the principal's role) include the
    #: principal's subject
    OWN = "own"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``role`` is one of :data:`ROLES` (anything else is denied everything)."""

    role: str
    #: whom the principal speaks for (an institution id or a learner id); None for anonymous
    #: callers, auditors, admins and workers who have not claimed their records yet
    subject: str | None = None
    token_id: str | None = None

    @property
    def is_auditor(self) -> bool:
        return self.role == "auditor"

    def may_read_entry(
        self,
        entry_type: str,
        issuer: str,
        subject: str | None,
        institutions: Collection[str] = frozenset(),
    ) -> bool:
        """:func:`allows` ``ENTRY_READ`` of :class:`LogEntry` (``issuer`` grants nothing by
        itself: without ``institutions`` no institution reads a private entry)."""
        del issuer  # the entitled institutions already include it when it is entitled
        entry = LogEntry(entry_type, subject, frozenset(institutions))
        return allows(self, Action.ENTRY_READ, entry)


ANONYMOUS: Final = Principal("anonymous")


def principal_of_account(
    role: str, institution_id: str | None, learner_id: str | None
) -> Principal:
    """The principal of a portal session: a worker speaks for their claimed learner id, an
    operator for their institution, an admin for nobody."""
    if role == "worker":
        return Principal("worker", learner_id)
    if role == "operator":
        return Principal("operator", institution_id)
    if role == "admin":
        return Principal("admin")
    return Principal(role)  # unknown: denied everything


# -- resources ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogEntry:
    """A stored log entry: ``subject`` is the learner it is about; ``institutions`` those
    entitled to read it (its issuer, the owner it was posted for and that owner's custodian;
    see :func:`entitled_institutions`)."""

    entry_type: str
    subject: str | None = None
    institutions: frozenset[str] = frozenset()

    @property
    def public(self) -> bool:
        return self.entry_type not in PRIVATE_TYPES

    def holders(self, role: str) -> frozenset[str]:
        if role == "learner":
            return frozenset() if self.subject is None else frozenset({self.subject})
        if role == "institution":
            return self.institutions
        return frozenset()


@dataclass(frozen=True, slots=True)
class PostedEntry:
    """One record entry of a ``POST /api/v1/records`` batch: signed by ``issuer``, for ``ward``
    (``on_behalf_of``) if given. ``ward_custodian`` is the ward's custodian, and
    ``ward_known`` whether the ward is registered (an unknown ward is the ledger's refusal,
    ``record.unknown_institution``, not an authorization one)."""

    issuer: str | None
    ward: str | None = None
    ward_known: bool = False
    ward_custodian: str | None = None

    public: bool = False

    def holders(self, role: str) -> frozenset[str]:
        if role != "institution" or self.issuer is None:
            return frozenset()
        if self.ward is None or self.ward == self.issuer or not self.ward_known:
            return frozenset({self.issuer})
        return frozenset({self.issuer}) if self.ward_custodian == self.issuer else frozenset()


@dataclass(frozen=True, slots=True)
class InstitutionRecords:
    """The records an institution owns; ``custodian`` is set once it is closed."""

    institution_id: str
    custodian: str | None = None

    public: bool = False

    def holders(self, role: str) -> frozenset[str]:
        if role not in ("institution", "operator"):
            return frozenset()
        return frozenset(x for x in (self.institution_id, self.custodian) if x is not None)


@dataclass(frozen=True, slots=True)
class LearnerData:
    """A learner's records, documents or decisions."""

    learner_id: str

    public: bool = False

    def holders(self, role: str) -> frozenset[str]:
        return frozenset({self.learner_id}) if role in ("learner", "worker") else frozenset()


Resource = LogEntry | PostedEntry | InstitutionRecords | LearnerData
_RESOURCE_TYPES: Final = (LogEntry, PostedEntry, InstitutionRecords, LearnerData)


# -- the table ------------------------------------------------------------------------------------
_A, _S, _P, _O = Grant.ALLOW, Grant.SELF, Grant.PUBLIC, Grant.OWN

#: action -> the roles it is granted to and how; every role not named is denied
_GRANTED: Final[Mapping[Action, Mapping[str, Grant]]] = {
    Action.ENTRY_READ: {
        "anonymous": _P,
        "auditor": _A,
        "institution": _O,
        "learner": _O,
        "worker": _P,
        "operator": _P,
        "admin": _P,
    },
    Action.RECORDS_POST: {"institution": _S},
    Action.RECORD_ENTRY_POST: {"institution": _O},
    Action.LEARNERS_RESOLVE: {"institution": _S},
    Action.INSTITUTION_RECORDS_LIST: {"institution": _O, "operator": _O},
    Action.LEARNER_RECORDS_READ: {"auditor": _A, "learner": _O},
    Action.CONVERSION_APPLY: {"learner": _S},
    Action.CONVERSION_READ: {"learner": _S},
    Action.CONVERSION_PREVIEW: {"learner": _S},
    Action.DOCUMENT_ISSUE: {"learner": _S},
    Action.DOCUMENT_LIST: {"learner": _S},
    Action.DOCUMENT_REVOKE: {"learner": _S},
    Action.DOCUMENT_READ: {"auditor": _A, "learner": _O},
    Action.SHARE_CODES_MANAGE: {"learner": _S},
    Action.ACCOUNT_MANAGE: {"worker": _A, "operator": _A, "admin": _A},
    Action.PORTAL_WORKER: {"worker": _A},
    Action.PORTAL_CONSOLE: {"operator": _A},
    Action.PORTAL_ADMIN: {"admin": _A},
}

#: the whole table: role -> action -> grant, for every role of :data:`ROLES` and every
#: :class:`Action` (DENY where :data:`_GRANTED` names no grant)
GRANTS: Final[Mapping[str, Mapping[Action, Grant]]] = {
    role: {action: _GRANTED.get(action, {}).get(role, Grant.DENY) for action in Action}
    for role in ROLES
}

#: what each action needs, for the refusal of an anonymous caller ("this needs …")
NEEDS: Final[Mapping[Action, str]] = {
    Action.ENTRY_READ: "an authorised token",
    Action.RECORDS_POST: "an institution token",
    Action.RECORD_ENTRY_POST: "an institution token",
    Action.LEARNERS_RESOLVE: "an institution token",
    Action.INSTITUTION_RECORDS_LIST: "an institution token or an operator account",
    Action.LEARNER_RECORDS_READ: "the learner's token or an auditor token",
    Action.CONVERSION_APPLY: "a learner token",
    Action.CONVERSION_READ: "a learner token",
    Action.CONVERSION_PREVIEW: "a learner token",
    Action.DOCUMENT_ISSUE: "a learner token",
    Action.DOCUMENT_LIST: "a learner token",
    Action.DOCUMENT_REVOKE: "a learner token",
    Action.DOCUMENT_READ: "the owner's learner token or an auditor token",
    Action.SHARE_CODES_MANAGE: "a learner token",
    Action.ACCOUNT_MANAGE: "a signed-in account",
    Action.PORTAL_WORKER: "a worker account",
    Action.PORTAL_CONSOLE: "an operator account",
    Action.PORTAL_ADMIN: "an admin account",
}


def grant(role: str, action: object) -> Grant:
    """The table's grant of ``role`` for ``action``; DENY for anything unknown."""
    by_action = GRANTS.get(role)
    if by_action is None or not isinstance(action, Action):
        return Grant.DENY
    return by_action.get(action, Grant.DENY)


def allows(principal: Principal, action: object, resource: object = None) -> bool:
    """Whether ``principal`` may do ``action`` (on ``resource``, where its grant needs one)."""
    g = grant(principal.role, action)
    if g is Grant.ALLOW:
        return True
    if g is Grant.SELF:
        return principal.subject is not None
    if g in (Grant.PUBLIC, Grant.OWN):
        if not isinstance(resource, _RESOURCE_TYPES):
            return False
        if resource.public:
            return True
        return (
            g is Grant.OWN
            and principal.subject is not None
            and principal.subject in resource.holders(principal.role)
        )
    return False


def authorize(
    principal: Principal,
    action: Action,
    resource: object = None,
    *,
    code: str = "auth.forbidden",
    message: str | None = None,
) -> None:
    """Raise the refusal unless :func:`allows`.

    Raises:
        AuthError: ``auth.required`` for an anonymous caller.
        ForbiddenError: ``code`` (``auth.forbidden`` unless told) for anyone else, with
            ``message`` if given.
    """
    if allows(principal, action, resource):
        return
    if principal.role == "anonymous":
        raise AuthError(f"this needs {NEEDS.get(action, 'a token')}", code="auth.required")
    raise ForbiddenError(message or f"a {principal.role} token cannot do this", code=code)


def acting_subject(principal: Principal, action: Action) -> str:
    """The subject (learner or institution id) a principal acts for when its grant for
    ``action`` is SELF (its own data) or OWN (the service then asks :func:`authorize` about
    the resource itself, e.g. which institution's records are listed).

    Raises:
        AuthError: ``auth.required`` for an anonymous caller.
        ForbiddenError: ``auth.forbidden`` for any other role, or a principal without a
            subject.
    """
    g = grant(principal.role, action)
    if g in (Grant.SELF, Grant.OWN) and principal.subject is not None:
        return principal.subject
    if principal.role == "anonymous":
        raise AuthError(f"this needs {NEEDS.get(action, 'a token')}", code="auth.required")
    raise ForbiddenError(f"a {principal.role} token cannot do this", code="auth.forbidden")


def reader_scope(principal: Principal, action: Action) -> str | None:
    """Whose data an allowed reader sees: None for every learner's (a grant of ALLOW, an
    auditor), else the principal's own learner id (a grant of OWN or SELF); the service
    answers others' data as unknown.

    Raises:
        AuthError / ForbiddenError: as :func:`authorize` if the role may not read at all.
    """
    g = grant(principal.role, action)
    if g is Grant.ALLOW:
        return None
    if g in (Grant.OWN, Grant.SELF) and principal.subject is not None:
        return principal.subject
    authorize(principal, action, None)  # raises: nothing else is allowed
    raise AssertionError("unreachable")  # pragma: no cover


def reads_institutions(principal: Principal) -> bool:
    """Whether a decision over a :class:`LogEntry` for ``principal`` depends on the entry's
    entitled institutions (so that callers work them out, which reads the registry, only
    then)."""
    return principal.role == "institution"


def entitled_institutions(
    registry: Registry, entry_type: str, issuer: str, body: object
) -> frozenset[str]:
    """The institutions entitled to read a private entry: its issuer, the owner it was posted
    for (``on_behalf_of`` in ``body``) and that owner's custodian. Empty for public types."""
    if entry_type not in PRIVATE_TYPES:
        return frozenset()
    ward = body.get("on_behalf_of") if isinstance(body, dict) else None
    owner = ward if isinstance(ward, str) else issuer
    inst = registry.institutions.get(owner)
    custodian = inst.custodian if inst is not None else None
    return frozenset(x for x in (issuer, owner, custodian) if x is not None)


__all__ = [
    "ANONYMOUS",
    "API_ROLES",
    "GRANTS",
    "NEEDS",
    "PORTAL_ROLES",
    "ROLES",
    "Action",
    "Grant",
    "InstitutionRecords",
    "LearnerData",
    "LogEntry",
    "PostedEntry",
    "Principal",
    "Resource",
    "acting_subject",
    "allows",
    "authorize",
    "entitled_institutions",
    "grant",
    "reader_scope",
    "reads_institutions",
]

"""The error catalogue: every error code of creditbank, defined once.

Each code has an HTTP status (the API's problem+json answer), a CLI exit code (``1`` a
domain refusal, ``2`` a usage or configuration error), a title (the problem's ``title``)
and a one-line remediation. :class:`creditbank.errors.CreditBankError` takes its status,
exit code and title from the entry of its ``code``; ``docs/errors.md`` is generated from
here (``python -m creditbank.error_catalogue > docs/errors.md``) and a test fails when it is
stale or when a code raised anywhere in ``creditbank/`` is missing here.

Adding a code is one line of :data:`_TABLE`::

    <code>  <status> <exit>  <title> | <remediation> [| reserved]

``reserved`` marks a code that nothing raises today but that stays defined (a client may
see it from another version of the bank, or it is kept for a documented meaning). This
module imports nothing of creditbank: every layer may use it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

#: exit codes of the CLI
EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_SOFTWARE: Final = 70
EXIT_INTERRUPTED: Final = 130


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One catalogue entry.

    Attributes:
        code: the stable machine-readable code (``family.name``).
        status: the HTTP status the API answers with.
        exit_code: the CLI's exit code (1 refusal, 2 usage/configuration, 70 a bug).
        title: a short human title (problem+json ``title``).
        remedy: one line on what to do about it.
        reserved: nothing raises it today; it stays defined.
    """

    code: str
    status: int
    exit_code: int
    title: str
    remedy: str
    reserved: bool = False

    @property
    def family(self) -> str:
        """The part of the code before the first dot (the whole code if it has none)."""
        return self.code.split(".", 1)[0]


# code                               HTTP exit  title | remediation [| reserved]
_TABLE: Final = """
# --- generic families: the class-level codes of creditbank.errors ---------------------------
creditbank.error                     500 1  creditbank error | Rerun with --verbose and report the message; a specific code should have been raised. | reserved
input.invalid                        400 1  Invalid input | Correct the value the detail names and send it again.
input.unsupported_version            400 1  Unsupported version | Send a format version this bank supports (see docs/formats).
input.non_canonical                  400 1  Non-canonical JSON | Sign and send the canonical JSON form (RFC 8785: sorted keys, no spaces).
input.too_large                      413 1  Input too large | Send less: split the body, entry, note or proof under the stated limit.
verify.failed                        422 1  Verification failed | The object does not verify: obtain a fresh copy from its issuer.
verify.signature                     422 1  Bad signature | Check that the object was signed by the key it names and not changed since.
verify.root_mismatch                 422 1  Root mismatch | The log's hashes disagree with its checkpoint: run `creditbank audit` and report it.
verify.proof_format                  422 1  Malformed proof | Fetch the proof again from the log API.
verify.note_format                   422 1  Malformed signed note | Fetch the checkpoint again; a signed note is text lines, a blank line, signatures.
verify.checkpoint_format             422 1  Malformed checkpoint | Fetch the checkpoint again from the log API.
verify.unknown_key                   422 1  Unknown key | Verify with the key set of the log or institution that signed it.
verify.revoked                       422 1  Revoked | The object or its key was revoked: ask its issuer for a current one.
verify.inconsistent                  422 1  Inconsistent log | Two views of the log disagree: keep both checkpoints as evidence and report them.
rules.invalid                        422 1  Rule error | Correct the conversion rule the detail names and publish again.
rules.rejected                       422 1  Conversion rejected | Read the reasons: the application does not meet a rule in force.
not_found                            404 1  Not found | Check the identifier; list what exists first.
conflict                             409 1  Conflict | Reload the current state; the request conflicts with it.
auth.unauthorized                    401 1  Unauthorized | Send a valid token: Authorization: Bearer <token>.
auth.forbidden                       403 1  Forbidden | Use a token whose role may do this.
storage.unavailable                  503 1  Service unavailable | The database is unreachable: try again shortly, or start the database.
rate.limited                         429 1  Too many requests | Wait the Retry-After seconds, then try again.
config.invalid                       500 2  Configuration error | Fix the setting the detail names (CREDITBANK_* variables or the global flags).
batch.rejected                       422 1  Batch rejected | Fix the items listed in `items`; nothing of the batch was written.
http.unsupported_media_type          415 1  Unsupported media type | Send the body as Content-Type: application/json.
post.failed                          502 1  Posting failed | Check the bank URL and network, then re-run the same post: it resumes.
post.refused                         422 1  Batch refused | Read the bank's code and detail in the message; fix those rows and re-run.
monitor.failed                       502 1  Monitoring failed | Check the bank URL and network, then run the monitor again.
verify.credential                    422 1  Credential not verified | Obtain a fresh copy of the credential from the bank.
verify.credential_proof              422 1  Credential proof invalid | The credential was changed after signing: obtain a fresh copy.
verify.name_commitment               422 1  Name commitment mismatch | Give the name exactly as on the identity document the record was posted with.

# --- HTTP routing and the API's own answers ---------------------------------------------------
http.bad_request                     400 1  Bad request | Send a well-formed HTTP request (Content-Length a decimal number).
http.not_found                       404 1  Not found | Check the path against the API documentation (/docs).
http.method_not_allowed              405 1  Method not allowed | Use a method the route accepts (see /docs).
http.not_acceptable                  406 1  Not acceptable | Accept application/json or application/problem+json.
http.uri_too_long                    414 1  URI too long | Shorten the path or query string.
http.headers_too_large               431 1  Request headers too large | Send fewer or shorter headers.
request.invalid                      400 1  Invalid request | Fix the parameter or body field the detail names (see /docs).
internal                             500 70 Internal error | A bug: report it with the time of the request (the server log has the details).

# --- the CLI's own answers --------------------------------------------------------------------
usage                                400 2  Usage error | Run the command with --help and fix the arguments.
usage.url                            400 2  Bad URL | Give the bank's http:// or https:// URL, e.g. http://127.0.0.1:8000.
aborted                              400 1  Aborted | Nothing was done; run the command again to proceed.
interrupted                          400 130 Interrupted | The command was interrupted; run it again (posting resumes from its journal).
cli.output                           500 2  Cannot write output | Give an output path in an existing writable folder.
export.target                        400 2  Bad export target | Give a directory (or a path that does not exist yet).
export.not_empty                     409 2  Export target not empty | Choose an empty directory or pass --force.
audit.failed                         422 1  Audit found problems | Read the problems listed; restore the database from a backup that audits clean.
log.empty                            409 1  Empty log | Append an entry first (e.g. `creditbank init` writes the genesis entry).

# --- authentication and accounts ------------------------------------------------------------
auth.required                        401 1  Authentication required | Send a token of the role the route needs (Authorization: Bearer <token>).
auth.malformed                       401 1  Malformed Authorization header | Send exactly `Authorization: Bearer <token>`.
auth.bad_token                       401 1  Unknown or revoked token | Ask the operator for a new token.
auth.bad_credentials                 401 1  Wrong login or password | Check the email/phone and password, or reset the password.
auth.locked                          429 1  Sign-in locked | Wait the stated seconds before signing in again.
auth.wrong_institution               403 1  Wrong institution | Post only entries signed by your own institution (or a ward you are custodian of).
account.already_claimed              409 1  Account already claimed | This account already holds a learner; sign in with the learner's own account.
account.display_name                 400 1  Bad display name | Use at most 64 printable characters.
account.exists                       409 1  Account exists | Sign in, or use another email or phone.
account.learner_taken                409 1  Learner taken | Another account holds this learner; contact the operator.
account.login                        400 1  Bad login | Give an email address or a phone number of 6 to 15 digits.
account.not_claimed                  409 1  Records not claimed | Claim your records first.
account.password                     400 1  Bad password | Choose a password of the required length (pipe it on stdin for the CLI).
account.password_mismatch            401 1  Passwords differ | Type the same new password twice.
account.role                         400 2  Bad account role | Give worker, operator or admin.
account.unknown                      404 1  Unknown account | Check the account id (`creditbank account list`).
claim.failed                         401 1  Claim failed | Request a new code and give the details exactly as on the record.
claim.too_many                       429 1  Too many claim codes | Use a code already sent, or wait the stated seconds.
csrf.failed                          403 1  Form token invalid | Reload the page and submit the form again.
csrf.origin                          403 1  Cross-site upload refused | Upload from the bank's own page.
token.ambiguous                      409 1  Ambiguous token id | Give more digits of the token id.
token.id                             400 1  Bad token id | Give the 16 lower-case hex digits printed when the token was made.
token.label                          400 1  Bad token label | Use at most the stated number of printable characters.
token.role                           400 1  Bad token role | Use one of the token roles the bank knows.
token.unknown                        404 1  Unknown token | Check the token id; list the tokens first.

# --- wire data: JSON, encodings, entries --------------------------------------------------------
input.base58                         400 1  Bad base58 | Send base58btc text (multibase prefix z).
input.base64                         400 1  Bad base64 | Send canonical standard base64 with padding.
input.big_int                        400 1  Integer out of range | Keep integers within ±(2**53 - 1).
input.duplicate_key                  400 1  Duplicate JSON key | Send each object key once.
input.float                          400 1  Float not allowed | Send integers (e.g. credits in hundredths: credits_centi).
input.json                           400 1  Malformed JSON | Send valid JSON text.
input.key_type                       400 1  Bad object key | Use string keys only.
input.not_utf8                       400 1  Not UTF-8 | Encode the JSON as UTF-8.
input.too_deep                       400 1  JSON too deep | Nest objects and arrays less deeply.
input.type                           400 1  Unencodable value | Pass only JSON types (str, int, bool, None, list, dict).
input.date                           400 2  Bad date | Give the date as YYYY-MM-DD.
entry.at_future                      400 1  Entry from the future | Check the signer's clock and sign again.
entry.at_stale                       400 1  Entry signed too long ago | Sign the entry again and post it at once.
entry.bad_at                         400 1  Bad timestamp | Write `at` as RFC 3339 UTC, e.g. 2026-01-02T03:04:05Z.
entry.bad_sig                        400 1  Bad signature member | Give the entry exactly one `sig` member (sign it once).
entry.body                           400 1  Bad entry body | Make `body` a JSON object.
entry.fields                         400 1  Wrong entry fields | Send exactly the members of the entry format (docs/formats).
entry.issuer                         400 1  Bad issuer | Set `issuer` to a registered institution id.
entry.key_id                         400 1  Key id mismatch | Set `key_id` to the id of the key that signs the entry.
entry.naive_time                     400 1  Time without zone | Give timestamps with a timezone.
entry.no_schema                      400 1  No schema for entry type | Use a bank-authored entry type that has a schema.
entry.not_object                     400 1  Entry not an object | Send each entry as a JSON object.
entry.signed_twice                   400 1  Entry already signed | Sign the unsigned entry, once.
entry.unknown_type                   400 1  Unknown entry type | Use an entry type of docs/formats.
batch.empty                          400 1  Empty batch | Send at least one entry.
batch.too_large                      400 1  Batch too large | Send at most the stated number of entries per batch.

# --- keys ------------------------------------------------------------------------------------
key.ambiguous                        400 1  Ambiguous verifier keys | Give each verifier key a distinct name or key id.
key.bad_name                         400 1  Bad key name | Use a key name of letters, digits and . _ - (no + or spaces).
key.bad_public                       400 1  Bad public key | Give a 32-byte Ed25519 public key.
key.bad_seed                         400 1  Bad private key seed | Give a 32-byte Ed25519 seed.
key.bad_skey                         400 1  Bad private key | Give a PRIVATE+KEY+<name>+<id>+<base64> key string.
key.bad_vkey                         400 1  Bad verifier key | Give a verifier key as <name>+<hex8>+<base64>.
key.private                          400 1  Private key given | Give the bank the public key (.pub); keep the private key.
key.public                           400 1  Bad public key file | Give a file with exactly one Ed25519 public key (`creditbank keys generate`).
key.exists                           409 1  Key file exists | Choose another path; an existing key is never overwritten.
key.mode                             500 2  Key file readable by others | chmod 600 the key file.
key.name                             500 2  Key of another institution | Use the key file of the institution you post for.
key.read                             500 2  Cannot read key file | Check the path and permissions of the key file.

# --- the log ---------------------------------------------------------------------------------
log.bad_batch                        400 1  Bad batch index | Give a non-negative decimal index below 2**63.
log.bad_range                        400 1  Bad range | Give 0 <= start < end within the stated count.
log.no_checkpoint                    404 1  No checkpoint yet | Wait for the first checkpoint (or `creditbank log publish`).
log.no_entry                         404 1  No such entry | Give an index below the log size.
log.unpublished_size                 400 1  Size not published | Ask for a size at most the latest checkpoint's.
merkle.bad_border                    400 1  Bad tree border | Send the border hashes of the stated tree size.
merkle.bad_consistency_sizes         400 1  Bad consistency sizes | Give 0 < first <= second <= the tree size.
merkle.bad_hash                      400 1  Bad hash | Send 32-byte SHA-256 hashes.
merkle.bad_index                     400 1  Index outside tree | Give an index below the tree size.
merkle.bad_range                     400 1  Bad hash range | Give 0 <= begin <= end <= size.
merkle.bad_size                      400 1  Bad tree size | Give a tree size within the log's bounds.
checkpoint.key_name_mismatch         500 2  Log key name mismatch | Set CREDITBANK_ORIGIN to the name of the home's log key.

# --- the institution registry ----------------------------------------------------------------
registry.body                        400 1  Bad registry body | Fill every member the detail names.
registry.closed                      409 1  Institution closed | Post through its custodian; a closed institution writes nothing.
registry.closed_on                   400 1  Closing date in the future | Give a closing date of today or earlier.
registry.closed_twice                409 1  Already closed | Nothing to do: the institution is closed.
registry.custodian                   400 1  Bad custodian | Name another registered, open institution as custodian.
registry.effective_at                400 1  Bad effective time | Give a date-time with a time and an offset (Z or +08:00).
registry.exists                      409 1  Institution exists | Use another institution id, or add a key to the existing one.
registry.institution_id              400 1  Bad institution id | Use 1-64 letters, digits or . _ : - starting alphanumeric.
registry.key_exists                  409 1  Key already registered | Generate a new key; each key is registered once.
registry.key_id                      400 1  Key id mismatch | Derive the key id from the public key.
registry.kind                        400 1  Unknown institution kind | Use one of the institution kinds of docs/formats.
registry.not_bank                    403 1  Not signed by the bank | Registry entries are signed by the bank's log key only.
registry.public_key                  400 1  Public key missing | Give the institution's public key file.
registry.revoked_twice               409 1  Key already revoked | Nothing to do: the key is revoked.
registry.schema                      400 1  Registry entry invalid | Fix the member at the JSON path in the detail.
registry.unknown                     404 1  Unknown institution | Check the institution id (`creditbank institution list`).
registry.unknown_key                 404 1  Unknown key | Check the key id of the institution.

# --- records ----------------------------------------------------------------------------------
record.already_revoked               409 1  Record already revoked | Nothing to do: the record is revoked.
record.certificate_type              400 1  Unknown certificate type | Use a certificate type of the catalogue.
record.claimed_issuer                403 1  Only the bank posts uploads | Post records signed by your own institution.
record.conflict                      409 1  Record conflict | The record id exists with other content: correct it with record.corrected.
record.credits                       400 1  Bad credits | Give credits as a number >= 0 (credits_centi an integer).
record.effective_on                  400 1  Bad effective date | Give effective_on as YYYY-MM-DD.
record.end_before_start              400 1  End before start | Make end_on the same as or after start_on.
record.entry_type                    400 1  Not a record entry type | Use record.posted, record.corrected or record.revoked.
record.erased                        400 1  Learner erased | The learner's personal data was erased: post nothing more for them.
record.expiry_before_issue           400 1  Expiry before issue | Make expires_on the same as or after issued_on.
record.future_date                   400 1  Date in the future | Give dates of today or earlier (only expires_on may be later).
record.institution_closed            403 1  Institution closed | Post through the closed institution's custodian.
record.learner_mismatch              400 1  Correction for another learner | Correct a record of the same learner; revoke and post anew to move it.
record.level_range                   400 1  Level out of range | Give a level from 1 to 5.
record.name                          400 1  Bad name on record | Give the learner's name as on the identity document.
record.name_commitment               400 1  Name commitment mismatch | Give the learner's name exactly as committed with the record.
record.not_custodian                 403 1  Not the custodian | Only the custodian of the closed institution posts for it.
record.not_found                     404 1  Record not found | Check the record index.
record.reason                        400 1  Bad reason | Give a reason of 1-1000 characters.
record.sample                        400 1  Bad sample record | Complete the sample record with the member named.
record.schema                        400 1  Record body invalid | Fix the member at the JSON path in the detail (docs/formats).
record.self_correction               400 1  Record corrects itself | Point `corrects` at another record id.
record.unknown_institution           400 1  Unknown institution | Register the institution first.
record.unknown_learner               400 1  Unknown learner | Resolve the learner first (POST /api/v1/learners/resolve).
record.unknown_schema                400 1  Unknown schema | Use a schema name of creditbank/schemas.
record.unknown_target                404 1  Unknown target record | Check the record id to correct or revoke.
learner.erased                       409 1  Learner erased | The learner's personal data was erased: nothing more can be issued for them.
learner.id                           400 1  Bad learner id | Give LRN- and 16-32 characters.
learner.unknown                      404 1  Unknown learner | Check the learner id.
identity.checksum                    422 1  Bad identity check character | Check the identity number's digits and its check character.
identity.format                      422 1  Bad identity document | Give the document type and number in the format of docs/formats.
identity.name                        422 1  Bad name | Give the name as on the identity document.
identity.nationality                 422 1  Bad nationality | Give an ISO 3166 alpha-3 nationality.
identity.pepper                      500 2  Bad identity pepper | Configure the identity pepper as bytes.
identity.prehash                     422 1  Bad pre-hashed identity | Give the pre-hashed identity as text.
identity.salt                        422 1  Bad name salt | Give the name salt as bytes.

# --- import ----------------------------------------------------------------------------------
import.application                   400 1  Bad application | Give applied_on, a known type and its target.
import.bad_json                      400 1  Bad dataset JSON | Make each dataset file UTF-8 JSON.
import.bad_rows                      400 1  Bad dataset rows | Make the file an array of objects, each with an id.
import.batch_size                    400 2  Bad batch size | Give a batch size of at least 1.
import.corrects                      400 1  Correction of unknown outcome | Correct an outcome of the same dataset.
import.identity                      400 1  Learner without identity | Give each learner an id_document.hash.
import.institution                   400 1  Unknown institution | Name an institution of the dataset.
import.learner                       400 1  Unknown learner | Name a learner of the dataset.
import.ledger_only                   500 2  Import needs a validating bank | Open the bank without the ledger-only mode.
import.missing_file                  400 1  Dataset file missing | Add the file named to the dataset directory.
import.name                          400 1  Bad dataset name | Use 1-64 characters.
import.no_key                        500 2  Institution key missing | Put the institution's key in the home's keys directory.
import.not_a_dataset                 400 2  Not a dataset | Give a directory holding outcomes.json.
import.order                         400 1  Unorderable events | Break the cycle between the events named.
import.outcome                       400 1  Bad outcome | Fix the outcome named in the detail.
import.ref_conflict                  409 1  Reference imported as something else | Use another dataset name, or the same content.

# --- conversion and rules ----------------------------------------------------------------------
conversion.application_conflict      409 1  Application conflict | Use a new application id.
conversion.bad_application           400 2  Bad application | Give a PROGRAM, or --exam CERTIFICATE_TYPE for an exam exemption.
conversion.bad_date                  400 2  Bad date | Give the date as YYYY-MM-DD.
conversion.future_date               400 1  Application in the future | Date the application today or earlier.
conversion.idempotency_key_reused    422 1  Idempotency key reused | Use a new Idempotency-Key for another application.
conversion.no_catalog                400 1  No programme catalogue | Give the programmes with the first rule set.
conversion.no_rules                  404 1  No rules published | Publish conversion rules first (`creditbank rules publish`).
conversion.program                   400 1  No programme chosen | Choose a programme from the list.
conversion.rules_file                400 1  Bad rules file | Give a UTF-8 JSON rules file (docs/conversion.md).
conversion.schema                    400 1  Conversion entry invalid | Fix the member at the JSON path in the detail.
conversion.too_large                 422 1  Decision too large | Split the application into fewer records.
conversion.unknown_application       404 1  Unknown application | Check the application id.
conversion.unknown_certificate_type  400 1  Unknown certificate type | Use a certificate type of the catalogue.
conversion.unknown_program           400 1  Unknown programme | Use a programme of the published catalogue.
conversion.void_conflict             409 1  Grant already voided | Nothing to do: the grant is void.
rules.schema                         400 1  Rules entry invalid | Fix the member at the JSON path in the detail.
rules.too_large                      400 1  Rule set too large | Publish fewer or shorter rules per entry.
rules.out_of_order                   422 1  Application out of order | Apply in order of applied_on; a later application was decided.
rules.program_removed                422 1  Programme removed | Keep every programme published before.
rules.unknown_institution            422 1  Unknown institution | Register the institution first.
rules.version_changed                422 1  Rule version changed | Publish a new version instead of changing one.
rules.version_removed                422 1  Rule version removed | Keep published versions; end one with effective_to.
rules.bad_amount                     422 1  Bad amount | Give a positive amount.
rules.bad_condition                  422 1  Bad condition | Fix the condition named in the detail.
rules.bad_effective_range            422 1  Bad effective range | Make effective_to no earlier than effective_from.
rules.bad_recency                    422 1  Bad recency | Give recency_years >= 0.
rules.bad_version                    422 1  Bad version | Number versions from 1.
rules.condition_not_applicable       422 1  Condition not applicable | Drop the condition: it does not apply to this record kind.
rules.duplicate_version              422 1  Duplicate version | Give each version of a rule once.
rules.empty_condition                422 1  Empty condition | Drop the empty list: it can never match.
rules.kind_mismatch                  422 1  Kind mismatch | Match the source kind to the target mode.
rules.missing_amount                 422 1  Amount missing | Give the amount the target mode needs.
rules.missing_certificate_type       422 1  Certificate type missing | Give the certificate type of an exam target.
rules.missing_course                 422 1  Course missing | Give the course the target mode needs.
rules.missing_exam_part              422 1  Exam part missing | Give the exam part of the target.
rules.missing_key                    422 1  Rule key missing | Give every rule a rule_key.
rules.missing_program                422 1  Programme missing | Give the programme the target needs.
rules.negative_cap                   422 1  Negative cap | Give caps >= 0.
rules.overlapping_versions           422 1  Overlapping versions | Make the versions' effective ranges disjoint.
rules.unexpected_amount              422 1  Unexpected amount | Drop the amount: this target mode takes none.
rules.unexpected_course              422 1  Unexpected course | Drop the course: this target mode takes none.
rules.unexpected_target              422 1  Unexpected target | Drop the target member named.
rules.unknown_certificate_type       422 1  Unknown certificate type | Use a certificate type of the catalogue.
rules.unknown_course                 422 1  Unknown course | Use a course of the programme.
rules.unknown_issuer_kind            422 1  Unknown issuer kind | Use an institution kind of docs/formats.
rules.unknown_kind                   422 1  Unknown source kind | Use a record kind of docs/conversion.md.
rules.unknown_mode                   422 1  Unknown target mode | Use a target mode of docs/conversion.md.
rules.unknown_occupation             422 1  Unknown occupation | Use an occupation of the catalogue.
rules.unknown_program                422 1  Unknown programme | Use a programme of the catalogue.
input.correction_cycle               400 1  Correction cycle | Break the cycle of corrections named.
input.dangling_correction            400 1  Correction of unknown record | Correct a record of the same learner.
input.duplicate_id                   400 1  Duplicate id | Give each id once.
input.learner_mismatch               400 1  Learner mismatch | Give the records and state of the applying learner.
input.missing_certificate_type       400 1  Certificate type missing | Name the certificate type of an exam exemption.
input.unknown_condition              400 1  Unknown condition | Use the conditions of docs/conversion.md.
input.unknown_program                400 1  Unknown programme | Use a programme of the catalogue.
report.dataset                       404 1  Unknown dataset | Import the dataset first, or check its name.

# --- documents, credentials, codes ---------------------------------------------------------------
document.certificate_subject         400 2  No certificate subject | Give --record I or --decision I.
document.decision_not_found          404 1  Decision not found | Check the decision index.
document.empty                       400 1  No records | Post records for the learner first.
document.erased                      409 1  Document erased | The learner's personal data was erased with the document.
document.no_name_on_record           409 1  No name on record | Post the record with the learner's name.
document.no_records                  400 1  No records chosen | Choose at least one record.
document.not_found                   404 1  Document not found | Check the document id.
document.reason                      400 1  Bad reason | Give a reason on one line, within the stated length.
document.record_index                400 1  Bad record index | Give indexes >= 0.
document.record_not_found            404 1  Record not found | Check the record index.
document.revoked                     409 1  Document revoked | Nothing to do: it is revoked; issue a new one if needed.
document.revoked_subject             409 1  Nothing in force | Certify a decision that grants something still in force.
document.too_many_records            400 1  Too many records | Put at most the stated number of records on one document.
transcript.duplicate                 409 1  Document exists | Nothing to do: the document is in the log.
transcript.issuer                    400 1  Not signed by the bank | Transcript entries are signed by the bank.
transcript.mismatch                  400 1  Document mismatch | Append the document its entry describes.
transcript.no_document               400 1  Document missing | Append the transcript entry with its document.
transcript.schema                    400 1  Transcript entry invalid | Fix the member at the JSON path in the detail.
credential.base_url                  400 1  Bad public base URL | Set CREDITBANK_PUBLIC_BASE_URL to an http(s) URL.
credential.content                   400 1  Content mismatch | Build the credential from its signed entry.
credential.context                   400 1  No @context | Give the credential an @context.
credential.did                       400 1  Not a did:web | Use a did:web identifier.
credential.issuer                    400 1  Other issuer | Verify with the issuer the credential names.
credential.naive_time                400 1  Time without zone | Give credential times with a timezone.
credential.proof_present             400 1  Already signed | Sign an unsigned document.
credential.validity                  400 1  Bad validity | Make validUntil later than validFrom.
code.entropy                         400 1  Bad code entropy | Make verification codes from exactly the stated random bytes.
code.malformed                       400 1  Malformed verification code | Give the code as XXXX-XXXX-XXXX-XXXX or its /v/ URL.
share_code.days                      400 1  Bad duration | Give a whole number of days within the stated range.
share_code.not_found                 404 1  Share code not found | Check the share code id.
share_code.revoked                   409 1  Share code revoked | Make a new share code.
status.unknown_list                  404 1  Unknown status list | Check the status list id.
status_list.entry                    400 1  Bad status entry | Give a BitstringStatusListEntry.
status_list.index                    400 1  Status index out of range | Give an index within the list.
status_list.invalid                  400 1  Bad status list | Fetch the status list again from the bank.
status_list.mismatch                 400 1  Status list mismatch | Check the entry against the list it points at.
status_list.purpose                  400 1  Unknown status purpose | Use revocation.

# --- verification ------------------------------------------------------------------------------
verify.did_document                  422 1  Bad DID document | Fetch the issuer's did.json again.
verify.keys                          500 2  Keys needed | Give --keys DIR (written by `creditbank keys export-public`).
verify.no_file                       400 2  No file | Send the file in the form field `file` (or give an existing path).
verify.not_json                      400 1  Not a JSON object | Upload the credential JSON object.
verify.refused                       422 1  Bank refused | Read the bank's code in the message.
verify.registry                      422 1  Key registry does not verify | Export the keys again from the bank.
verify.too_large                     413 1  Upload too large | Upload a file within the stated size.
verify.unreachable                   422 1  Bank unreachable | Check the URL and network, then try again.
verify.unsupported                   400 1  Unsupported file | Upload a signed PDF or a credential JSON.
pdf.no_credential                    422 1  No credential attached | Verify the PDF as issued by the bank.
pdf.not_pdf                          400 1  Not a PDF | Give a PDF file.
pdf.not_whole_file                   422 1  Signature does not cover the file | Use the PDF as issued: something was appended.
pdf.signature                        422 1  Bad PDF signature | Use the PDF as issued: it was changed after signing.
pdf.too_large                        413 1  PDF too large | Give a PDF within the stated size.
pdf.unsigned                         422 1  PDF not signed | Use the signed PDF issued by the bank.
pdf.untrusted                        422 1  Untrusted PDF signer | Verify with the bank's document certificate.

# --- rendering ---------------------------------------------------------------------------------
render.attachment                    400 1  Empty attachment | Attach a non-empty credential.
render.certificate                   500 2  Signing key and certificate differ | Configure the document signing key with its own certificate.
render.credential                    400 1  Credential cannot be shown | Render a credential issued by this bank.
render.fetch_refused                 400 1  External resource refused | Use only the bank's own stylesheets and fonts.
render.font_missing                  500 2  Font missing | Install fontconfig and fonts-noto-cjk.
render.glyph_missing                 400 1  Glyph missing | Install a font that covers the characters named.
render.identity                      400 1  Bad document identity | Give a name and a timezone-aware time.
render.no_signer                     500 2  No document signer | Configure the document signing key.
render.pool                          500 2  Render pool failed | Give at least one worker; check the server log for the failed worker.
render.sign                          500 2  Cannot sign the document | Check the document signing key and certificate.
render.url                           400 1  Bad public base URL | Set CREDITBANK_PUBLIC_BASE_URL to an http(s) URL.

# --- configuration, demo ----------------------------------------------------------------------
config.ledger_only                   500 2  Ledger-only bank | Open the bank without the ledger-only mode.
config.port_in_use                   500 2  Port in use | Stop what holds the port or pass --port.
config.workers_need_postgres         500 2  Workers need PostgreSQL | Set CREDITBANK_DATABASE_URL to PostgreSQL, or run one worker.
demo.base_url                        500 2  Demo made for another URL | Serve the demo at the URL it was made for, or make a new demo home.
demo.state                           500 2  Bad demo state | Make a new demo home.

# --- the posting client and the monitor --------------------------------------------------------
post.batch_size                      400 2  Bad batch size | Give a batch size within the stated range.
post.concurrency                     400 2  Bad concurrency | Give a concurrency within the stated range.
post.format                          400 1  Bad records file | Give a UTF-8 .csv or .jsonl file (docs/csv-format.md).
post.journal                         500 2  Not a journal | Remove or move the file named; it is not a creditbank journal.
post.journal_busy                    409 1  Journal in use | Wait for the other post of this file to finish.
post.leaf_hash                       422 1  Leaf hash mismatch | The bank stored something else: stop and report it.
post.proof                           422 1  Proof mismatch | The bank's answer does not match its log: stop and report it.
post.protocol                        502 1  Unusable answer | Check that the URL is a creditbank bank of a compatible version.
post.prove                           400 2  Bad prove mode | Give one of the prove modes listed.
post.read                            400 2  Cannot read file | Check the path and permissions.
post.unproven                        504 1  No checkpoint yet | Re-run later: the journal keeps what was posted.
post.unreachable                     502 1  Bank unreachable | Re-run the same command: it resumes from its journal.
monitor.alert                        422 1  Monitor alert | Investigate the alerts listed: the log shows entries you did not expect.
monitor.log_key                      500 2  Log key differs | The log's key does not change: check the URL, or start a new state file.
monitor.protocol                     502 1  Unusable answer | Check that the URL is a creditbank bank of a compatible version.
monitor.state                        500 2  Bad monitor state | Give a monitor state file, or a new path.
monitor.token                        401 1  Token refused | Ask the bank for a valid token.
monitor.unreachable                  502 1  Bank unreachable | Check the URL and network, then run the monitor again.
"""  # noqa: E501 - one line per code: a table, not prose

_LINE: Final = re.compile(
    r"(?P<code>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)\s+(?P<status>\d{3})\s+(?P<exit>\d{1,3})\s+"
    r"(?P<title>[^|]+?)\s+\|\s+(?P<remedy>[^|]+?)(?:\s+\|\s+(?P<flag>reserved))?"
)


def _parse(table: str) -> dict[str, ErrorSpec]:
    out: dict[str, ErrorSpec] = {}
    for number, line in enumerate(table.splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        m = _LINE.fullmatch(text)
        if m is None:
            raise ValueError(f"error catalogue line {number} is malformed: {text!r}")
        code = m["code"]
        if code in out:
            raise ValueError(f"error catalogue line {number}: {code} is defined twice")
        out[code] = ErrorSpec(
            code=code,
            status=int(m["status"]),
            exit_code=int(m["exit"]),
            title=m["title"],
            remedy=m["remedy"],
            reserved=m["flag"] == "reserved",
        )
    return out


#: every error code, by code
CATALOGUE: Final[Mapping[str, ErrorSpec]] = MappingProxyType(_parse(_TABLE))


def lookup(code: str) -> ErrorSpec | None:
    """The entry of ``code``, or None if the catalogue does not define it."""
    return CATALOGUE.get(code)


def spec(code: str) -> ErrorSpec:
    """The entry of ``code``.

    Raises:
        KeyError: if the catalogue does not define it (a bug: every code is defined here).
    """
    return CATALOGUE[code]


def entries() -> Iterator[ErrorSpec]:
    """Every entry, sorted by code."""
    for code in sorted(CATALOGUE):
        yield CATALOGUE[code]


def render_markdown() -> str:
    """``docs/errors.md``: every code with its status, exit code, title and remediation."""
    lines = [
        "# Error codes",
        "",
        "<!-- generated by `python -m creditbank.error_catalogue > docs/errors.md`;"
        " do not edit -->",
        "",
        "Every error of creditbank carries a stable `code`. The API answers it as RFC 9457",
        "`application/problem+json` (`type` is `urn:creditbank:problem:<code>`, `title` the",
        "title below, `status` the HTTP status below); the CLI prints one line on stderr,",
        "`error: <message> [<code>]`, and exits with the exit code below:",
        "",
        f"* `{EXIT_OK}` success;",
        f"* `{EXIT_REFUSED}` a domain refusal (not found, conflict, invalid data, a failed check);",
        f"* `{EXIT_USAGE}` a usage or configuration error (bad arguments or options, settings,"
        " a missing home);",
        f"* `{EXIT_SOFTWARE}` an unexpected error (a bug; `--verbose` shows the traceback);",
        f"* `{EXIT_INTERRUPTED}` interrupted (Ctrl-C).",
        "",
        "The codes are defined once, in `creditbank/error_catalogue.py`. *Reserved* codes are",
        "raised nowhere today and keep their meaning.",
        "",
    ]
    families: dict[str, list[ErrorSpec]] = {}
    for e in entries():
        families.setdefault(e.family, []).append(e)
    lines += ["Families: " + ", ".join(f"[`{f}`](#{f})" for f in families), ""]
    for family, specs in families.items():
        lines += [f"## {family}", "", "| code | HTTP | exit | title | what to do |"]
        lines += ["|---|---|---|---|---|"]
        for e in specs:
            title = e.title + (" *(reserved)*" if e.reserved else "")
            remedy = e.remedy.replace("|", "\\|")
            lines.append(f"| `{e.code}` | {e.status} | {e.exit_code} | {title} | {remedy} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_markdown())

"""Customer accounts (SPEC §12): which organisation an account number belongs to and the
tariff it bought; the CSV import that keeps them (``python -m bot accounts import``)."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.repositories import AccountRepo
from bot.domain.intake import normalize_account
from bot.domain.tariffs import Tariff, Tariffs

log = logging.getLogger(__name__)

COLUMNS = ("account_number", "organisation", "tariff")
# An account a module knows and the database does not (its CRM, a billing system): the
# organisation and its tariff's code, or None. Asked inside the customer's dialog step, so a
# slow one is given up after LOOKUP_TIMEOUT and the account is taken as unknown.
AccountLookup = Callable[[str], Awaitable[tuple[str, str] | None]]
LOOKUP_TIMEOUT = 3.0
ORGANISATION_MAX = 256
ACCOUNT_MAX = 64


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """A known account: its organisation, and the tariff its tickets are registered under
    (None: the desk sells no tariffs, TARIFFS_FILE is empty)."""

    number: str
    organisation: str
    tariff: Tariff | None


async def account_info(
    session: AsyncSession,
    number: str,
    tariffs: Tariffs,
    lookups: Sequence[AccountLookup] = (),
) -> AccountInfo | None:
    """The account, if imported — else as the first module lookup that knows it says; its
    organisation's tariff if the desk still sells it (else the default one: a tariff removed
    from the file leaves no customer without one). A lookup that fails or is slow is passed
    over: the account is then unknown, and the ticket opens on the default tariff."""
    if not number:
        return None
    found = await AccountRepo(session).lookup(number)
    if found is not None:
        account, organisation = found
        tariff = tariffs.get(organisation.tariff) if tariffs.from_file else None
        return AccountInfo(account.number, organisation.name, tariff)
    for lookup in lookups:
        try:
            answer = await asyncio.wait_for(lookup(number), LOOKUP_TIMEOUT)
        except Exception:
            log.exception("an account lookup failed for account %s; passed over", number)
            continue
        if answer is not None:
            name, code = answer
            tariff = tariffs.get(code) if tariffs.from_file else None
            return AccountInfo(number, name[:ORGANISATION_MAX], tariff)
    return None


# -- the import -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRow:
    line: int
    number: str
    organisation: str
    tariff: str


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParsedAccounts:
    rows: tuple[AccountRow, ...]
    errors: tuple[LineError, ...]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    added: int = 0
    updated: int = 0  # moved to another organisation
    unchanged: int = 0
    organisations_added: int = 0
    organisations_updated: int = 0  # a new tariff


def _delimiter(header: str) -> str:
    """Comma, or the semicolon a spreadsheet in a Russian locale writes, or a tab."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def parse_accounts(text: str, *, pattern: re.Pattern[str], tariffs: Tariffs) -> ParsedAccounts:
    """Every line of the CSV checked; ``errors`` names each bad one with its number (the header
    is line 1). Nothing is written here."""
    text = text.removeprefix("\ufeff")  # a spreadsheet's UTF-8 byte order mark
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return ParsedAccounts((), (LineError(1, f"expected a header: {','.join(COLUMNS)}"),))
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(lines[0]))
    header = [name.strip().lower() for name in next(reader)]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        return ParsedAccounts(
            (),
            (LineError(1, f"no column {', '.join(missing)} (expected {','.join(COLUMNS)})"),),
        )
    where = {name: header.index(name) for name in COLUMNS}
    known = ", ".join(sorted(tariffs.by_code))
    rows: list[AccountRow] = []
    errors: list[LineError] = []
    first_line: dict[str, int] = {}
    tariff_of: dict[str, tuple[str, int]] = {}
    for fields in reader:
        line = reader.line_num
        if not any(field.strip() for field in fields):
            continue  # a blank line
        if len(fields) != len(header):
            errors.append(LineError(line, f"expected {len(header)} fields, got {len(fields)}"))
            continue
        number = normalize_account(fields[where["account_number"]])
        organisation = " ".join(fields[where["organisation"]].split())
        tariff = fields[where["tariff"]].strip()
        reason = None
        if not number:
            reason = "the account number is empty"
        elif len(number) > ACCOUNT_MAX or not pattern.fullmatch(number):
            reason = f"{number!r} is not an account number (ACCOUNT_NUMBER_PATTERN)"
        elif not organisation:
            reason = "the organisation is empty"
        elif len(organisation) > ORGANISATION_MAX:
            reason = f"the organisation's name is longer than {ORGANISATION_MAX} characters"
        elif tariff not in tariffs:
            reason = f"unknown tariff {tariff!r} (TARIFFS_FILE has {known})"
        elif number in first_line:
            reason = f"account {number} is already on line {first_line[number]}"
        elif organisation in tariff_of and tariff_of[organisation][0] != tariff:
            other, at = tariff_of[organisation]
            reason = f"{organisation!r} has tariff {other!r} on line {at}"
        if reason is not None:
            errors.append(LineError(line, reason))
            continue
        first_line[number] = line
        tariff_of.setdefault(organisation, (tariff, line))
        rows.append(AccountRow(line, number, organisation, tariff))
    return ParsedAccounts(tuple(rows), tuple(errors))


async def import_accounts(
    session: AsyncSession, rows: Sequence[AccountRow], now: datetime
) -> ImportSummary:
    """Add or update (upsert) every row in the caller's transaction; accounts the file does not
    name stay as they are. Importing the same file twice changes nothing the second time."""
    repo = AccountRepo(session)
    organisations = await repo.organisations(row.organisation for row in rows)
    org_added = org_updated = 0
    for name, tariff in {row.organisation: row.tariff for row in rows}.items():
        organisation = organisations.get(name)
        if organisation is None:
            organisations[name] = repo.add_organisation(name, tariff, now)
            org_added += 1
        elif organisation.tariff != tariff:
            organisation.tariff = tariff
            organisation.updated_at = now
            org_updated += 1
    await session.flush()  # the new organisations' ids
    accounts = await repo.accounts(row.number for row in rows)
    added = updated = unchanged = 0
    for row in rows:
        organisation = organisations[row.organisation]
        account = accounts.get(row.number)
        if account is None:
            repo.add_account(row.number, organisation, now)
            added += 1
        elif account.organisation_id != organisation.id:
            account.organisation_id = organisation.id
            account.updated_at = now
            updated += 1
        else:
            unchanged += 1
    await session.flush()
    return ImportSummary(added, updated, unchanged, org_added, org_updated)

"""The sandbox's ready world: a staff forum, two customers in Telegram and one by e-mail, two
agents and a manager."""

from __future__ import annotations

from dataclasses import dataclass

from bot.emulator import FakeTelegram, FakeUser

STAFF_CHAT_ID = -1001000000001
SANDBOX_TOKEN = "7000000001:SANDBOX-not-a-real-token"  # noqa: S105 - the emulator's own token
# The desk's mailbox on the sandbox's own mail server (a reserved domain: nothing leaves).
SUPPORT_ADDRESS = "support@e-comet.example"
SUPPORT_NAME = "e-Comet Support"
# The customers' accounts and their organisations' tariffs (static/tariffs.toml): Alice's on
# Premium (round the clock), Boris's on Standard (09:00-21:00).
ALICE_ACCOUNT = "10000001"
BORIS_ACCOUNT = "20000001"
ACCOUNTS_CSV = (
    "account_number,organisation,tariff\n"
    f"{ALICE_ACCOUNT},Romashka LLC,premium\n"
    f"{BORIS_ACCOUNT},Vasilek JSC,standard\n"
)


@dataclass(frozen=True, slots=True)
class Person:
    user: FakeUser
    role: str  # customer, staff, manager
    account: str | None = None  # a customer's account number, known to the desk (tariffs)

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return " ".join(filter(None, (self.user.first_name, self.user.last_name)))


def populate(fake: FakeTelegram) -> list[Person]:
    """Adds the people and the staff group; returns the people in the order the page lists
    them."""
    alice = fake.add_user(1001, "Alice", last_name="Walker", username="alice", language_code="en")
    boris = fake.add_user(1002, "Борис", last_name="Петров", username="boris", language_code="ru")
    svetlana = fake.add_user(
        2001, "Светлана", last_name="Орлова", username="sveta_support", language_code="ru"
    )
    paul = fake.add_user(
        2002, "Paul", last_name="Meyer", username="paul_support", language_code="en"
    )
    # The manager has talked to the bot before, or the daily summary could not reach her.
    marina = fake.add_user(
        3001,
        "Марина",
        last_name="Соколова",
        username="marina_lead",
        language_code="ru",
        started=True,
    )
    fake.add_group(
        STAFF_CHAT_ID,
        "e-Comet support",
        is_forum=True,
        owner=svetlana,
        admins=[svetlana],
        members=[paul, marina],
    )
    return [
        Person(alice, "customer", ALICE_ACCOUNT),
        Person(boris, "customer", BORIS_ACCOUNT),
        Person(svetlana, "staff"),
        Person(paul, "staff"),
        Person(marina, "manager"),
    ]


@dataclass(frozen=True, slots=True)
class MailPerson:
    """A customer who writes by e-mail: no Telegram account, a mailbox on the sandbox's mail
    server. Ids stay clear of the Telegram people's."""

    id: int
    name: str
    address: str
    language: str
    role: str = "customer"


def mail_people() -> list[MailPerson]:
    return [MailPerson(4001, "Olga Smirnova", "olga@example.com", "en")]

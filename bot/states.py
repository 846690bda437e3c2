"""Dialog states. Their data lives in the database (``db.dialog_storage``)."""

from aiogram.fsm.state import State, StatesGroup


class NewRequest(StatesGroup):
    kind = State()
    topic = State()
    description = State()
    account = State()
    screenshots = State()
    confirm = State()


# The order of the steps, for Back.
STEPS: tuple[State, ...] = (
    NewRequest.kind,
    NewRequest.topic,
    NewRequest.description,
    NewRequest.account,
    NewRequest.screenshots,
    NewRequest.confirm,
)


class Feedback(StatesGroup):
    """The customer's words after an answer; ``data["ticket"]`` is the request concerned."""

    dispute_reason = State()
    close_reason = State()
    rating_comment = State()

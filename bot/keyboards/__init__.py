"""Inline keyboards and their CallbackData. Remember: callback_data can be forged.

Every number in callback data is bounded: a forged one out of range (a 20-digit "ticket", a
negative page) does not match its ``CallbackData`` filter, so the press reaches the "this
button is no longer active" handler instead of the database."""

from typing import Annotated

from pydantic import Field

from bot.domain.ids import MAX_ID

Id = Annotated[int, Field(ge=1, le=MAX_ID)]  # ticket numbers, macro ids
Arg = Annotated[int, Field(ge=0, le=MAX_ID)]  # a user id, a priority, a line; 0: none
Page = Annotated[int, Field(ge=0, le=MAX_ID // 1000)]  # times the page size stays in range
Step = Annotated[int, Field(ge=0, le=10_000)]  # which question of the dialog
Score = Annotated[int, Field(ge=0, le=5)]

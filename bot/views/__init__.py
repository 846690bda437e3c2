"""Texts of the desk rendered for a reader: labels, the staff card, customer notices.

Everything here is a sentence passed through gettext in the current locale; user text is
always escaped with ``aiogram.html.quote``.
"""

"""The pure ticket model: kinds, priorities, statuses and the rules between them.

Nothing here knows aiogram or SQL, so the rules can be read and tested alone.
"""

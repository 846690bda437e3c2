"""Outer middlewares put per-update values into handler data: the unit of work (database
session), the current user and their locale."""

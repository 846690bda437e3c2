"""The e-mail channel's message format (SPEC §10): reading incoming mail, composing replies.

Pure: the standard library's ``email`` package, no I/O, no aiogram, no SQL. The IMAP
watcher, the SMTP transport and the services build on it.
"""

"""Requests by e-mail (SPEC §10): the support mailbox, watched over IMAP."""

"""Installable modules (SPEC §12): the API a module is written against (``api``), how the
installed ones are found (``loader``), told about tickets (``hooks``), wired into the running
desk (``runtime``), reported when they fail (``report``) and listed (``cli``)."""

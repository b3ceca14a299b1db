"""What Salesforce answered for one record of a write (sObject Collections or Bulk API)."""

from __future__ import annotations

from typing import NamedTuple

from salesforce.errors import TRANSIENT_CODES


class WriteResult(NamedTuple):
    """One record's answer: written, or refused with Salesforce's status code."""

    id: str
    success: bool
    code: str = ""
    message: str = ""
    created: bool = False

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES

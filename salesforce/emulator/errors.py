"""Errors shaped like Salesforce's REST API answers."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed request: HTTP status plus Salesforce's ``[{message, errorCode}]`` body."""

    def __init__(
        self, status: int, code: str, message: str, *, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        """The REST body of this error."""
        return [{"message": self.message, "errorCode": self.code}]

    def record_error(self) -> dict[str, Any]:
        """This error as one entry of a collections result's ``errors``."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


def bad_request(code: str, message: str, *, fields: list[str] | None = None) -> ApiError:
    """A 400 error."""
    return ApiError(400, code, message, fields=fields)


def not_found(message: str = "The requested resource does not exist") -> ApiError:
    """A 404 ``NOT_FOUND`` error."""
    return ApiError(404, "NOT_FOUND", message)

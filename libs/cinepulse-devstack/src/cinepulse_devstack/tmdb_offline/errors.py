"""TMDB's error answers: the status codes and messages, and the exception carrying one."""

from __future__ import annotations

from cinepulse_devstack.tmdb_offline.data import Json

# TMDB's status codes and messages (https://developer.themoviedb.org/docs/errors).
NOT_FOUND = (404, 34, "The resource you requested could not be found.")
UNAUTHORIZED = (401, 7, "Invalid API key: You must be granted a valid key.")
RATE_LIMITED = (429, 25, "Your request count (#) is over the allowed limit of (40).")
INVALID_INPUT = (400, 47, "The input is not valid.")
SERVER_ERRORS: dict[int, tuple[int, str]] = {
    500: (11, "Internal error: Something went wrong, contact TMDB."),
    502: (43, "Couldn't connect to the backend server."),
    503: (46, "The API is undergoing maintenance. Try again later."),
    504: (24, "Your request to the backend server timed out. Try again."),
}


class TmdbError(Exception):
    """Answered as TMDB's error body ``{"success": false, "status_code", "status_message"}``."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message

    def body(self) -> Json:
        return {"success": False, "status_code": self.code, "status_message": self.message}

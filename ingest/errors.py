"""Errors a user can meet while ingesting; each message says what to do about it."""


class IngestError(Exception):
    """Base class for problems with one input file; the rest of a batch still ingests.

    `code` names the kind of problem for programs (the page words it in Chinese); `reason` explains it.
    """

    code = "unreadable"


class UnreadableFileError(IngestError):
    """The file exists but its bytes cannot be turned into text (encoding, format, corruption)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class EmptyDocumentError(IngestError):
    """The file decoded, but nothing readable is left after cleaning."""

    code = "empty"

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: no readable text after removing boilerplate and garbage")
        self.path = path
        self.reason = "no readable text after removing boilerplate and garbage"


class TooManyClausesError(IngestError):
    """The file cuts into more clauses than any policy document has: a data dump, a table export, a one-line text."""

    code = "too_many_clauses"

    def __init__(self, path: str, limit: int) -> None:
        self.path = path
        self.reason = (f"produced more than {limit:,} clauses; the largest laws and policy documents make a few "
                       "hundred: split the file into its documents, or check that it is policy text")
        super().__init__(f"{path}: {self.reason}")

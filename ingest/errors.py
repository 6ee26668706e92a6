"""Errors a user can meet while ingesting; each message says what to do about it."""


class IngestError(Exception):
    """Base class for problems with one input file; the rest of a batch still ingests."""


class UnreadableFileError(IngestError):
    """The file exists but its bytes cannot be turned into text (encoding, format, corruption)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class EmptyDocumentError(IngestError):
    """The file decoded, but nothing readable is left after cleaning."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: no readable text after removing boilerplate and garbage")
        self.path = path
        self.reason = "no readable text after removing boilerplate and garbage"

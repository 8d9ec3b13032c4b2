"""Types of the C module ``runtime/_leaving.c`` (see ``runtime/_tx.py``)."""

class Leaving:
    def __exit__(self, exc_type: object, exc: object, tb: object, /) -> None: ...

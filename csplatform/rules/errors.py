class CriteriaError(ValueError):
    """A criteria text or stored criteria that cannot be used, and why.

    `position` is the 0-based character offset in the text (None for stored
    JSON, which has no text positions), `line` and `column` are 1-based, and
    `field` names the unknown or mistyped field when there is one.
    """

    def __init__(self, message, *, position=None, line=None, column=None, field=None):
        self.message = message
        self.position = position
        self.line = line
        self.column = column
        self.field = field
        super().__init__(str(self))

    def __str__(self):
        if self.line is None:
            return self.message
        return f"Line {self.line}, column {self.column}: {self.message}"

    @classmethod
    def at(cls, pos, message, *, field=None):
        """An error located at a node's position (`pos` may be None for stored criteria)."""
        if pos is None:
            return cls(message, field=field)
        return cls(message, position=pos.offset, line=pos.line, column=pos.column, field=field)

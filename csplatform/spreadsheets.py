"""CSV files streamed a line at a time, and cells that a spreadsheet shows rather than runs."""

import csv

# Spreadsheets run a cell that starts with one of these as a formula (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file whose write() hands the line back, so csv.writer formats a line without buffering the file."""

    def write(self, value):
        return value


def line_writer():
    """A csv writer whose writerow() returns the formatted line, for a streamed response to yield."""
    return csv.writer(_Echo())


def as_text(value):
    """Free text as a cell a spreadsheet shows rather than runs: a leading quote before a formula's first sign."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value

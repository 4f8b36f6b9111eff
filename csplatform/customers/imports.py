"""CSV import of accounts and contacts: every row or none.

The file is UTF-8 text (a byte-order mark, as Excel writes, is fine) whose
first row names the columns:

- each column is a writable field of the accounts or contacts API, with the
  same formats: `external_id` is required, an account's `owner` is a
  member's email, a contact's `account` is its account's external id,
  dates are YYYY-MM-DD;
- a column named `attributes.<key>` fills `attributes[<key>]` with the cell's
  text, merged into the stored attributes;
- any other column is an error, so a misspelt header cannot drop a column
  without anyone noticing.

Rows are upserted by external id. An empty cell leaves the stored value as
it is (or the default on a new row). Rows are numbered as a spreadsheet shows
them, the header being row 1. If any row is invalid nothing is imported and
the error lists every problem as `{"row", "column", "code", "message"}`.
"""

import csv
import dataclasses
import io

from django.db import transaction
from rest_framework import serializers

from . import services
from .api.serializers import AccountUpsertSerializer, ContactUpsertSerializer, validate_upsert_batch

MAX_IMPORT_BYTES = 10 * 1024 * 1024
ATTRIBUTE_PREFIX = "attributes."

KINDS = {
    "accounts": (AccountUpsertSerializer, services.account_bulk_upsert),
    "contacts": (ContactUpsertSerializer, services.contact_bulk_upsert),
}


class CsvImportError(Exception):
    def __init__(self, message, problems=(), code="invalid_csv"):
        super().__init__(message)
        self.message = message
        self.problems = list(problems)
        self.code = code


@dataclasses.dataclass(frozen=True)
class ImportResult:
    rows: int
    created: int
    updated: int

    def as_dict(self):
        return dataclasses.asdict(self)


def problem(row, column, code, message):
    return {"row": row, "column": column, "code": code, "message": str(message)}


def too_large_message():
    return f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; split it into smaller files."


@transaction.atomic
def csv_import(*, tenant, kind, content, actor=None):
    """Import `content` (the file's bytes) as `kind` ("accounts" or "contacts"), as `actor`.

    1. Decode and read the header and rows; a bad header stops here.
    2. Validate all rows as one batch (the same rules as the bulk API).
    3. Any problem: raise CsvImportError with all of them, write nothing.
    4. Otherwise upsert every row and return the counts.
    """
    serializer_class, bulk_upsert = KINDS[kind]
    rows, problems = read_rows(decode(content), list(writable_fields(kind)))
    valid, errors = validate_upsert_batch(serializer_class, [item for _, item in rows], tenant=tenant)
    problems += [problem(rows[e["index"]][0], e["field"], e["code"], e["message"]) for e in errors]
    if problems:
        problems.sort(key=lambda p: p["row"])
        bad_rows = len({p["row"] for p in problems})
        raise CsvImportError(f"{bad_rows} row(s) have errors; nothing was imported.", problems)
    created, updated = bulk_upsert(tenant=tenant, items=valid, actor=actor)
    return ImportResult(rows=len(valid), created=created, updated=updated)


def writable_fields(kind):
    """{name: serializer field} of the columns a file of `kind` may have (besides `attributes.<key>`)."""
    serializer_class, _ = KINDS[kind]
    return {name: field for name, field in serializer_class().fields.items() if not field.read_only}


def column_guide(kind):
    """What each column of a file of `kind` holds, for people writing one: `[(column, required, meaning)]`."""
    guide = []
    for name, field in writable_fields(kind).items():
        if name == "attributes":
            name, meaning = f"{ATTRIBUTE_PREFIX}<key>", "Any other fact, as text, merged into the stored attributes."
        else:
            meaning = " ".join(filter(None, [field_format(field), field.help_text]))
        # Every row names its record by external id; the other columns may be left out.
        guide.append((name, name == "external_id", meaning))
    return guide


def field_format(field):
    """How a cell of this serializer field is written."""
    if isinstance(field, serializers.ChoiceField):
        return f"One of: {', '.join(map(str, field.choices))}."
    formats = [
        (serializers.DateTimeField, "A date and time, ISO 8601 (2026-03-01T09:00:00Z)."),
        (serializers.DateField, "A date, YYYY-MM-DD."),
        (serializers.DecimalField, "A number (1250.00)."),
        (serializers.BooleanField, "true or false."),
        (serializers.EmailField, "An email address."),
    ]
    return next((text for kind, text in formats if isinstance(field, kind)), "")


def header_row(kind):
    """The header row of an empty file of `kind`, every column in the order the guide lists them."""
    return [name for name in writable_fields(kind) if name != "attributes"]


def decode(content):
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvImportError(
            f"The file is not UTF-8 text (byte {exc.start + 1} is not valid UTF-8). "
            "Save it as 'CSV UTF-8' and try again.",
            code="bad_encoding",
        ) from exc
    if not text.strip():
        raise CsvImportError("The file is empty; its first row must name the columns.", code="empty_file")
    return text


def read_rows(text, writable):
    """`([(row_number, item)], problems)` for the file's text; a bad header raises."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, problems = [], []
    try:
        columns = read_header(next(reader), writable)
        for row_number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(columns):
                problems.append(
                    problem(row_number, None, "cell_count", f"Has {len(cells)} cells; the header has {len(columns)}.")
                )
                continue
            rows.append((row_number, row_item(columns, cells)))
    except csv.Error as exc:
        raise CsvImportError(f"Row {reader.line_num} is not valid CSV: {exc}.", code="malformed_csv") from exc
    return rows, problems


def read_header(header, writable):
    columns = [name.strip() for name in header]
    problems = []
    for position, name in enumerate(columns, start=1):
        if not name:
            problems.append(problem(1, None, "blank_column", f"Column {position} has no name."))
        elif columns.index(name) != position - 1:
            problems.append(problem(1, name, "duplicate_column", "This column appears more than once."))
        elif name.startswith(ATTRIBUTE_PREFIX):
            if not name[len(ATTRIBUTE_PREFIX) :]:
                problems.append(problem(1, name, "unknown_column", "Name the attribute: attributes.<key>."))
        elif name == "attributes" or name not in writable:
            problems.append(
                problem(
                    1,
                    name,
                    "unknown_column",
                    f"Unknown column. Use {', '.join(f for f in writable if f != 'attributes')} "
                    "or attributes.<key>.",
                )
            )
    if "external_id" not in columns:
        problems.append(problem(1, "external_id", "required", "The header must have an external_id column."))
    if problems:
        raise CsvImportError("The header row is invalid; nothing was imported.", problems)
    return columns


def row_item(columns, cells):
    """The upsert item of one row: empty cells are left out, `attributes.*` cells nested."""
    item = {}
    for name, cell in zip(columns, cells):
        value = cell.strip()
        if not value:
            continue
        if name.startswith(ATTRIBUTE_PREFIX):
            item.setdefault("attributes", {})[name[len(ATTRIBUTE_PREFIX) :]] = value
        else:
            item[name] = value
    return item

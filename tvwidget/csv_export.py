"""CSV downloads: text a spreadsheet will not run as a formula, streamed in chunks.

The reports and the audit log export through ``response``; a file starts
with a byte-order mark, so Excel reads UTF-8 (Japanese) correctly.
"""
import csv
import io
from collections.abc import Iterable, Iterator

from flask import Response, stream_with_context

# Text a spreadsheet would run as a formula (CSV injection); such a cell gets a leading ' to stay text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """Return ``value`` as CSV cell text ("" for None), with a ' before anything that starts like a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def chunks(rows: Iterable[list], every: int = 2000) -> Iterator[str]:
    """Yield ``rows`` as CSV text (RFC 4180 quoting, CRLF) ``every`` rows at a time, starting with a BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= every:
            writer.writerows(batch)
            batch.clear()
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    writer.writerows(batch)
    yield buffer.getvalue()


def response(rows: Iterable[list], filename: str) -> Response:
    """Return a streamed ``text/csv`` download of ``rows`` named ``filename`` (an ASCII name).

    The rows are produced while the response streams, inside the request's
    context, so a query behind them reads with the request's session.
    """
    return Response(stream_with_context(chunks(rows)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})

"""CSV downloads (tvwidget.csv_export): formula-looking text stays text; the file streams with a BOM."""
import csv
import io

import pytest

from tvwidget import csv_export


@pytest.mark.parametrize(("value", "written"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("Printer", "Printer"), ("a=b", "a=b"), ("", ""), (None, ""), (42, "42"), ("山田", "山田"),
])
def test_cell_keeps_formula_looking_text_as_text(value, written):
    assert csv_export.cell(value) == written


def test_chunks_streams_rows_every_n_after_a_bom():
    rows = [["id", "name"]] + [[i, f"name, {i}"] for i in range(5)]
    parts = list(csv_export.chunks(iter(rows), every=2))
    assert parts[0] == "\ufeff"
    assert len(parts) == 5  # BOM, three full batches of two, the empty rest
    text = "".join(parts)
    assert "\r\n" in text
    assert list(csv.reader(io.StringIO(text[1:]))) == [[str(v) for v in row] for row in rows]

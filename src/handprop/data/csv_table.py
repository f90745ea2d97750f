"""What a CSV reader hands on: the header, and each column as numbers or as its texts."""

from collections.abc import Callable, Sequence

from handprop._types import Array

#: Cells read as missing, besides the empty cell (compared in lower case).
MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


class CsvTable:
    """A CSV file's header and N data rows; ``cells(j)``: column j as float64 numbers (N,),
    or its cells' texts when a reader left them as text."""

    def __init__(self, header: list[str], delimiter: str, n: int, lines: list[int] | None,
                 cells: Callable[[int], Array | Sequence[str]]) -> None:  # fmt: skip
        self.header, self.delimiter, self.n = header, delimiter, n
        self.lines = lines  # each row's line number; None: row i is on line i + 2
        self.cells = cells

    def line(self, row: int) -> int:
        return row + 2 if self.lines is None else self.lines[row]

    def locate(self, row: int) -> str:
        return f"line {self.line(row)}"

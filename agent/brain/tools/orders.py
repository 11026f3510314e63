"""Order lookup from the CSV the admin points to (config tools.orders)."""

from __future__ import annotations

import csv
from pathlib import Path

from agent.config import OrdersTool


class OrdersError(Exception):
    pass


class Orders:
    def __init__(self, rows: list[dict[str, str]], rules: OrdersTool) -> None:
        self.rules = rules
        self._by_number = {row[rules.number_column].strip(): row for row in rows}

    @classmethod
    def from_config(cls, rules: OrdersTool, config_dir: Path) -> Orders:
        path = (config_dir / rules.csv).resolve()
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            raise OrdersError(f"{path}: cannot read the orders table ({exc.strerror})") from None
        needed = [rules.number_column, rules.status_column, *rules.details_columns]
        if rows and (missing := [c for c in needed if c not in rows[0]]):
            raise OrdersError(f"{path}: missing column(s) {', '.join(missing)}")
        return cls(rows, rules)

    def lookup(self, number: str) -> dict[str, str] | None:
        return self._by_number.get(number.strip())

    def open_order_for(self, phone: str) -> dict[str, str] | None:
        """The caller's most recent order not in a closed status (for caller-ID context)."""
        column = self.rules.phone_column
        if not column or not phone:
            return None
        mine = [
            r
            for r in self._by_number.values()
            if r.get(column) == phone and r[self.rules.status_column] not in self.rules.closed_statuses
        ]
        return mine[-1] if mine else None

"""One page of a long admin list, chosen by the database: the page and page size asked
for (capped), a sort column from a whitelist with the id as tie-break (so rows never
repeat or vanish between pages), and the caller's filters already in the query. A fleet
of 10,000 phones is never loaded into Python to show 50 of them.

Bad parameters raise :class:`ListParamError` with a message an admin can act on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from peewee import Node

MAX_PAGE = 100_000
QUERY_MAX = 64


class ListParamError(ValueError):
    """A page, page size or sort the list does not have."""


@dataclass(frozen=True)
class Sorts:
    """The columns a list may be sorted by (name -> column), and its default order."""

    columns: Mapping[str, Node]
    default: str
    default_descending: bool = False
    tie: Node | None = None  # the id column; None = the query model's primary key


@dataclass(frozen=True)
class ListParams:
    page: int = 1
    per_page: int = 50
    sort: str = ""
    descending: bool = False
    q: str = ""

    @property
    def sort_arg(self) -> str:
        """The ``sort=`` value that asks for this order (``-name`` = descending)."""
        return ("-" if self.descending else "") + self.sort


def _whole(raw: str | None, name: str, default: int, top: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or not 1 <= int(text) <= top:
        raise ListParamError(f"{name} must be a whole number from 1 to {top}")
    return int(text)


def parse(args: Mapping[str, str], sorts: Sorts, per_page: int,
          max_per_page: int) -> ListParams:
    """``page``, ``per_page``, ``sort`` (a column name, ``-name`` for descending) and ``q``
    from a query string."""
    page = _whole(args.get("page"), "page", 1, MAX_PAGE)
    size = _whole(args.get("per_page"), "per_page", per_page, max_per_page)
    raw = (args.get("sort") or "").strip()
    if raw:
        descending, name = raw.startswith("-"), raw.removeprefix("-")
        if name not in sorts.columns:
            raise ListParamError(f"sort must be one of {', '.join(sorted(sorts.columns))} "
                                 "(prefix - for descending)")
    else:
        descending, name = sorts.default_descending, sorts.default
    return ListParams(page=page, per_page=size, sort=name, descending=descending,
                      q=(args.get("q") or "").strip()[:QUERY_MAX])


@dataclass
class Page:
    items: list[Any]
    total: int
    params: ListParams
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max((self.total + self.params.per_page - 1) // self.params.per_page, 1)

    @property
    def has_previous(self) -> bool:
        return self.params.page > 1

    @property
    def has_next(self) -> bool:
        return self.params.page < self.pages

    @property
    def first_row(self) -> int:
        return (self.params.page - 1) * self.params.per_page + 1 if self.items else 0

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.items) - 1 if self.items else 0


def fetch(query, count_query, params: ListParams, sorts: Sorts) -> Page:  # type: ignore[no-untyped-def]
    """The page of ``query`` (already scoped and filtered) that ``params`` ask for, and
    the number of rows ``count_query`` (the same filters, without display-only joins)
    counts.

    The page's ids are chosen first, from the narrowest query that can sort them (an
    index walk: a deep page skips ids, not joined rows); then only those rows are read
    with their joins."""
    column = sorts.columns[params.sort]
    tie = sorts.tie if sorts.tie is not None else query.model._meta.primary_key
    # NULL sorts as the smallest value on SQLite and PostgreSQL alike.
    nulls = ("LAST" if params.descending else "FIRST") if getattr(column, "null", False) \
        else None
    order = [column.desc(nulls=nulls), tie.desc()] if params.descending else \
        [column.asc(nulls=nulls), tie.asc()]
    narrow = count_query if getattr(column, "model", None) is query.model else query
    ids = [row[0] for row in narrow.select(tie).order_by(*order).limit(params.per_page)
           .offset((params.page - 1) * params.per_page).tuples()]
    rows = {row.get_id(): row for row in query.where(tie.in_(ids)).order_by()} if ids else {}
    return Page(items=[rows[i] for i in ids if i in rows],
                total=count_query.order_by().count(), params=params)


def like_any(q: str, *columns: Node) -> Node:
    """Case-insensitive substring match of ``q`` on any of ``columns`` (wildcards in
    ``q`` are matched literally)."""
    condition = columns[0].contains(q)
    for column in columns[1:]:
        condition |= column.contains(q)
    return condition


def mac_fragment(q: str) -> str:
    """The hex digits of ``q`` when it looks like (part of) a MAC in any spelling
    ("00:15:65", "0015.65"), so it matches the stored 12 lower-case digits; "" if not."""
    digits = "".join(ch for ch in q.lower() if ch not in ":-. ")
    return digits if len(digits) >= 2 and all(c in "0123456789abcdef" for c in digits) else ""

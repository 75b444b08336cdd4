"""Paging, sorting and filtering parameters of the long lists, for the pages (links that
keep the other parameters) and the API (paging fields and an RFC 8288 ``Link`` header)."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, request, url_for
from werkzeug.wrappers import Response

from hotdesk.admin import listing
from hotdesk.admin.listing import ListParams, Page, Sorts

PAGE_PER_PAGE = 50  # rows on a page by default
API_PER_PAGE = 100  # rows in an API answer by default
MAX_PER_PAGE = 500


def params(sorts: Sorts, per_page: int = PAGE_PER_PAGE) -> ListParams:
    """The request's page, per_page, sort and q; a bad one is a 400 that says why."""
    try:
        return listing.parse(request.args, sorts, per_page, MAX_PER_PAGE)
    except listing.ListParamError as exc:
        abort(400, str(exc))


def link(listing: Page, /, external: bool = False, **changes: Any) -> str:
    """This list's URL with ``changes`` ("" drops a parameter), its other parameters kept
    (``listing`` is the page shown, for the templates' symmetry)."""
    args = request.args.to_dict()
    args.update({k: str(v) for k, v in changes.items()})
    args = {k: v for k, v in args.items() if v not in ("", "None")}
    assert request.endpoint is not None
    return url_for(request.endpoint, _external=external, **(request.view_args or {}), **args)


def sort_link(page: Page, key: str) -> str:
    """The header link: sort by ``key``; again on the current column flips the order."""
    p = page.params
    flip = p.sort == key and not p.descending
    return link(page, sort=("-" if flip else "") + key, page="")


def page_numbers(page: Page, around: int = 2) -> list[int | None]:
    """Page links to show: first, last and a few around the current one (None = gap)."""
    current, last = page.params.page, page.pages
    wanted = sorted({1, last, *range(max(current - around, 1), min(current + around, last) + 1)})
    out: list[int | None] = []
    for n in wanted:
        if out and n - (out[-1] or 0) > 1:
            out.append(None)
        out.append(n)
    return out


def template_context(page: Page) -> dict[str, Any]:
    return {"listing": page, "link": link, "sort_link": sort_link,
            "page_numbers": page_numbers}


def api_answer(key: str, rows: list[dict[str, Any]], page: Page,
               **more: Any) -> Response:
    """``{key: rows, page, per_page, total, pages, next, previous}`` and a ``Link`` header
    with the next/prev/first/last pages."""
    p = page.params
    nxt = link(page, external=True, page=p.page + 1) if page.has_next else None
    prev = link(page, external=True, page=p.page - 1) if page.has_previous else None
    response = jsonify({key: rows, "page": p.page, "per_page": p.per_page,
                        "total": page.total, "pages": page.pages, "next": nxt,
                        "previous": prev, **more})
    rels = {"next": nxt, "prev": prev, "first": link(page, external=True, page=1),
            "last": link(page, external=True, page=page.pages)}
    response.headers["Link"] = ", ".join(f'<{url}>; rel="{rel}"'
                                         for rel, url in rels.items() if url)
    return response

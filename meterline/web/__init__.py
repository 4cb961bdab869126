"""The dashboard (SPEC §2): server-rendered pages over the same services as the admin API."""

from fastapi import APIRouter

from meterline.web import bills, login, overview


def router() -> APIRouter:
    combined = APIRouter(include_in_schema=False)
    for module in (login, overview, bills):
        combined.include_router(module.router)
    return combined

"""The dashboard (SPEC §2): server-rendered pages over the same services as the admin API."""

from fastapi import APIRouter

from meterline.web import bills, limits, login, overview, usage


def router() -> APIRouter:
    combined = APIRouter(include_in_schema=False)
    for module in (login, overview, usage, bills, limits):
        combined.include_router(module.router)
    return combined

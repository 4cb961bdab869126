"""Bill exports: CSV and XLSX for people (English or Chinese headers), FOCUS CSV for FinOps tools.

Adapters over :mod:`meterline.domain.bills`; standard library only. Every export shows the bill's
lines and its total, and the amounts add up to the total exactly (see docs/bills.md).
"""

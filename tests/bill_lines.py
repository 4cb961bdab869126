"""Bill lines written as compact text, shared by the bill and export tests."""

from __future__ import annotations

from decimal import Decimal

from meterline.domain.bills import BillLine, adjustment_lines


def lines(text: str) -> list[BillLine]:
    """Rows of ``model meter quantity unit unit_price amount [refund] [adj=YYYY-MM]``.

    Underscores in the unit stand for spaces ("1M_tokens").
    """
    out = []
    for row in text.strip().splitlines():
        model, meter, quantity, unit, price, amount, *flags = row.split()
        adjustment = next((f[4:] for f in flags if f.startswith("adj=")), None)
        out.append(BillLine(model, meter, Decimal(quantity), unit.replace("_", " "),
                            Decimal(price), Decimal(amount), adjustment_of=adjustment,
                            refund="refund" in flags))
    return out


#: A November bill's lines: tokens, images, seconds, characters and a refund.
NOVEMBER = lines("""
    openai/gpt-4o-mini     input_tokens   1234567  1M_tokens     0.15   0.18518505
    openai/gpt-4o-mini     output_tokens  333333   1M_tokens     0.6    0.1999998
    qwen/wanx-v1           images         7        image         0.2    1.4
    volcano/seedance       seconds        12.5     second        0.03   0.375
    openai/gpt-4o-mini-tts characters     12345    1K_characters 0.015  0.185175
    qwen/wanx-v1           images         -2       image         0.2    -0.4   refund
""")
#: Late usage of October, carried by the November bill.
LATE = adjustment_lines("2026-10", lines(
    "deepseek/deepseek-chat output_tokens 1000 1M_tokens 2 0.002"))

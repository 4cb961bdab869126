"""The providers' console bill exports (``meterline sync --file F --format P``), each by the
column layout its provider documents, and where none is published, by the names its API gives
the same fields (said so below).

- ``aliyun``: the detail bill files (详单文件格式, help.aliyun.com/document_detail/89133.html,
  the same columns as the console's export): the day ``BillingDate`` (daily files) else
  ``UsageStartTime`` to ``UsageEndTime``; ``PretaxAmount`` (应付金额) in ``Currency``; the model
  the ``InstanceSpec``, else the ``BillingItem``, else the product.
- ``tencent``: the bill details export (Fields in Bills, www.tencentcloud.com/document/product/
  555/37506): ``Usage Start Time`` to ``Usage End Time``; ``Total Amount After Discount
  (Excluding Tax)``; the model the ``Component Name``, else the ``Subproduct Name``, else the
  ``Product Name``.
- ``volcano``: the bill details export, whose columns are ``ListBillDetail``'s fields
  (www.volcengine.com/docs/6269/1127842): ``ExpenseDate`` (账单日期), ``PayableAmount``
  (应付金额), ``Currency``; the model ``ConfigName``, else ``InstanceName``, else ``Element``.
- ``baidu``: the resource bill export (账单字段及其说明, cloud.baidu.com/doc/Finance/s/
  vmu0sxmzr): ``账单时间`` (a time or a span ``a ~ b``), ``应付金额``; the model ``计费项``,
  else ``配置``, else ``产品名称``.
- ``deepseek``, ``openai``, ``anthropic``: their consoles' usage and cost exports have no
  published column layout; the names read are the ones their APIs use for the same fields
  (OpenAI's costs object flattened: ``start_time``, ``line_item``, ``amount_value``,
  ``amount_currency``), with the consoles' English headers as alternatives.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final

from meterline.billing.formats.table import Layout, read
from meterline.billing.lines import BilledLine

LAYOUTS: Final = {layout.format: layout for layout in (
    Layout("aliyun", "qwen",
           start=("BillingDate", "账单日期", "UsageStartTime", "账单开始时间"),
           end=("UsageEndTime", "账单结束时间"), amount=("PretaxAmount", "应付金额"),
           model=("InstanceSpec", "实例规格", "BillingItem", "计费项", "ProductCode", "产品代码",
                  "ProductName", "产品")),
    Layout("tencent", "tencent",
           start=("Usage Start Time", "使用开始时间", "FeeBeginTime"),
           end=("Usage End Time", "使用结束时间", "FeeEndTime"),
           amount=("Total Amount After Discount (Excluding Tax)", "折后总价（不含税）",
                   "折后总价", "RealCost"),
           model=("Component Name", "ComponentName", "组件名称", "Subproduct Name", "子产品名称",
                  "Product Name", "产品名称")),
    Layout("volcano", "volcano",
           start=("ExpenseDate", "账单日期", "ExpenseBeginTime", "消费开始时间"),
           end=("ExpenseEndTime", "消费结束时间"), amount=("PayableAmount", "应付金额"),
           model=("ConfigName", "配置名称", "InstanceName", "实例名称", "Element", "计费项",
                  "Product", "产品")),
    Layout("baidu", "baidu", start=("账单时间", "startTime"), end=("endTime",),
           amount=("应付金额", "financePrice"),
           model=("计费项", "chargeItem", "配置", "configurationCH", "产品名称", "serviceType")),
    Layout("deepseek", "deepseek", start=("date", "Date", "日期", "usage_date"),
           amount=("cost", "Cost", "amount", "金额", "费用"),
           model=("model", "Model", "模型"), currency=("currency", "Currency", "币种")),
    Layout("openai", "openai", start=("start_time_iso", "start_time", "date", "Date"),
           amount=("amount_value", "cost", "Cost", "cost_usd"),
           model=("line_item", "model", "Model"), currency=("amount_currency", "currency"),
           default_currency="USD", model_until_comma=True),
    Layout("anthropic", "anthropic", start=("usage_date_utc", "date", "Date", "starting_at"),
           amount=("cost_usd", "Cost (USD)", "cost"),
           model=("model", "Model", "usage_type", "description", "cost_type"),
           currency=("currency",),
           default_currency="USD"),
)}

Reader = Callable[..., list[BilledLine]]
READERS: Final[dict[str, Reader]] = {name: partial(read, layout=layout)
                                     for name, layout in LAYOUTS.items()}

"""One connector a provider's billing API, by the provider's name in ``[[bill_sources]]``."""

from __future__ import annotations

from typing import Final

from meterline.billing.connectors.aliyun import Aliyun
from meterline.billing.connectors.baidu import Baidu
from meterline.billing.connectors.base import Base, Connector, Period, period_of
from meterline.billing.connectors.keyed import Anthropic, DeepSeek, OpenAI
from meterline.billing.connectors.tencent import Tencent
from meterline.billing.connectors.volcano import Volcano

CONNECTORS: Final[dict[str, type[Base]]] = {
    "aliyun": Aliyun, "tencent": Tencent, "volcano": Volcano, "baidu": Baidu,
    "deepseek": DeepSeek, "openai": OpenAI, "anthropic": Anthropic,
}

__all__ = ["CONNECTORS", "Connector", "Period", "period_of"]

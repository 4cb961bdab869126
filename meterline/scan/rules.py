"""The rule table of ``meterline scan``: what an AI call that bypasses the gateway looks like.

Every rule is one row of :data:`RULES`: provider, kind, languages, a line pattern, severity and
the fix. Hosts are matched in every language and are ``high``: a literal provider URL cannot be
pointed at the gateway. SDK imports are ``medium``: the client may already be built with the
gateway's base URL. ``gateway_compatible`` says whether that is possible at all: the gateway
speaks the OpenAI and Anthropic wire formats, so only SDKs of those formats (and wrappers around
them) can be redirected; for the others the fix is to call the model through the gateway's
OpenAI-compatible endpoint instead.

Patterns are compiled with ``re.MULTILINE`` and never cross a line end, so a match's start gives
its line. ``needles`` are lower-case literals of which a matching file must hold at least one;
they let the scanner skip a rule without running its regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

Language = Literal["python", "javascript", "java", "go"]
Severity = Literal["high", "medium", "low"]
Kind = Literal["provider_host", "sdk_import"]

SEVERITIES: Final[tuple[Severity, ...]] = ("high", "medium", "low")

#: File suffix -> language. ``.mts``/``.cts`` are TypeScript's ES-module and CommonJS forms.
EXTENSIONS: Final[dict[str, Language]] = {
    ".py": "python",
    **dict.fromkeys((".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs"),
                    "javascript"),
    ".java": "java",
    ".go": "go",
}

#: A line that starts with one of these is a comment: a URL or import in it makes no call.
COMMENT_PREFIXES: Final[dict[Language, tuple[str, ...]]] = {
    "python": ("#",),
    "javascript": ("//", "/*", "*"),
    "java": ("//", "/*", "*"),
    "go": ("//", "/*", "*"),
}

SUPPRESS: Final = re.compile(r"meterline:[ \t]*allow\b", re.IGNORECASE)

#: A client built with a base URL (``base_url=``, ``baseURL:``, ``.baseUrl(``,
#: ``option.WithBaseURL(``, ``OPENAI_BASE_URL=``, litellm's ``api_base=``). Comparisons (``==``)
#: are not settings.
BASE_URL: Final = re.compile(
    r"(?<![a-z0-9])(?:base_?url|api_base|base_http_api_url|withbaseurl)['\"\]]*[ \t]*"
    r"(?:=(?!=)|:|\()", re.IGNORECASE)

PROVIDER_NAMES: Final[dict[str, str]] = {
    "openai": "OpenAI", "azure-openai": "Azure OpenAI", "anthropic": "Anthropic",
    "google": "Google Gemini/Vertex AI", "dashscope": "DashScope (Qwen)",
    "volcengine": "Volcengine Ark", "qianfan": "Baidu Qianfan", "zhipuai": "Zhipu AI",
    "hunyuan": "Tencent Hunyuan", "mistral": "Mistral", "cohere": "Cohere", "litellm": "LiteLLM",
    "groq": "Groq", "deepseek": "DeepSeek", "moonshot": "Moonshot (Kimi)", "xai": "xAI",
    "openrouter": "OpenRouter", "together": "Together AI", "fireworks": "Fireworks AI",
    "perplexity": "Perplexity", "bedrock": "Amazon Bedrock", "minimax": "MiniMax",
    "siliconflow": "SiliconFlow", "stepfun": "StepFun", "baichuan": "Baichuan",
    "lingyiwanwu": "01.AI",
}

ALL_LANGUAGES: Final[frozenset[Language]] = frozenset(("python", "javascript", "java", "go"))


@dataclass(frozen=True, slots=True)
class Rule:
    provider: str
    kind: Kind
    languages: frozenset[Language]
    pattern: re.Pattern[str]
    severity: Severity
    fix: str
    needles: tuple[str, ...]
    gateway_compatible: bool = False
    #: A line this matches is not a finding even though ``pattern`` matched it.
    unless: re.Pattern[str] | None = None


# --- pattern builders: one per import syntax, and one for hosts -------------------------------

def _alternatives(names: Iterable[str]) -> str:
    return "|".join(re.escape(n) for n in names)


def _python(modules: tuple[str, ...]) -> re.Pattern[str]:
    """``import a, m as x``, ``from m.sub import y`` and, for ``p.m``, ``from p import m``."""
    forms = []
    for module in modules:
        name = re.escape(module)
        forms.append(rf"import[ \t]+(?:[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*{name}(?!\w)")
        forms.append(rf"from[ \t]+{name}(?:\.[\w.]+)?[ \t]+import\b[^\n#;]*")
        parent, dot, leaf = module.rpartition(".")
        if dot:
            forms.append(rf"from[ \t]+{re.escape(parent)}[ \t]+import[ \t]+(?:\([ \t]*)?"
                         rf"(?:\w+(?:[ \t]+as[ \t]+\w+)?[ \t]*,[ \t]*)*{re.escape(leaf)}(?!\w)"
                         r"[^\n#;]*")
    return re.compile(rf"(?:^|(?<=;))[ \t]*(?:{'|'.join(forms)})", re.MULTILINE)


def _javascript(packages: tuple[str, ...]) -> re.Pattern[str]:
    """``… from 'p'``, ``import 'p'``, ``import('p')``, ``require('p')``; subpaths too."""
    return re.compile(r"(?:\bfrom|\bimport[ \t]*\(?|\brequire[ \t]*\()[ \t]*(['\"`])"
                      rf"(?:{_alternatives(packages)})(?:/[^'\"`\n]*)?\1(?:[ \t]*\))?",
                      re.MULTILINE)


def _java(packages: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*import[ \t]+(?:static[ \t]+)?(?:{_alternatives(packages)})"
                      r"(?=[.;])[\w.*]*[ \t]*;?", re.MULTILINE)


def _go(paths: tuple[str, ...]) -> re.Pattern[str]:
    """A line of an import block (or a one-line import), optionally aliased."""
    return re.compile(r"^[ \t]*(?:import[ \t]*\(?[ \t]*)?(?:[\w.]+[ \t]+)?\""
                      rf"(?:{_alternatives(paths)})(?:/[^\"\n]*)?\"[ \t]*\)?[ \t]*(?://[^\n]*)?$",
                      re.MULTILINE)


_BUILDERS = {"python": _python, "javascript": _javascript, "java": _java, "go": _go}

#: ``import type … from 'openai'`` brings in types only: no call can come from it.
_TYPE_ONLY = re.compile(r"^[ \t]*(?:import|export)[ \t]+type\b")


def _host(globs: tuple[str, ...]) -> re.Pattern[str]:
    """Hosts where ``*`` stands for one DNS label; the match runs on to the end of the URL."""
    hosts = "|".join(re.escape(g).replace(r"\*", r"[\w-]+") for g in globs)
    return re.compile(rf"(?:(?:https?|wss?)://|(?<![\w.-]))(?:{hosts})(?![\w-]|\.[\w-])"
                      r"(?::\d+)?(?:/[^\s\"'`<>()\[\]{},;$]*)?", re.IGNORECASE)


def sdk(provider: str, language: Language, *modules: str, fix: str,
        compatible: bool = False) -> Rule:
    return Rule(provider, "sdk_import", frozenset((language,)), _BUILDERS[language](modules),
                "medium", fix, tuple(m.rpartition(".")[2].lower() for m in modules),
                gateway_compatible=compatible,
                unless=_TYPE_ONLY if language == "javascript" else None)


def host(provider: str, *globs: str, fix: str | None = None) -> Rule:
    needles = tuple(max(g.split("*"), key=len).lower() for g in globs)
    return Rule(provider, "provider_host", ALL_LANGUAGES, _host(globs), "high",
                fix or _HOST_FIX, needles)


# --- fixes -------------------------------------------------------------------------------------

GW = "https://<gateway>"
KEY = "<meterline key>"
_HOST_FIX = (f'send the request to the meterline gateway instead: POST {GW}/v1/chat/completions '
             f'(OpenAI format, model "<provider>/<model>") with Authorization: Bearer {KEY}; '
             "read the URL from configuration")
_OPENAI_HOST_FIX = (f"replace https://api.openai.com with {GW} (same /v1/… path) and send "
                    f"Authorization: Bearer {KEY}")
_ANTHROPIC_HOST_FIX = (f"replace https://api.anthropic.com with {GW} (same /v1/messages path) "
                       f"and send x-api-key: {KEY}")

_OPENAI = {
    "python": f'OpenAI(base_url="{GW}/v1", api_key={KEY})',
    "javascript": f'new OpenAI({{ baseURL: "{GW}/v1", apiKey: {KEY} }})',
    "java": f'OpenAIOkHttpClient.builder().baseUrl("{GW}/v1").apiKey({KEY}).build()',
    "go": f'openai.NewClient(option.WithBaseURL("{GW}/v1/"), option.WithAPIKey({KEY}))',
}


def _point(client: str) -> str:
    return f"point the client at the meterline gateway: {client}"


def _native(provider: str, language: Language) -> str:
    return (f"the meterline gateway does not serve the {PROVIDER_NAMES[provider]} API: call "
            f'the model as "<provider>/<model>" through its OpenAI-compatible endpoint, e.g. '
            f"{_OPENAI[language]}")


RULES: Final[tuple[Rule, ...]] = (
    # Hard-coded provider endpoints, in any language.
    host("openai", "api.openai.com", fix=_OPENAI_HOST_FIX),
    host("azure-openai", "*.openai.azure.com"),
    host("anthropic", "api.anthropic.com", fix=_ANTHROPIC_HOST_FIX),
    host("google", "generativelanguage.googleapis.com", "aiplatform.googleapis.com",
         "*-aiplatform.googleapis.com"),
    host("dashscope", "dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com"),
    host("volcengine", "ark.*.volces.com"),
    host("qianfan", "qianfan.baidubce.com", "aip.baidubce.com"),
    host("hunyuan", "hunyuan.tencentcloudapi.com", "api.hunyuan.cloud.tencent.com"),
    host("deepseek", "api.deepseek.com"),
    host("zhipuai", "open.bigmodel.cn", "api.z.ai"),
    host("moonshot", "api.moonshot.cn", "api.moonshot.ai"),
    host("xai", "api.x.ai"),
    host("openrouter", "openrouter.ai"),
    host("mistral", "api.mistral.ai"),
    host("cohere", "api.cohere.com", "api.cohere.ai"),
    host("groq", "api.groq.com"),
    host("together", "api.together.xyz"),
    host("fireworks", "api.fireworks.ai"),
    host("perplexity", "api.perplexity.ai"),
    host("bedrock", "bedrock-runtime.*.amazonaws.com"),
    host("minimax", "api.minimax.chat", "api.minimaxi.com", "api.minimax.io"),
    host("siliconflow", "api.siliconflow.cn", "api.siliconflow.com"),
    host("stepfun", "api.stepfun.com"),
    host("baichuan", "api.baichuan-ai.com"),
    host("lingyiwanwu", "api.lingyiwanwu.com"),
    # Python
    sdk("openai", "python", "openai", fix=_point(_OPENAI["python"]), compatible=True),
    sdk("openai", "python", "langchain_openai", compatible=True,
        fix=_point(f'ChatOpenAI(base_url="{GW}/v1", api_key={KEY})')),
    sdk("anthropic", "python", "anthropic", compatible=True,
        fix=_point(f'Anthropic(base_url="{GW}", api_key={KEY})')),
    sdk("anthropic", "python", "langchain_anthropic", compatible=True,
        fix=_point(f'ChatAnthropic(base_url="{GW}", api_key={KEY})')),
    sdk("litellm", "python", "litellm", compatible=True,
        fix=("route the call through the meterline gateway: litellm.completion("
             f'model="openai/<provider>/<model>", api_base="{GW}/v1", api_key={KEY})')),
    sdk("google", "python", "google.genai", "google.generativeai", "vertexai",
        fix=_native("google", "python")),
    sdk("dashscope", "python", "dashscope", fix=_native("dashscope", "python")),
    sdk("volcengine", "python", "volcenginesdkarkruntime", "volcengine",
        fix=_native("volcengine", "python")),
    sdk("qianfan", "python", "qianfan", fix=_native("qianfan", "python")),
    sdk("zhipuai", "python", "zhipuai", fix=_native("zhipuai", "python")),
    sdk("hunyuan", "python", "tencentcloud.hunyuan", fix=_native("hunyuan", "python")),
    sdk("mistral", "python", "mistralai", fix=_native("mistral", "python")),
    sdk("cohere", "python", "cohere", fix=_native("cohere", "python")),
    sdk("groq", "python", "groq", fix=_native("groq", "python")),
    # TypeScript / JavaScript
    sdk("openai", "javascript", "openai", fix=_point(_OPENAI["javascript"]), compatible=True),
    sdk("openai", "javascript", "@ai-sdk/openai", compatible=True,
        fix=_point(f'createOpenAI({{ baseURL: "{GW}/v1", apiKey: {KEY} }})')),
    sdk("openai", "javascript", "@langchain/openai", compatible=True,
        fix=_point(f'new ChatOpenAI({{ configuration: {{ baseURL: "{GW}/v1" }}, '
                   f"apiKey: {KEY} }})")),
    sdk("anthropic", "javascript", "@anthropic-ai/sdk", compatible=True,
        fix=_point(f'new Anthropic({{ baseURL: "{GW}", apiKey: {KEY} }})')),
    sdk("anthropic", "javascript", "@ai-sdk/anthropic", compatible=True,
        fix=_point(f'createAnthropic({{ baseURL: "{GW}/v1", apiKey: {KEY} }})')),
    sdk("google", "javascript", "@google/genai", "@google/generative-ai",
        "@google-cloud/vertexai", "@ai-sdk/google", fix=_native("google", "javascript")),
    sdk("qianfan", "javascript", "@baiducloud/qianfan", fix=_native("qianfan", "javascript")),
    sdk("hunyuan", "javascript", "tencentcloud-sdk-nodejs-hunyuan",
        "tencentcloud-sdk-nodejs/tencentcloud/services/hunyuan",
        fix=_native("hunyuan", "javascript")),
    sdk("mistral", "javascript", "@mistralai/mistralai", fix=_native("mistral", "javascript")),
    sdk("cohere", "javascript", "cohere-ai", fix=_native("cohere", "javascript")),
    sdk("groq", "javascript", "groq-sdk", fix=_native("groq", "javascript")),
    # Java
    sdk("openai", "java", "com.openai", fix=_point(_OPENAI["java"]), compatible=True),
    sdk("openai", "java", "org.springframework.ai.openai", compatible=True,
        fix=f"point Spring AI at the meterline gateway: spring.ai.openai.base-url={GW} and "
            f"spring.ai.openai.api-key={KEY}"),
    sdk("openai", "java", "dev.langchain4j.model.openai", compatible=True,
        fix=_point(f'OpenAiChatModel.builder().baseUrl("{GW}/v1").apiKey({KEY})')),
    sdk("azure-openai", "java", "com.azure.ai.openai", fix=_native("azure-openai", "java")),
    sdk("anthropic", "java", "com.anthropic", compatible=True,
        fix=_point(f'AnthropicOkHttpClient.builder().baseUrl("{GW}").apiKey({KEY}).build()')),
    sdk("dashscope", "java", "com.alibaba.dashscope", fix=_native("dashscope", "java")),
    sdk("qianfan", "java", "com.baidubce.qianfan", fix=_native("qianfan", "java")),
    sdk("volcengine", "java", "com.volcengine.ark.runtime", fix=_native("volcengine", "java")),
    sdk("google", "java", "com.google.genai", "com.google.cloud.vertexai",
        fix=_native("google", "java")),
    sdk("zhipuai", "java", "com.zhipu.oapi", fix=_native("zhipuai", "java")),
    sdk("hunyuan", "java", "com.tencentcloudapi.hunyuan", fix=_native("hunyuan", "java")),
    # Go
    sdk("openai", "go", "github.com/openai/openai-go", fix=_point(_OPENAI["go"]),
        compatible=True),
    sdk("openai", "go", "github.com/sashabaranov/go-openai", compatible=True,
        fix=_point(f'cfg := openai.DefaultConfig({KEY}); cfg.BaseURL = "{GW}/v1"; '
                   "openai.NewClientWithConfig(cfg)")),
    sdk("anthropic", "go", "github.com/anthropics/anthropic-sdk-go", compatible=True,
        fix=_point(f'anthropic.NewClient(option.WithBaseURL("{GW}/"), '
                   f"option.WithAPIKey({KEY}))")),
    sdk("google", "go", "google.golang.org/genai", "github.com/google/generative-ai-go",
        "cloud.google.com/go/vertexai", fix=_native("google", "go")),
    sdk("volcengine", "go", "github.com/volcengine/volcengine-go-sdk/service/arkruntime",
        fix=_native("volcengine", "go")),
    sdk("hunyuan", "go", "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/hunyuan",
        fix=_native("hunyuan", "go")),
    sdk("qianfan", "go", "github.com/baidubce/bce-qianfan-sdk/go/qianfan",
        fix=_native("qianfan", "go")),
    sdk("cohere", "go", "github.com/cohere-ai/cohere-go", fix=_native("cohere", "go")),
)

HOST_RULES: Final[tuple[Rule, ...]] = tuple(r for r in RULES if r.kind == "provider_host")

RULES_BY_LANGUAGE: Final[dict[Language, tuple[Rule, ...]]] = {
    language: tuple(r for r in RULES if language in r.languages) for language in ALL_LANGUAGES
}

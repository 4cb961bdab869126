"""The rule table of ``meterline scan`` (meterline/scan/rules.py): each pattern, line by line."""

from __future__ import annotations

import pytest

from meterline.scan.rules import (
    ALL_LANGUAGES,
    BASE_URL,
    EXTENSIONS,
    PROVIDER_NAMES,
    RULES,
    RULES_BY_LANGUAGE,
    SUPPRESS,
)


def _matching(language, line):
    """The rules whose pattern matches ``line`` and whose exception does not."""
    return [r for r in RULES_BY_LANGUAGE[language]
            if r.pattern.search(line) and not (r.unless and r.unless.search(line))]


IMPORTS = [
    ("python", "import openai", "openai"),
    ("python", "import openai as oa", "openai"),
    ("python", "import os, openai", "openai"),
    ("python", "x = 1; import openai", "openai"),
    ("python", "from openai import OpenAI", "openai"),
    ("python", "from openai.types.chat import ChatCompletion", "openai"),
    ("python", "    import anthropic", "anthropic"),
    ("python", "from anthropic import Anthropic, AsyncAnthropic", "anthropic"),
    ("python", "from langchain_openai import ChatOpenAI", "openai"),
    ("python", "from langchain_anthropic import ChatAnthropic", "anthropic"),
    ("python", "import dashscope", "dashscope"),
    ("python", "from dashscope import Generation", "dashscope"),
    ("python", "from volcenginesdkarkruntime import Ark", "volcengine"),
    ("python", "from volcengine.maas.v2 import MaasService", "volcengine"),
    ("python", "from qianfan import ChatCompletion", "qianfan"),
    ("python", "from google import genai", "google"),
    ("python", "from google import generativeai as genai", "google"),
    ("python", "from google import (genai, protobuf)", "google"),
    ("python", "import google.generativeai as genai", "google"),
    ("python", "from google.genai import types", "google"),
    ("python", "import vertexai", "google"),
    ("python", "from zhipuai import ZhipuAI", "zhipuai"),
    ("python", "from tencentcloud.hunyuan.v20230901 import hunyuan_client", "hunyuan"),
    ("python", "from tencentcloud import hunyuan", "hunyuan"),
    ("python", "from mistralai import Mistral", "mistral"),
    ("python", "import cohere", "cohere"),
    ("python", "import litellm", "litellm"),
    ("python", "from litellm import completion", "litellm"),
    ("python", "from groq import Groq", "groq"),
    ("javascript", "import OpenAI from 'openai';", "openai"),
    ("javascript", 'import OpenAI from "openai"', "openai"),
    ("javascript", "const OpenAI = require('openai');", "openai"),
    ("javascript", "const OpenAI = require ( 'openai' );", "openai"),
    ("javascript", 'const { OpenAI } = await import("openai");', "openai"),
    ("javascript", "import 'openai/shims/node';", "openai"),
    ("javascript", "} from 'openai/resources/chat';", "openai"),
    ("javascript", "export * from 'openai';", "openai"),
    ("javascript", "import OpenAI = require('openai');", "openai"),
    ("javascript", "import { createOpenAI } from '@ai-sdk/openai';", "openai"),
    ("javascript", "import { ChatOpenAI } from '@langchain/openai';", "openai"),
    ("javascript", "import Anthropic from '@anthropic-ai/sdk';", "anthropic"),
    ("javascript", "import { createAnthropic } from '@ai-sdk/anthropic';", "anthropic"),
    ("javascript", "import { GoogleGenAI } from '@google/genai';", "google"),
    ("javascript", "import { GoogleGenerativeAI } from '@google/generative-ai';", "google"),
    ("javascript", "import { Mistral } from '@mistralai/mistralai';", "mistral"),
    ("javascript", "const { CohereClient } = require('cohere-ai');", "cohere"),
    ("javascript", "const hy = require('tencentcloud-sdk-nodejs-hunyuan');", "hunyuan"),
    ("javascript", "import { ChatCompletion } from '@baiducloud/qianfan';", "qianfan"),
    ("javascript", "import Groq from 'groq-sdk';", "groq"),
    ("java", "import com.openai.client.OpenAIClient;", "openai"),
    ("java", "import com.openai.*;", "openai"),
    ("java", "import com.anthropic.client.AnthropicClient;", "anthropic"),
    ("java", "import static com.anthropic.models.Model.CLAUDE;", "anthropic"),
    ("java", "import com.alibaba.dashscope.aigc.generation.Generation;", "dashscope"),
    ("java", "import com.baidubce.qianfan.Qianfan;", "qianfan"),
    ("java", "import com.volcengine.ark.runtime.service.ArkService;", "volcengine"),
    ("java", "import com.google.genai.Client;", "google"),
    ("java", "import com.tencentcloudapi.hunyuan.v20230901.HunyuanClient;", "hunyuan"),
    ("java", "import com.zhipu.oapi.ClientV4;", "zhipuai"),
    ("java", "import org.springframework.ai.openai.OpenAiChatModel;", "openai"),
    ("java", "import dev.langchain4j.model.openai.OpenAiChatModel;", "openai"),
    ("java", "import com.azure.ai.openai.OpenAIClient;", "azure-openai"),
    ("go", '\t"github.com/openai/openai-go"', "openai"),
    ("go", '\topenai "github.com/openai/openai-go/v2"', "openai"),
    ("go", '\t"github.com/sashabaranov/go-openai" // community client', "openai"),
    ("go", 'import "github.com/anthropics/anthropic-sdk-go"', "anthropic"),
    ("go", '\t"google.golang.org/genai"', "google"),
    ("go", '\t"github.com/volcengine/volcengine-go-sdk/service/arkruntime"', "volcengine"),
    ("go", '\thy "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/hunyuan/v20230901"',
     "hunyuan"),
    ("go", '\t"github.com/baidubce/bce-qianfan-sdk/go/qianfan"', "qianfan"),
    ("go", '\t_ "github.com/cohere-ai/cohere-go/v2"', "cohere"),
]

HOSTS = [
    ('url = "https://api.openai.com/v1/chat/completions"', "openai",
     "https://api.openai.com/v1/chat/completions"),
    ('ws = "wss://api.openai.com/v1/realtime?model=x"', "openai",
     "wss://api.openai.com/v1/realtime?model=x"),
    ('HOST = "API.OPENAI.COM"', "openai", "API.OPENAI.COM"),
    ('fetch("https://api.anthropic.com/v1/messages", opts)', "anthropic",
     "https://api.anthropic.com/v1/messages"),
    ('"https://generativelanguage.googleapis.com/v1beta/models"', "google",
     "https://generativelanguage.googleapis.com/v1beta/models"),
    ('"https://us-central1-aiplatform.googleapis.com/v1/projects"', "google",
     "https://us-central1-aiplatform.googleapis.com/v1/projects"),
    ('"https://dashscope.aliyuncs.com/compatible-mode/v1"', "dashscope",
     "https://dashscope.aliyuncs.com/compatible-mode/v1"),
    ('"https://dashscope-intl.aliyuncs.com/api/v1"', "dashscope",
     "https://dashscope-intl.aliyuncs.com/api/v1"),
    ('"https://ark.cn-beijing.volces.com/api/v3"', "volcengine",
     "https://ark.cn-beijing.volces.com/api/v3"),
    ('"https://qianfan.baidubce.com/v2"', "qianfan", "https://qianfan.baidubce.com/v2"),
    ('"https://aip.baidubce.com/oauth/2.0/token"', "qianfan",
     "https://aip.baidubce.com/oauth/2.0/token"),
    ('endpoint = "hunyuan.tencentcloudapi.com"', "hunyuan", "hunyuan.tencentcloudapi.com"),
    ('"https://api.hunyuan.cloud.tencent.com/v1"', "hunyuan",
     "https://api.hunyuan.cloud.tencent.com/v1"),
    ('"https://api.deepseek.com"', "deepseek", "https://api.deepseek.com"),
    ('"https://open.bigmodel.cn/api/paas/v4/"', "zhipuai", "https://open.bigmodel.cn/api/paas/v4/"),
    ('"https://api.moonshot.cn/v1"', "moonshot", "https://api.moonshot.cn/v1"),
    ('"https://api.x.ai/v1"', "xai", "https://api.x.ai/v1"),
    ('"https://openrouter.ai/api/v1"', "openrouter", "https://openrouter.ai/api/v1"),
    ('"https://api.mistral.ai/v1"', "mistral", "https://api.mistral.ai/v1"),
    ('"https://my-res.openai.azure.com/openai/deployments"', "azure-openai",
     "https://my-res.openai.azure.com/openai/deployments"),
    ('"https://bedrock-runtime.us-east-1.amazonaws.com"', "bedrock",
     "https://bedrock-runtime.us-east-1.amazonaws.com"),
    ('u := fmt.Sprintf("https://api.openai.com/v1/%s", p)', "openai",
     "https://api.openai.com/v1/%s"),
    ('const u = `https://api.openai.com/v1/${path}`;', "openai", "https://api.openai.com/v1/"),
    ('u = f"https://api.openai.com:443/v1/{path}"', "openai", "https://api.openai.com:443/v1/"),
]

NOT_FINDINGS = [
    ("python", "import openai_helpers"),
    ("python", "from openaiish import client"),
    ("python", "from .openai import client"),
    ("python", "from myapp.openai import client"),
    ("python", "import google"),
    ("python", "from google import protobuf"),
    ("python", "import google.cloud.storage"),
    ("python", "import volcengine_tools"),
    ("python", "x = 'import openai'"),
    ("javascript", "import type { ChatCompletion } from 'openai';"),
    ("javascript", "export type { ChatCompletion } from 'openai';"),
    ("javascript", "import OpenAI from 'openai-compat';"),
    ("javascript", "import client from './openai';"),
    ("javascript", "const provider = 'openai';"),
    ("javascript", "import x from '@anthropic-ai/sdk-helpers';"),
    ("java", "import com.openaiclone.Foo;"),
    ("java", "import org.example.openai.Foo;"),
    ("java", "String pkg = \"com.openai\";"),
    ("go", '\t"github.com/openai/openai-go-extras"'),
    ("go", '\tname := "github.com/openai/openai-go",'),
    ("go", '\t"example.com/internal/openai"'),
    ("python", 'u = "https://api.openai.com.evil.example/v1"'),
    ("python", 'u = "https://notapi.openai.com/v1"'),
    ("python", 'u = "https://platform.openai.com/docs"'),
    ("python", 'u = "https://my-api.deepseek.com"'),
    ("python", 'u = "https://api.openai.community"'),
    ("python", 'u = "https://gateway.example.com/v1"'),
]


@pytest.mark.parametrize(("language", "line", "provider"), IMPORTS)
def test_sdk_imports(language, line, provider):
    matched = _matching(language, line)
    assert [(r.provider, r.kind, r.severity) for r in matched] == [
        (provider, "sdk_import", "medium")], line


@pytest.mark.parametrize(("line", "provider", "match"), HOSTS)
@pytest.mark.parametrize("language", sorted(ALL_LANGUAGES))
def test_provider_hosts_in_every_language(language, line, provider, match):
    matched = _matching(language, line)
    assert [(r.provider, r.kind, r.severity) for r in matched] == [
        (provider, "provider_host", "high")], line
    assert matched[0].pattern.search(line).group(0) == match


@pytest.mark.parametrize(("language", "line"), NOT_FINDINGS)
def test_lookalikes_are_not_findings(language, line):
    assert _matching(language, line) == [], line


@pytest.mark.parametrize(("language", "line", "provider"),
                         IMPORTS + [("python", line, p) for line, p, _ in HOSTS])
def test_needles_never_hide_a_match(language, line, provider):
    """The scanner skips a rule when no needle is in the file: every match must hold one."""
    for rule in _matching(language, line):
        assert any(n in line.lower() for n in rule.needles), (rule.provider, line)


def test_an_sdk_import_does_not_match_another_language():
    assert _matching("javascript", "import openai") == []
    assert _matching("python", "import OpenAI from 'openai';") == []
    assert _matching("go", "import com.openai.client.OpenAIClient;") == []


def test_table_shape():
    assert len(RULES) > 50
    for rule in RULES:
        assert rule.provider in PROVIDER_NAMES, rule.provider
        assert rule.languages <= ALL_LANGUAGES
        assert "gateway" in rule.fix, rule
        assert rule.needles and all(n == n.lower() and n for n in rule.needles)
        if rule.kind == "provider_host":
            assert (rule.severity, rule.languages, rule.gateway_compatible) == (
                "high", ALL_LANGUAGES, False)
        else:
            assert rule.severity == "medium" and len(rule.languages) == 1
    assert set(PROVIDER_NAMES) == {r.provider for r in RULES}


def test_fixes_say_how_to_reach_the_gateway():
    by = {(r.provider, next(iter(r.languages)), r.needles[0]): r for r in RULES
          if r.kind == "sdk_import"}
    assert by["openai", "python", "openai"].fix == (
        'point the client at the meterline gateway: '
        'OpenAI(base_url="https://<gateway>/v1", api_key=<meterline key>)')
    assert 'baseURL: "https://<gateway>"' in by["anthropic", "javascript", "@anthropic-ai/sdk"].fix
    assert "WithBaseURL" in by["openai", "go", "com/openai/openai-go"].fix
    dashscope = by["dashscope", "java", "dashscope"]
    assert not dashscope.gateway_compatible
    assert "does not serve the DashScope" in dashscope.fix
    assert "OpenAIOkHttpClient" in dashscope.fix  # the example is in the file's language


def test_only_openai_and_anthropic_wire_formats_can_be_redirected():
    compatible = {r.provider for r in RULES if r.gateway_compatible}
    assert compatible == {"openai", "anthropic", "litellm"}


def test_extensions():
    assert EXTENSIONS == {".py": "python", ".ts": "javascript", ".tsx": "javascript",
                          ".mts": "javascript", ".cts": "javascript", ".js": "javascript",
                          ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
                          ".java": "java", ".go": "go"}


@pytest.mark.parametrize("line", [
    'client = OpenAI(base_url=os.environ["METERLINE_URL"])',
    "client = OpenAI(base_url = url)",
    "const client = new OpenAI({ baseURL: process.env.GATEWAY });",
    "OpenAIOkHttpClient.builder().baseUrl(gateway).build();",
    "client := openai.NewClient(option.WithBaseURL(gw))",
    'os.environ["OPENAI_BASE_URL"] = gateway',
    "OPENAI_BASE_URL = gateway",
    "litellm.completion(model=m, api_base=gateway)",
    '{"base_url": gateway}',
    "cfg.BaseURL = gateway",
    "def make_client(base_url: str) -> OpenAI:",
])
def test_base_url_settings(line):
    assert BASE_URL.search(line), line


@pytest.mark.parametrize("line", [
    "if base_url == other:",
    "print(base_url)",
    "base_urls = []",
    "database_url = 'sqlite://'",
])
def test_not_base_url_settings(line):
    assert not BASE_URL.search(line), line


@pytest.mark.parametrize(("line", "suppressed"), [
    ("import openai  # meterline: allow", True),
    ("import OpenAI from 'openai'; // meterline: allow", True),
    ("import openai  # meterline:allow", True),
    ("import openai  # Meterline: Allow (reviewed)", True),
    ("import openai  # meterline", False),
    ("import openai  # allow", False),
])
def test_suppression_marker(line, suppressed):
    assert bool(SUPPRESS.search(line)) is suppressed

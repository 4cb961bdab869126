"""Walking and matching (meterline/scan/scanner.py): sample trees, exact findings."""

from __future__ import annotations

import os

import pytest

from meterline.errors import InvalidInput
from meterline.scan.scanner import MAX_BYTES, collect, scan, scan_text


def _tree(root, files):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def _found(report, root):
    """(relative path, line, severity, provider, kind) of every finding, in report order."""
    return [(os.path.relpath(f.path, root).replace(os.sep, "/"), f.line, f.severity, f.provider,
             f.kind) for f in report.findings]


def test_python_tree(tmp_path):
    _tree(tmp_path, {
        "app/client.py": "import os\n"
                         "import openai\n"
                         "from anthropic import Anthropic\n"
                         "\n"
                         'URL = "https://api.deepseek.com/v1"\n',
        "app/gemini.py": "def ask():\n"
                         "    from google import genai\n"
                         "    import dashscope\n",
        "app/clean.py": "import httpx\n",
    })
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [
        ("app/client.py", 2, "medium", "openai", "sdk_import"),
        ("app/client.py", 3, "medium", "anthropic", "sdk_import"),
        ("app/client.py", 5, "high", "deepseek", "provider_host"),
        ("app/gemini.py", 2, "medium", "google", "sdk_import"),
        ("app/gemini.py", 3, "medium", "dashscope", "sdk_import"),
    ]
    assert report.files_scanned == 3
    assert report.skipped == []
    host = report.findings[2]
    assert host.path == str(tmp_path / "app" / "client.py")
    assert host.match == "https://api.deepseek.com/v1"
    assert host.message == ("hard-coded DeepSeek endpoint https://api.deepseek.com/v1 bypasses "
                            "the meterline gateway")
    assert "https://<gateway>/v1/chat/completions" in host.fix
    assert report.findings[0].match == "import openai"
    assert "unless the client's base URL points at it" in report.findings[0].message
    assert "directly, not through the meterline gateway" in report.findings[3].message


def test_typescript_and_javascript_tree(tmp_path):
    _tree(tmp_path, {
        "web/chat.ts": "import type { ChatCompletion } from 'openai';\n"
                       "import OpenAI from 'openai';\n",
        "web/view.tsx": "import {\n  GoogleGenAI,\n} from \"@google/genai\";\n",
        "web/legacy.cjs": "const Anthropic = require('@anthropic-ai/sdk');\n",
        "web/esm.mjs": "const { Mistral } = await import('@mistralai/mistralai');\n",
        "web/app.jsx": "fetch('https://api.moonshot.cn/v1/chat/completions')\n",
        "web/plain.js": "// import OpenAI from 'openai'\n/* https://api.openai.com */\n"
                        " * https://api.openai.com\nconst ok = 1;\n",
    })
    assert _found(scan([str(tmp_path)]), tmp_path) == [
        ("web/app.jsx", 1, "high", "moonshot", "provider_host"),
        ("web/chat.ts", 2, "medium", "openai", "sdk_import"),
        ("web/esm.mjs", 1, "medium", "mistral", "sdk_import"),
        ("web/legacy.cjs", 1, "medium", "anthropic", "sdk_import"),
        ("web/view.tsx", 3, "medium", "google", "sdk_import"),
    ]


def test_java_tree(tmp_path):
    _tree(tmp_path, {"src/main/java/app/Chat.java": (
        "package app;\n"
        "\n"
        "import java.util.List;\n"
        "import com.openai.client.OpenAIClient;\n"
        "import com.alibaba.dashscope.aigc.generation.Generation;\n"
        "import com.baidubce.qianfan.Qianfan;\n"
        "\n"
        "class Chat {\n"
        '    String url = "https://qianfan.baidubce.com/v2/chat/completions";\n'
        "    // String old = \"https://api.openai.com/v1\";\n"
        "}\n")})
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [
        ("src/main/java/app/Chat.java", 4, "medium", "openai", "sdk_import"),
        ("src/main/java/app/Chat.java", 5, "medium", "dashscope", "sdk_import"),
        ("src/main/java/app/Chat.java", 6, "medium", "qianfan", "sdk_import"),
        ("src/main/java/app/Chat.java", 9, "high", "qianfan", "provider_host"),
    ]
    assert report.findings[1].match == "import com.alibaba.dashscope.aigc.generation.Generation;"


def test_go_tree(tmp_path):
    _tree(tmp_path, {"cmd/chat/main.go": (
        "package main\n"
        "\n"
        "import (\n"
        '\t"fmt"\n'
        '\topenai "github.com/openai/openai-go/v2"\n'
        '\t// "github.com/anthropics/anthropic-sdk-go"\n'
        '\t"github.com/volcengine/volcengine-go-sdk/service/arkruntime"\n'
        ")\n"
        "\n"
        'const hunyuan = "https://api.hunyuan.cloud.tencent.com/v1"\n'
        'const ark = "https://ark.cn-beijing.volces.com/api/v3" // meterline: allow\n')})
    assert _found(scan([str(tmp_path)]), tmp_path) == [
        ("cmd/chat/main.go", 5, "medium", "openai", "sdk_import"),
        ("cmd/chat/main.go", 7, "medium", "volcengine", "sdk_import"),
        ("cmd/chat/main.go", 10, "high", "hunyuan", "provider_host"),
    ]


def test_a_base_url_that_is_not_a_provider_lowers_redirectable_sdks_to_low(tmp_path):
    _tree(tmp_path, {
        "gw.py": "import openai\n"
                 "import dashscope\n"
                 'client = openai.OpenAI(base_url=os.environ["METERLINE_URL"])\n',
        "direct.py": "import openai\n"
                     'client = openai.OpenAI(base_url="https://api.deepseek.com")\n',
        "commented.py": "import anthropic\n"
                        '# client = Anthropic(base_url="https://gw.example.com")\n',
        "gw.go": 'import "github.com/anthropics/anthropic-sdk-go"\n'
                 'var c = anthropic.NewClient(option.WithBaseURL("https://gw.example.com/"))\n',
    })
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [
        ("commented.py", 1, "medium", "anthropic", "sdk_import"),
        ("direct.py", 1, "medium", "openai", "sdk_import"),
        ("direct.py", 2, "high", "deepseek", "provider_host"),
        ("gw.go", 1, "low", "anthropic", "sdk_import"),
        ("gw.py", 1, "low", "openai", "sdk_import"),
        ("gw.py", 2, "medium", "dashscope", "sdk_import"),  # no base URL makes it the gateway
    ]
    low = report.findings[4]
    assert low.message == ("OpenAI SDK imported (import openai); this file sets a base URL on "
                           "line 3: check that it is the meterline gateway")


def test_comments_and_suppressions(tmp_path):
    _tree(tmp_path, {"a.py": (
        "# import openai\n"
        "# see https://api.openai.com/v1\n"
        "import openai  # meterline: allow\n"
        'URL = "https://api.anthropic.com"  # meterline:allow (reviewed)\n'
        "import anthropic\n"),
        "b.ts": "import OpenAI from 'openai'; // meterline: allow\n"
                "const u = 'https://api.x.ai/v1';\n"})
    assert _found(scan([str(tmp_path)]), tmp_path) == [
        ("a.py", 5, "medium", "anthropic", "sdk_import"),
        ("b.ts", 2, "high", "xai", "provider_host"),
    ]


def test_one_finding_per_rule_and_line_in_table_order():
    text = ('import openai; c = openai.OpenAI(base_url="https://api.openai.com/v1")\n'
            'urls = ["https://api.openai.com/v1", "https://api.openai.com/v2"]\n')
    findings = scan_text(text, "python", "x.py")
    assert [(f.line, f.severity, f.kind, f.match) for f in findings] == [
        (1, "high", "provider_host", "https://api.openai.com/v1"),
        (1, "medium", "sdk_import", "import openai"),  # the base URL is OpenAI's own: medium
        (2, "high", "provider_host", "https://api.openai.com/v1"),
    ]


def test_line_endings_and_encodings(tmp_path):
    _tree(tmp_path, {
        "crlf.go": b'package main\r\n\r\nimport (\r\n\t"github.com/openai/openai-go"\r\n)\r\n',
        "gbk.java": "// 调用通义千问\nimport com.alibaba.dashscope.aigc.Generation;\n"
                    .encode("gbk"),
        "garbage.py": b"\x80\x81\x82\xfe\n\xc3\x28 import nothing\n",
        "bom.py": b"\xef\xbb\xbfimport openai\n",
        "wide.ts": "import OpenAI from 'openai';\n".encode("utf-16"),
    })
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [
        ("bom.py", 1, "medium", "openai", "sdk_import"),
        ("crlf.go", 4, "medium", "openai", "sdk_import"),
        ("gbk.java", 2, "medium", "dashscope", "sdk_import"),
        ("wide.ts", 1, "medium", "openai", "sdk_import"),
    ]
    assert report.files_scanned == 5
    assert report.skipped == []


def test_binary_and_large_files_are_skipped(tmp_path):
    big = "import openai\n" + "x = 1\n" * (MAX_BYTES // 6)
    _tree(tmp_path, {
        "blob.py": b"import openai\n\0\0\0",
        "huge.js": "import OpenAI from 'openai';\n" + "//" + "x" * MAX_BYTES,
        "big_but_fine.py": big[:MAX_BYTES],
        "small.py": "import anthropic\n",
    })
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [
        ("big_but_fine.py", 1, "medium", "openai", "sdk_import"),
        ("small.py", 1, "medium", "anthropic", "sdk_import"),
    ]
    assert report.files_scanned == 2
    assert [(os.path.basename(s.path), s.reason) for s in report.skipped] == [
        ("blob.py", "binary"), ("huge.js", "larger than 2 MB")]


def test_skipped_directories(tmp_path):
    hit = "import openai\n"
    _tree(tmp_path, {
        "src/app.py": hit,
        ".git/hooks/x.py": hit,
        "node_modules/openai/index.js": "require('openai')\n",
        "web/node_modules/x/index.js": "require('openai')\n",
        "venv/lib/x.py": hit,
        ".venv/lib/x.py": hit,
        "src/__pycache__/x.py": hit,
        "dist/x.js": "require('openai')\n",
        "build/x.py": hit,
        "vendor/github.com/x/x.go": 'import "github.com/openai/openai-go"\n',
        "lib/site-packages/x.py": hit,
        "env/pyvenv.cfg": "home = /usr/bin\n",
        "env/lib/x.py": hit,
        "README.md": "call https://api.openai.com\n",
        "notes.txt": hit,
        "src/builder.py": hit,  # a name like a skipped directory is not skipped
    })
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [
        ("src/app.py", 1, "medium", "openai", "sdk_import"),
        ("src/builder.py", 1, "medium", "openai", "sdk_import"),
    ]
    assert report.files_scanned == 2


def test_a_skipped_directory_named_as_path_is_scanned(tmp_path):
    _tree(tmp_path, {"build/x.py": "import openai\n"})
    assert _found(scan([str(tmp_path / "build")]), tmp_path) == [
        ("build/x.py", 1, "medium", "openai", "sdk_import")]


def test_exclude_globs(tmp_path):
    hit = "import openai\n"
    _tree(tmp_path, {
        "src/app.py": hit,
        "src/gen/client.py": hit,
        "src/legacy/old.py": hit,
        "web/chat.test.ts": "import OpenAI from 'openai';\n",
        "web/chat.ts": "import OpenAI from 'openai';\n",
        "tools/x.py": hit,
    })
    root = str(tmp_path)
    report = scan([root], exclude=["gen", "src/legacy/", "*.test.ts",
                                   f"{root}/tools/*"])
    assert _found(report, tmp_path) == [
        ("src/app.py", 1, "medium", "openai", "sdk_import"),
        ("web/chat.ts", 1, "medium", "openai", "sdk_import"),
    ]
    assert report.files_scanned == 2
    assert scan([str(tmp_path / "src" / "app.py")], exclude=["app.py"]).files_scanned == 0


def test_files_as_paths(tmp_path):
    _tree(tmp_path, {"a.py": "import openai\n", "b.go": 'import "google.golang.org/genai"\n',
                     "c.md": "https://api.openai.com\n"})
    a, b, c = (str(tmp_path / n) for n in ("a.py", "b.go", "c.md"))
    report = scan([b, a, c, a])
    assert _found(report, tmp_path) == [
        ("b.go", 1, "medium", "google", "sdk_import"),
        ("a.py", 1, "medium", "openai", "sdk_import"),
    ]
    assert report.files_scanned == 2  # c.md is no source file; a.py once


def test_a_missing_path_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="no such file or directory") as raised:
        collect([str(tmp_path), str(tmp_path / "nope")])
    assert str(tmp_path / "nope") in raised.value.message


def test_walk_order_is_stable(tmp_path):
    names = ["b/z.py", "a.py", "b/a.py", "c.py", "B.py"]
    _tree(tmp_path, dict.fromkeys(names, "x = 1\n"))
    files, skipped = collect([str(tmp_path)])
    assert [os.path.relpath(f.path, tmp_path) for f in files] == [
        "B.py", "a.py", "c.py", os.path.join("b", "a.py"), os.path.join("b", "z.py")]
    assert skipped == []


def test_scan_text_without_a_rule_hit_is_empty():
    assert scan_text("import json\nprint('openai')\n", "python") == []


def test_unreadable_entries_are_skipped_not_raised(tmp_path):
    _tree(tmp_path, {"ok.py": "import openai\n"})
    (tmp_path / "dangling.py").symlink_to(tmp_path / "gone.py")
    os.mkfifo(tmp_path / "pipe.py")
    report = scan([str(tmp_path)])
    assert _found(report, tmp_path) == [("ok.py", 1, "medium", "openai", "sdk_import")]
    assert report.files_scanned == 1
    assert sorted((os.path.basename(s.path), s.reason) for s in report.skipped) == [
        ("dangling.py", "cannot read (No such file or directory)"),
        ("pipe.py", "not a regular file"),
    ]


@pytest.mark.parametrize(("line", "match"), [
    ("from openai import OpenAI, AsyncOpenAI  # the client",
     "from openai import OpenAI, AsyncOpenAI"),
    ("from google import genai; x = 1", "from google import genai"),
    ("import os, openai as oa", "import os, openai"),
    ("    import anthropic", "import anthropic"),
])
def test_python_matches_read_as_the_statement(line, match):
    [finding] = scan_text(line + "\n", "python")
    assert finding.match == match

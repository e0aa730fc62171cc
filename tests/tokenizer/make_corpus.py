#!/usr/bin/env python3
"""Writes tests/tokenizer/corpus.jsonl: the strings the tokenizer reference test
encodes with our tokenizer and with Hugging Face `tokenizers`.

Hand-written pieces (languages, scripts, emoji, code, numbers, whitespace,
special-token strings) plus seeded combinations of them. Deterministic: run it
again and the file is unchanged. Usage: make_corpus.py [output]
"""
import json
import random
import sys
from pathlib import Path

HAND_WRITTEN = [
    # English
    "Hello world",
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's fine; we've done it, you'd agree.",
    "DON'T SHOUT! I'M LISTENING. WE'LL SEE. THEY'RE HERE. IT'S OK.",
    "It's a 'quoted' word and \"double quotes\" too.",
    "rock'n'roll isn't dead",
    "e-mail: someone@example.com, web: https://example.org/path?q=1&r=two#frag",
    "Mr. O'Neil paid $1,234.56 (about €1.100,00) on 2024-03-15 at 10:45pm.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a",
    " ",
    "",
    "A.B.C. d.e.f.",
    "Hello\nworld",
    "Tabs\there\tand\tthere",
    # French, German, Spanish, other Latin
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Ça va? Très bien, merci! À bientôt, élève.",
    "Où est la bibliothèque ? L'été dernier, nous étions à Noël.",
    "Über die Brücke gehen Straßenbahnen; Größe, Maß, Fußgänger.",
    "¿Dónde está el baño? ¡Mañana será otro día!",
    "Ångström, Øresund, Ærø, naïve café, façade, jalapeño, São Paulo",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    # Decomposed (NFD) forms: the same words with combining marks
    "e\u0301le\u0300ve, cafe\u0301, Noe\u0308l, n\u0303",
    "A\u030angstro\u0308m and \u1e9b\u0323 and K\u0327",
    # Greek, Cyrillic, Armenian, Georgian
    "Καλημέρα κόσμε· τί κάνεις;",
    "Привет, мир! Как дела? Съешь же ещё этих мягких французских булок.",
    "Բարեւ աշխարհ",
    "გამარჯობა მსოფლიო",
    # CJK, Japanese, Korean
    "你好，世界！今天天气很好。",
    "我爱自然语言处理。机器学习和深度学习是人工智能的分支。",
    "日本語のテキストです。ひらがな、カタカナ、漢字を含みます。",
    "東京都渋谷区、ｶﾀｶﾅ半角、全角ＡＢＣ１２３",
    "안녕하세요 세계! 한국어 텍스트입니다.",
    "中文English混合text混合123数字",
    "《红楼梦》是中国古典小说——“四大名著”之一。",
    # Arabic, Hebrew, Persian, Urdu (right to left)
    "مرحبا بالعالم! كيف حالك اليوم؟",
    "اللغة العربية جميلة جداً، وهي لغة القرآن الكريم.",
    "שלום עולם, מה שלומך?",
    "سلام دنیا، حال شما چطور است؟",
    "یہ اردو کا جملہ ہے۔",
    "Mixed: English مع العربية and עברית together.",
    # South and South-East Asian scripts
    "नमस्ते दुनिया! हिन्दी भाषा।",
    "বাংলা ভাষা সুন্দর",
    "தமிழ் மொழி",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "Xin chào thế giới, tiếng Việt có nhiều dấu.",
    "ພາສາລາວ ແລະ ភាសាខ្មែរ",
    # Emoji: simple, skin tones, ZWJ sequences, flags, keycaps
    "I love 🍕 and 🍣!",
    "😀😃😄😁😆😅😂🤣",
    "👍🏻👍🏼👍🏽👍🏾👍🏿",
    "Family: 👨‍👩‍👧‍👦 and 👩‍👩‍👦 and 👨‍👨‍👧‍👧",
    "Professions: 👩‍💻 👨‍🚀 🧑‍🔬 👩🏽‍⚕️ 🏳️‍🌈 🏴‍☠️",
    "Flags: 🇫🇷🇯🇵🇺🇸🇩🇪 🇪🇺",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣",
    "❤️ vs ❤ vs ♥️ and ☺️ ✌🏾",
    "🧑🏿‍🤝‍🧑🏻 holding hands",
    # Code
    "def foo(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; return v.size(); }",
    "const f = async (a, b) => { await g(a?.b ?? 'c'); };",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "<html><body><p class=\"x\">Hello &amp; goodbye</p></body></html>",
    "    indented four\n        indented eight\n\t\ttabbed twice",
    "if x!=y and y<=z or not w: pass  # comparisons",
    "$ ls -la | grep '^d' > dirs.txt && echo \"done\"",
    "fn main() -> Result<(), Box<dyn Error>> { println!(\"{:?}\", vec![1]); Ok(()) }",
    "x = [i**2 for i in range(10) if i % 2 == 0]",
    "// TODO(someone): fix this\n/* block\n   comment */",
    "a_b_c __init__ CamelCaseName snake_case_name SCREAMING_CASE",
    # Numbers
    "0",
    "42",
    "1234567890",
    "12345678901234567890123456789",
    "3.14159265358979 2.71828 -0.5 +7 1e-9 6.022e23",
    "1,000,000 and 1.000.000 and 1 000 000",
    "Phone: +1 (555) 123-4567, ext. 89",
    "٠١٢٣٤٥٦٧٨٩ and ۰۱۲۳ and 一二三 and ①②③ and Ⅻ",
    "2024年3月15日 10時45分",
    "v1.2.3-beta.4+build.567",
    # Whitespace runs
    "  leading spaces",
    "trailing spaces   ",
    "   ",
    "multiple     spaces     inside",
    "\n",
    "\n\n\n",
    "line1\n\nline3\n\n\n\nline7",
    "\t\t\t",
    "mixed \t \n \r\n whitespace",
    "windows\r\nline\r\nendings\r\n",
    " \n \n ",
    "space before newline \nand after\n next",
    "no-break\u00a0space and thin\u2009space and ideographic\u3000space",
    "em\u2003space en\u2002space figure\u2007space narrow\u202fnbsp",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "mongolian\u180evowel separator",
    "line\u2028separator and paragraph\u2029separator",
    "next\u0085line",
    "\u000b vertical tab \u000c form feed",
    # Control characters and odd code points
    "null\u0000byte inside",
    "bell\u0007 escape\u001b[31mred\u001b[0m",
    "private use \ue000\uf8ff and plane 15 \U000f0000",
    "noncharacters \ufdd0 \uffff",
    "math 𝕏𝕐𝕫 𝒜𝒷𝒸 ∀x∈ℝ: x²≥0, ∑ᵢ aᵢ ≤ ∞, √2 ≈ 1.414",
    "ligatures ﬁ ﬂ ﬀ and fullwidth ｈｅｌｌｏ",
    "Turkish İstanbul ı and German ẞ",
    "long s: 'ſ and Kelvin: 'K",
    "Cherokee Ꮳ and Deseret 𐐀𐐨",
    # Special-token strings of the tokenizers under test
    "<|begin_of_text|>Hello<|end_of_text|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<s>Hello</s>",
    "<s> [INST] question [/INST] answer</s>",
    "<unk> and <s> and </s>",
    "<s><s></s></s>",
    "<|im_start|><|im_end|><|endoftext|>",
    "<|im_start",
    "<|im_start|",
    "im_start|>",
    "<<|im_start|>>",
    "< s > and <s and s> and <\\s>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<mask> word <mask>word word<mask> <mask>",
    "<|pad|> padding <|pad|><|pad|>",
    "[CLS] [SEP] [MASK] [PAD]",
    "<0x41><0xFF> looks like byte tokens",
    "▁ metaspace ▁▁ chars ▁in▁text",
    "Ġ ĠĠ Ċ byte-level chars in text",
    # Long strings
    "word " * 200,
    "a" * 1000,
    "你好" * 300,
    "🙂" * 100,
    "ab" * 400 + "\n" * 50 + " " * 50,
]


def generated(rng: random.Random):
    words = [
        "the", "of", "and", "token", "model", "inference", "server", "GPU",
        "attention", "Mamba", "state", "space", "hybrid", "naïve", "café",
        "déjà", "vu", "straße", "日本", "中文", "한국어", "مرحبا", "שלום",
        "привет", "Ελλάδα", "🙂", "👩‍💻", "🇫🇷", "1", "23", "456", "7890",
        "3.14", "x", "Y", "_", "-", "--", "...", "!", "?", "'s", "'LL", "(",
        ")", "{", "}", "[", "]", "<", ">", "=", "==", "=>", "/", "\\", "\"",
        "''", "`", "~", "@", "#", "$", "%", "^", "&", "*", "+",
    ]
    separators = ["", " ", "  ", "   ", "\n", "\n\n", "\t", " \n", "\r\n",
                  "\u00a0", "\u3000", " \t "]
    out = []
    # Word salads of every kind of piece.
    for _ in range(150):
        n = rng.randint(1, 12)
        parts = []
        for _ in range(n):
            parts.append(rng.choice(words))
            parts.append(rng.choice(separators))
        out.append("".join(parts))
    # Numbers of every length, alone and glued to letters.
    for n in range(1, 25):
        digits = "".join(rng.choice("0123456789") for _ in range(n))
        out.append(digits)
        out.append("abc" + digits + "def")
    # Whitespace-only runs and whitespace around words.
    for _ in range(30):
        ws = "".join(rng.choice([" ", "\n", "\t", "\r", "\u00a0"])
                     for _ in range(rng.randint(1, 8)))
        out.append(ws)
        out.append(ws + "word" + ws)
    # Random code points from assorted blocks (valid Unicode scalar values).
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff),
              (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff),
              (0x2000, 0x206f), (0x2190, 0x22ff), (0x3040, 0x30ff),
              (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0xfe00, 0xfe0f),
              (0xff00, 0xffef), (0x1f300, 0x1f6ff), (0x1f900, 0x1f9ff),
              (0x20000, 0x2a6df)]
    for _ in range(60):
        chars = []
        for _ in range(rng.randint(1, 20)):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    # Special-token strings glued to text in random places.
    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>",
                "<|endoftext|>", "<s>", "</s>", "<unk>", "<mask>", "<|pad|>"]
    for _ in range(40):
        parts = []
        for _ in range(rng.randint(1, 5)):
            parts.append(rng.choice(specials) if rng.random() < 0.5
                         else rng.choice(words))
            parts.append(rng.choice(["", " ", "\n"]))
        out.append("".join(parts))
    return out


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("corpus.jsonl")
    strings = HAND_WRITTEN + generated(random.Random(20240315))
    with open(path, "w", encoding="utf-8") as f:
        for s in strings:
            f.write(json.dumps(s, ensure_ascii=True) + "\n")
    print(f"wrote {len(strings)} strings to {path}")


if __name__ == "__main__":
    main()

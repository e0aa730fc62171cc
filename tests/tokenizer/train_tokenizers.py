"""Builds tokenizer.json files of each style with Hugging Face `tokenizers`
itself (trained at test time on the corpus), for the reference test.

build_all(folder, texts) returns {name: (path, roundtrip)} where `roundtrip`
says whether decode(encode(s)) == s is expected for NFC text without added
tokens (False where the style loses text by design: unk tokens, Metaspace's
dropped leading space, removed splits).
"""
import json
from pathlib import Path

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

ENGLISH = [
    "Large language models predict the next token given the previous tokens.",
    "Attention layers keep a key and value cache that grows with the context.",
    "State space models keep a fixed-size state instead of a growing cache.",
    "Hybrid models interleave attention layers with state space layers.",
    "The server batches requests from many clients and streams tokens back.",
    "Tokenizers split text into pieces, and the model sees their integer ids.",
    "Inference inference inference: tokenization, tokenizer, tokenized.",
] * 20


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHARS = _bytes_to_unicode()


def _train(tok, texts, vocab_size, special_tokens, **kwargs):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  show_progress=False, **kwargs)
    tok.train_from_iterator(texts, trainer)


def _edit_model(tok, edit):
    """Applies edit(model_dict) to the tokenizer's JSON and reloads it."""
    data = json.loads(tok.to_str())
    edit(data["model"])
    return Tokenizer.from_str(json.dumps(data))


def _append_vocab(model, tokens):
    next_id = max(model["vocab"].values()) + 1
    for t in tokens:
        if t not in model["vocab"]:
            model["vocab"][t] = next_id
            next_id += 1


def gpt2(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    _train(tok, texts, 1200, ["<|endoftext|>"],
           initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_tokens([AddedToken("<mask>", single_word=True, lstrip=True, normalized=False),
                    AddedToken("hello world", normalized=True)])
    tok.add_special_tokens([AddedToken("<|pad|>", rstrip=True)])
    return tok, True


def gpt2_prefix_space(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    _train(tok, texts, 800, ["<|endoftext|>"],
           initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=True)])
    return tok, False  # a space is added in front of every piece


def llama3(texts):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                "<|start_header_id|>", "<|end_header_id|>"]
    _train(tok, texts, 1500, specials,
           initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # Whole words with no merge path: only ignore_merges finds them.
    extra = ["".join(BYTE_CHARS[b] for b in w.encode()) for w in
             [" tokenization", " inference", "Hybrid", " 你好", " état"]]
    tok = _edit_model(tok, lambda m: _append_vocab(m, extra))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    return tok, True


def qwen(texts):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    _train(tok, texts, 1500, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
           initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_tokens([AddedToken("<think>", normalized=False),
                    AddedToken("</think>", normalized=False)])
    return tok, True


def _llama2_base(texts, byte_tokens):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    # Few characters in the alphabet, so that rarer ones need the byte fallback.
    _train(tok, texts, 1200, ["<unk>", "<s>", "</s>"], limit_alphabet=80)
    tok = _edit_model(tok, lambda m: _append_vocab(m, [f"<0x{b:02X}>" for b in byte_tokens]))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def llama2(texts):
    return _llama2_base(texts, range(256)), True


def llama2_partial_bytes(texts):
    # Byte tokens for ASCII only: other characters missing from the vocabulary
    # fall to <unk> (fused), interleaved with byte-fallback ones.
    return _llama2_base(texts, range(128)), False


def metaspace(texts):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    _train(tok, texts, 1000, ["<unk>", "<s>", "</s>", "<mask>"])
    return tok, False


def metaspace_first_digits(texts):
    tok = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    _train(tok, texts, 1000, ["<unk>", "<|endoftext|>"], continuing_subword_prefix="##")
    return tok, False


def split_behaviors(texts):
    tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase(),
                                           normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[0-9]+"), behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"[.,;:!?]"), behavior="merged_with_previous"),
        pre_tokenizers.Split("-", behavior="removed"),
        pre_tokenizers.Split(Regex(r"\p{L}+"), behavior="isolated", invert=True),
        pre_tokenizers.Digits(individual_digits=False)])
    _train(tok, texts, 1000, ["[UNK]", "[CLS]", "[SEP]", "[MASK]"],
           end_of_word_suffix="</w>")
    tok.post_processor = processors.BertProcessing(
        ("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    # No decoder: `tokenizers` joins the tokens with spaces.
    return tok, False


def whitespace_accents(texts):
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Whitespace()])
    # (tokenizers panics when a Strip with stop > 0 sees an empty token, or
    # when its start and stop cuts cross: the order below avoids both.)
    tok.decoder = decoders.Sequence([decoders.Strip("s", 0, 1), decoders.Strip("#", 2, 0),
                                     decoders.Fuse()])
    _train(tok, texts, 800, ["[UNK]", "[MASK]"])
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, rstrip=True, normalized=True)])
    return tok, False


def demo_byte_level(texts):
    """The tiny demo model's shape: 256 byte tokens, no merges, 2 special tokens."""
    vocab = {BYTE_CHARS[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|bos|>", "<|eos|>"])
    return tok, True


BUILDERS = [gpt2, gpt2_prefix_space, llama3, qwen, llama2, llama2_partial_bytes, metaspace,
            metaspace_first_digits, split_behaviors, whitespace_accents, demo_byte_level]


def build_all(folder, texts):
    texts = list(texts) + ENGLISH
    out = {}
    for build in BUILDERS:
        tok, roundtrip = build(texts)
        path = Path(folder) / build.__name__ / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(path))
        out[build.__name__] = (path, roundtrip)
    return out

// hs_tokenize: offline tokenizer for tests and debugging.
//
// Encode (default): each stdin line is a JSON string; each stdout line is the
// JSON list of its token ids. Decode (--decode): each stdin line is a JSON list
// of ids; each stdout line is the decoded JSON string, or with --stream the JSON
// list of pieces the incremental detokenizer emitted (their concatenation is
// the decoded text). A line may instead be an object that overrides the flags
// for that line: {"text": "...", "add_special_tokens": false} or
// {"ids": [...], "skip_special_tokens": true, "stream": true}. A line that
// fails prints {"error": "..."} and the tool exits 1 after the last line; a
// tokenizer that fails to load exits 2.
//
//   echo '"Hello world"' | hs_tokenize --tokenizer=/models/llama3
//   echo '[9906, 1917]' | hs_tokenize --tokenizer=/models/llama3 --decode
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

ABSL_FLAG(std::string, tokenizer, "",
          "Path of a tokenizer.json, or of a folder holding tokenizer.json (and "
          "optionally tokenizer_config.json). Required.");
ABSL_FLAG(bool, add_special_tokens, true,
          "Encode: add the special tokens of the tokenizer's post_processor (e.g. "
          "BOS), as tokenizers' encode(add_special_tokens=True) does. Special-token "
          "strings inside the text are recognised either way.");
ABSL_FLAG(bool, skip_special_tokens, false,
          "Decode: drop special tokens (e.g. <|eot_id|>) from the text.");
ABSL_FLAG(uint64_t, max_input_bytes, hybridserve::engine::tokenizer::TokenizerOptions{}.max_input_bytes,
          "Encode: refuse (with an error line) input strings longer than this many "
          "bytes.");
ABSL_FLAG(bool, decode, false,
          "Decode instead of encode: stdin lines are JSON lists of ids; stdout "
          "lines are JSON strings.");
ABSL_FLAG(bool, stream, false,
          "With --decode: decode through the incremental (streaming) detokenizer, "
          "one id at a time, and print the JSON list of the pieces it emitted.");

namespace {

using hybridserve::engine::tokenizer::IncrementalDetokenizer;
using hybridserve::engine::tokenizer::Tokenizer;
using hybridserve::engine::tokenizer::TokenizerOptions;

std::string JsonString(const std::string& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return buf.GetString();
}

std::string JsonStrings(const std::vector<std::string>& list) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartArray();
  for (const std::string& s : list) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  w.EndArray();
  return buf.GetString();
}

std::string JsonIds(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i ? "," : "", ids[i]);
  out += "]";
  return out;
}

std::string ErrorLine(const absl::Status& s) {
  return absl::StrCat("{\"error\":", JsonString(std::string(s.message())), "}");
}

absl::StatusOr<rapidjson::Document> ParseLine(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad JSON at byte ", doc.GetErrorOffset(), ": ",
        rapidjson::GetParseError_En(doc.GetParseError())));
  }
  return doc;
}

// A boolean member of a line object, or the flag's value when absent.
absl::StatusOr<bool> LineOption(const rapidjson::Value& line, const char* key, bool flag) {
  if (!line.IsObject()) return flag;
  auto it = line.FindMember(key);
  if (it == line.MemberEnd()) return flag;
  if (!it->value.IsBool()) return absl::InvalidArgumentError(absl::StrCat(key, " must be true or false"));
  return it->value.GetBool();
}

absl::StatusOr<std::string> EncodeLine(const Tokenizer& tok, const std::string& line) {
  absl::StatusOr<rapidjson::Document> doc = ParseLine(line);
  if (!doc.ok()) return doc.status();
  const rapidjson::Value* text = &*doc;
  if (doc->IsObject() && doc->HasMember("text")) text = &(*doc)["text"];
  if (!text->IsString()) {
    return absl::InvalidArgumentError("encode input must be a JSON string or {\"text\": ...}");
  }
  absl::StatusOr<bool> add = LineOption(*doc, "add_special_tokens",
                                        absl::GetFlag(FLAGS_add_special_tokens));
  if (!add.ok()) return add.status();
  absl::StatusOr<std::vector<int32_t>> ids =
      tok.Encode(std::string_view(text->GetString(), text->GetStringLength()), *add);
  if (!ids.ok()) return ids.status();
  return JsonIds(*ids);
}

absl::StatusOr<std::string> DecodeLine(const Tokenizer& tok, const std::string& line) {
  absl::StatusOr<rapidjson::Document> doc = ParseLine(line);
  if (!doc.ok()) return doc.status();
  const rapidjson::Value* list = &*doc;
  if (doc->IsObject() && doc->HasMember("ids")) list = &(*doc)["ids"];
  const auto bad_input = absl::InvalidArgumentError(
      "decode input must be a JSON list of ids or {\"ids\": [...]}");
  if (!list->IsArray()) return bad_input;
  std::vector<int32_t> ids;
  for (const auto& v : list->GetArray()) {
    if (!v.IsInt()) return bad_input;
    ids.push_back(v.GetInt());
  }
  absl::StatusOr<bool> skip_or =
      LineOption(*doc, "skip_special_tokens", absl::GetFlag(FLAGS_skip_special_tokens));
  if (!skip_or.ok()) return skip_or.status();
  absl::StatusOr<bool> stream = LineOption(*doc, "stream", absl::GetFlag(FLAGS_stream));
  if (!stream.ok()) return stream.status();
  const bool skip = *skip_or;
  if (!*stream) {
    absl::StatusOr<std::string> text = tok.Decode(ids, skip);
    if (!text.ok()) return text.status();
    return JsonString(*text);
  }
  IncrementalDetokenizer detok(tok, skip);
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    absl::StatusOr<std::string> piece = detok.Step(id);
    if (!piece.ok()) return piece.status();
    pieces.push_back(*std::move(piece));
  }
  std::string rest;
  detok.Finish(&rest);
  pieces.push_back(std::move(rest));
  return JsonStrings(pieces);
}

}  // namespace

int main(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  // Show this file's flags under --help (Abseil matches flag files against the
  // binary's name, hs_...; it would find none).
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "/tokenize.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "Tokenizes JSON-lines input with a Hugging Face tokenizer.json.\n"
      "Encode (default): stdin lines are JSON strings, stdout lines JSON lists of ids.\n"
      "Decode (--decode): stdin lines are JSON lists of ids, stdout lines JSON strings\n"
      "(with --stream: JSON lists of the incremental detokenizer's pieces).\n"
      "A line may be an object overriding the flags for that line:\n"
      "  {\"text\": \"...\", \"add_special_tokens\": false}   (encode)\n"
      "  {\"ids\": [1, 2], \"skip_special_tokens\": true, \"stream\": true}   (decode)\n"
      "A failing line prints {\"error\": ...}; the exit status is then 1.\n"
      "Example: echo '\"Hello\"' | hs_tokenize --tokenizer=path/to/tokenizer.json");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_tokenizer).empty()) {
    std::cerr << "hs_tokenize: --tokenizer is required (see --help)\n";
    return 2;
  }
  TokenizerOptions options;
  options.max_input_bytes = absl::GetFlag(FLAGS_max_input_bytes);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
      Tokenizer::FromFile(absl::GetFlag(FLAGS_tokenizer), options);
  if (!tok.ok()) {
    std::cerr << "hs_tokenize: " << tok.status() << "\n";
    return 2;
  }
  std::ios::sync_with_stdio(false);
  const bool decode = absl::GetFlag(FLAGS_decode);
  bool failed = false;
  std::string line;
  while (std::getline(std::cin, line)) {
    absl::StatusOr<std::string> out = decode ? DecodeLine(**tok, line) : EncodeLine(**tok, line);
    if (out.ok()) {
      std::cout << *out << '\n';
    } else {
      failed = true;
      std::cout << ErrorLine(out.status()) << '\n';
    }
  }
  std::cout.flush();
  return failed ? 1 : 0;
}

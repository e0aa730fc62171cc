#include "engine/checkpoint.h"

#include <algorithm>
#include <map>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/json_util.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A shard name from the index must be a plain file name inside the folder.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos;
}

// The index's weight_map: tensor name → shard file name.
absl::StatusOr<std::map<std::string, std::string>> ReadWeightMap(
    const std::filesystem::path& index_path) {
  const std::string source = index_path.string();
  HS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  HS_ASSIGN_OR_RETURN(rapidjson::Document doc, ParseJsonObject(text, source));
  auto it = doc.FindMember("weight_map");
  if (it == doc.MemberEnd() || !it->value.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": missing or non-object \"weight_map\""));
  }
  std::map<std::string, std::string> weight_map;
  for (auto m = it->value.MemberBegin(); m != it->value.MemberEnd(); ++m) {
    std::string tensor(m->name.GetString(), m->name.GetStringLength());
    if (!m->value.IsString()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": weight_map entry for tensor \"", tensor,
          "\" is not a string"));
    }
    std::string shard(m->value.GetString(), m->value.GetStringLength());
    if (!IsPlainFileName(shard)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": weight_map maps tensor \"", tensor, "\" to \"", shard,
          "\", which is not a file name inside the checkpoint folder"));
    }
    if (!weight_map.emplace(tensor, std::move(shard)).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": weight_map lists tensor \"", tensor, "\" twice"));
    }
  }
  if (weight_map.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": weight_map is empty"));
  }
  return weight_map;
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::Empty(const std::filesystem::path& dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;
  return ckpt;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(
    const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint folder ", dir.string(), " does not exist"));
  }
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;

  const std::filesystem::path index_path = dir / kIndexFile;
  const bool sharded = std::filesystem::exists(index_path, ec);
  std::map<std::string, std::string> weight_map;
  std::vector<std::string> shard_names;
  if (sharded) {
    HS_ASSIGN_OR_RETURN(weight_map, ReadWeightMap(index_path));
    for (const auto& [tensor, shard] : weight_map) {
      if (std::find(shard_names.begin(), shard_names.end(), shard) ==
          shard_names.end()) {
        shard_names.push_back(shard);
      }
    }
    std::sort(shard_names.begin(), shard_names.end());
  } else if (std::filesystem::exists(dir / kSingleFile, ec)) {
    shard_names.push_back(kSingleFile);
  } else {
    return absl::NotFoundError(absl::StrCat("checkpoint folder ", dir.string(),
                                            " has neither ", kSingleFile,
                                            " nor ", kIndexFile));
  }

  std::map<std::string, const SafetensorsFile*> by_shard_name;
  for (const std::string& shard : shard_names) {
    const std::filesystem::path shard_path = dir / shard;
    if (sharded && !std::filesystem::exists(shard_path, ec)) {
      std::string example;
      for (const auto& [tensor, s] : weight_map) {
        if (s == shard) {
          example = tensor;
          break;
        }
      }
      return absl::NotFoundError(absl::StrCat(
          index_path.string(), " names shard ", shard_path.string(),
          " (for tensor \"", example, "\" and others), which does not exist"));
    }
    HS_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                        SafetensorsFile::Open(shard_path));
    for (const SafetensorsEntry& e : file->entries()) {
      auto [it, inserted] = ckpt->by_name_.emplace(e.name, &e);
      if (!inserted) {
        // Find which file holds the first copy, for the message.
        std::string other;
        for (const auto& f : ckpt->files_) {
          if (f->Find(e.name) != nullptr) other = f->path().string();
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor \"", e.name, "\" is in two shards: ", other, " and ",
            shard_path.string()));
      }
      ckpt->total_bytes_ += e.num_bytes;
    }
    by_shard_name[shard] = file.get();
    ckpt->files_.push_back(std::move(file));
  }

  for (const auto& [tensor, shard] : weight_map) {
    const SafetensorsFile* file = by_shard_name.at(shard);
    if (file->Find(tensor) == nullptr) {
      auto it = ckpt->by_name_.find(tensor);
      const std::string actual =
          it == ckpt->by_name_.end()
              ? std::string("no shard holds it")
              : absl::StrCat("it is in a different shard");
      return absl::InvalidArgumentError(absl::StrCat(
          index_path.string(), " maps tensor \"", tensor, "\" to ",
          file->path().string(), ", which does not contain it (", actual,
          ")"));
    }
  }
  return ckpt;
}

const SafetensorsEntry* Checkpoint::Find(std::string_view name) const {
  auto it = by_name_.find(absl::string_view(name.data(), name.size()));
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, entry] : by_name_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status Checkpoint::Read(std::string_view name,
                              absl::Span<const int64_t> expected_shape,
                              DType dst_dtype, void* dst) const {
  const absl::string_view tensor(name.data(), name.size());
  const SafetensorsEntry* e = Find(name);
  if (e == nullptr) {
    return absl::NotFoundError(absl::StrCat("tensor \"", tensor,
                                            "\" not found in checkpoint ",
                                            dir_.string()));
  }
  // The entry's file, for messages.
  std::string file;
  for (const auto& f : files_) {
    if (f->Find(name) == e) file = f->path().string();
  }
  if (!std::equal(e->shape.begin(), e->shape.end(), expected_shape.begin(),
                  expected_shape.end())) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": tensor \"", tensor, "\" has shape ", ShapeString(e->shape),
        ", expected ", ShapeString(expected_shape)));
  }
  if (!IsFloat(e->dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": tensor \"", tensor, "\" has dtype ",
                     std::string(DTypeName(e->dtype)),
                     ", expected a float type (F32, F16, BF16)"));
  }
  if (!IsFloat(dst_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reading tensor \"", tensor, "\": destination dtype ",
        std::string(DTypeName(dst_dtype)), " is not a float type"));
  }
  ConvertFloats(e->data, e->dtype, dst, dst_dtype,
                static_cast<size_t>(e->num_elements()));
  return absl::OkStatus();
}

}  // namespace hybridserve::engine

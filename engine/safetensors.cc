#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/json_util.h"
#include "engine/status_macros.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace hybridserve::engine {
namespace {

// The reference implementation refuses headers above 100 MB; so do we, so that
// a corrupt length cannot make us parse gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Element count and byte size of a tensor, or false on uint64 overflow (or a
// byte size that does not fit size_t).
bool TensorBytes(const std::vector<int64_t>& shape, size_t dtype_size,
                 uint64_t* num_bytes) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(dtype_size), &n)) {
    return false;
  }
  if (n > static_cast<uint64_t>(SIZE_MAX)) return false;
  *num_bytes = n;
  return true;
}

// Parses one tensor's header entry. `data_bytes` is the size of the data
// section after the header.
absl::StatusOr<SafetensorsEntry> ParseEntry(const std::string& file,
                                            const std::string& name,
                                            const rapidjson::Value& v,
                                            const std::byte* data_start,
                                            uint64_t data_bytes,
                                            uint64_t* begin_out) {
  const std::string where = absl::StrCat(file, ": tensor \"", name, "\"");
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", absl::string_view(what.data(), what.size())));
  };
  if (!v.IsObject()) return bad("header entry is not an object");
  SafetensorsEntry e;
  e.name = name;

  auto dtype_it = v.FindMember("dtype");
  if (dtype_it == v.MemberEnd() || !dtype_it->value.IsString()) {
    return bad("missing or non-string \"dtype\"");
  }
  const std::string dtype_name(dtype_it->value.GetString(),
                               dtype_it->value.GetStringLength());
  absl::StatusOr<DType> dtype = ParseSafetensorsDType(dtype_name);
  if (!dtype.ok()) return bad(std::string(dtype.status().message()));
  e.dtype = *dtype;

  auto shape_it = v.FindMember("shape");
  if (shape_it == v.MemberEnd() || !shape_it->value.IsArray()) {
    return bad("missing or non-list \"shape\"");
  }
  for (const rapidjson::Value& d : shape_it->value.GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0) {
      return bad("\"shape\" must hold non-negative integers");
    }
    e.shape.push_back(d.GetInt64());
  }

  auto off_it = v.FindMember("data_offsets");
  if (off_it == v.MemberEnd() || !off_it->value.IsArray() ||
      off_it->value.Size() != 2 || !off_it->value[0].IsUint64() ||
      !off_it->value[1].IsUint64()) {
    return bad("\"data_offsets\" must be [begin, end], two non-negative integers");
  }
  const uint64_t begin = off_it->value[0].GetUint64();
  const uint64_t end = off_it->value[1].GetUint64();
  if (begin > end) {
    return bad(absl::StrCat("data_offsets [", begin, ", ", end,
                            "] are unordered (begin > end)"));
  }
  if (end > data_bytes) {
    return bad(absl::StrCat("data_offsets [", begin, ", ", end,
                            "] run past the data section (", data_bytes,
                            " bytes): file truncated or header corrupt"));
  }
  uint64_t expected;
  if (!TensorBytes(e.shape, DTypeSize(e.dtype), &expected)) {
    return bad(absl::StrCat("shape ", ShapeString(e.shape),
                            " overflows the element count"));
  }
  if (end - begin != expected) {
    return bad(absl::StrCat("data_offsets [", begin, ", ", end, "] hold ",
                            end - begin, " bytes but shape ",
                            ShapeString(e.shape), " of ", dtype_name, " needs ",
                            expected));
  }
  e.data = data_start + begin;
  e.num_bytes = static_cast<size_t>(expected);
  *begin_out = begin;
  return e;
}

}  // namespace

int64_t SafetensorsEntry::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_bytes_);
}

const SafetensorsEntry* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(absl::string_view(name.data(), name.size()));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::filesystem::path& path) {
  const std::string file = path.string();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg =
        absl::StrCat("cannot open ", file, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg)
                         : absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": not a regular file"));
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < 8) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": ", file_bytes,
        " bytes is too small for a safetensors file (8-byte header length)"));
  }
  void* map = mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  close(fd);
  if (map == MAP_FAILED) {
    return absl::InternalError(
        absl::StrCat("cannot mmap ", file, ": ", std::strerror(map_errno)));
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->mapping_ = map;
  f->mapping_bytes_ = file_bytes;
  const auto* bytes = static_cast<const std::byte*>(map);

  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) {
    header_bytes = (header_bytes << 8) | static_cast<uint8_t>(bytes[i]);
  }
  if (header_bytes > file_bytes - 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": header length ", header_bytes, " exceeds the file size (",
        file_bytes, " bytes): not a safetensors file, or truncated"));
  }
  if (header_bytes > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": header length ", header_bytes, " exceeds the limit of ",
        kMaxHeaderBytes, " bytes"));
  }
  const std::string_view header(reinterpret_cast<const char*>(bytes + 8),
                                static_cast<size_t>(header_bytes));
  const std::byte* data_start = bytes + 8 + header_bytes;
  const uint64_t data_bytes = file_bytes - 8 - header_bytes;

  // ParseJsonObject rejects non-objects with the file named.
  HS_ASSIGN_OR_RETURN(rapidjson::Document doc,
                      ParseJsonObject(header, file + " (safetensors header)"));

  std::vector<std::pair<uint64_t, SafetensorsEntry>> parsed;
  absl::flat_hash_set<std::string> seen;
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string name(it->name.GetString(), it->name.GetStringLength());
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": tensor \"", name, "\" appears twice in the header"));
    }
    if (name == "__metadata__") {
      if (!it->value.IsObject()) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": \"__metadata__\" is not an object"));
      }
      for (auto m = it->value.MemberBegin(); m != it->value.MemberEnd(); ++m) {
        std::string key(m->name.GetString(), m->name.GetStringLength());
        if (!m->value.IsString()) {
          return absl::InvalidArgumentError(absl::StrCat(
              file, ": \"__metadata__\" value of \"", key,
              "\" is not a string"));
        }
        f->metadata_[key] =
            std::string(m->value.GetString(), m->value.GetStringLength());
      }
      continue;
    }
    uint64_t begin = 0;
    HS_ASSIGN_OR_RETURN(
        SafetensorsEntry e,
        ParseEntry(file, name, it->value, data_start, data_bytes, &begin));
    parsed.emplace_back(begin, std::move(e));
  }

  std::stable_sort(parsed.begin(), parsed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  // Overlap check over non-empty tensors, in offset order.
  const SafetensorsEntry* prev = nullptr;
  uint64_t prev_end = 0;
  for (const auto& [begin, e] : parsed) {
    if (e.num_bytes == 0) continue;
    if (prev != nullptr && begin < prev_end) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": tensor \"", e.name, "\" (data_offsets [", begin, ", ",
          begin + e.num_bytes, "]) overlaps tensor \"", prev->name,
          "\" (ending at ", prev_end, ")"));
    }
    prev = &e;
    prev_end = begin + e.num_bytes;
  }
  f->entries_.reserve(parsed.size());
  for (auto& [begin, e] : parsed) {
    f->index_[e.name] = f->entries_.size();
    f->entries_.push_back(std::move(e));
  }
  return f;
}

absl::Status WriteSafetensors(const std::filesystem::path& path,
                              absl::Span<const SafetensorsWriteEntry> entries,
                              const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  if (!metadata.empty()) {
    w.Key("__metadata__");
    w.StartObject();
    for (const auto& [k, v] : metadata) {
      w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndObject();
  }
  absl::flat_hash_set<std::string> names;
  uint64_t offset = 0;
  for (const SafetensorsWriteEntry& e : entries) {
    const std::string where = absl::StrCat(file, ": tensor \"", e.name, "\"");
    if (e.name == "__metadata__" || !names.insert(e.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate or reserved name"));
    }
    for (int64_t d : e.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": negative dimension in shape ",
                         ShapeString(e.shape)));
      }
    }
    uint64_t expected;
    if (!TensorBytes(e.shape, DTypeSize(e.dtype), &expected) ||
        expected != e.data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ", e.data.size(), " bytes given for shape ",
          ShapeString(e.shape), " of ", std::string(DTypeName(e.dtype))));
    }
    w.Key(e.name.data(), static_cast<rapidjson::SizeType>(e.name.size()));
    w.StartObject();
    w.Key("dtype");
    const std::string_view dtype_name = DTypeName(e.dtype);
    w.String(dtype_name.data(),
             static_cast<rapidjson::SizeType>(dtype_name.size()));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : e.shape) w.Int64(d);
    w.EndArray();
    w.Key("data_offsets");
    w.StartArray();
    w.Uint64(offset);
    w.Uint64(offset + expected);
    w.EndArray();
    w.EndObject();
    offset += expected;
  }
  w.EndObject();
  std::string header(buffer.GetString(), buffer.GetSize());
  header.append((8 - header.size() % 8) % 8, ' ');

  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (out == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot create ", file, ": ", std::strerror(errno)));
  }
  unsigned char len_bytes[8];
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) {
    len_bytes[i] = static_cast<unsigned char>(len & 0xff);
    len >>= 8;
  }
  bool ok = std::fwrite(len_bytes, 1, 8, out) == 8 &&
            std::fwrite(header.data(), 1, header.size(), out) == header.size();
  for (const SafetensorsWriteEntry& e : entries) {
    if (!ok) break;
    if (e.data.empty()) continue;
    ok = std::fwrite(e.data.data(), 1, e.data.size(), out) == e.data.size();
  }
  if (std::fclose(out) != 0) ok = false;
  if (!ok) {
    return absl::DataLossError(absl::StrCat("error writing ", file));
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine

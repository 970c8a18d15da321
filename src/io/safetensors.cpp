#include "io/safetensors.h"

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <set>

#include "io/atomic_file.h"
#include "io/stored_dtype.h"

namespace tv {
namespace {

StoredDType st_dtype_parse(const std::string& t) {
  for (StoredDType d : {StoredDType::F64, StoredDType::F32, StoredDType::F16, StoredDType::BF16, StoredDType::I64,
                        StoredDType::I32, StoredDType::I16, StoredDType::I8, StoredDType::U64, StoredDType::U32,
                        StoredDType::U16, StoredDType::U8, StoredDType::Bool})
    if (t == stored_dtype_name(d)) return d;
  return StoredDType::Unsupported;
}

const char* st_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::U16: return "U16";
    case DType::U8: return "U8";
    case DType::Q8: break;  // no safetensors dtype: `convert --weights q8` stores the blocks as U8 bytes
  }
  fail("safetensors: no dtype for ", dtype_name(t), " tensors (q8 weights are written by `tinyvlm convert --weights q8`)");
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), file_(path) {
  const size_t size = file_.size();
  if (size < 8) fail(path, ": not a safetensors file (", size, " bytes, expected an 8-byte header length first)");
  const unsigned char* map = bytes();
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | map[i];
  if (header_len > size - 8) fail(path, ": header length ", header_len, " at byte 0 exceeds the file size ", size);
  data_start_ = 8 + header_len;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(map + 8, map + 8 + header_len);
  } catch (const std::exception& e) {
    fail(path, ": malformed JSON header: ", e.what());
  }
  try {
    if (!header.is_object()) fail("the header is not a JSON object");
    size_t data_size = size - data_start_;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        for (auto m2 = it->begin(); m2 != it->end(); ++m2) {
          if (!m2->is_string()) fail("__metadata__.", m2.key(), " is not a string");
          metadata_[m2.key()] = m2->get<std::string>();
        }
        continue;
      }
      const auto& v = *it;
      Entry e;
      if (!v.contains("dtype") || !v["dtype"].is_string()) fail("tensor '", it.key(), "': missing string field dtype");
      const std::string dtype = v["dtype"].get<std::string>();
      e.dtype = st_dtype_parse(dtype);
      size_t es = stored_dtype_size(e.dtype);
      if (!es) fail("tensor '", it.key(), "': unknown dtype ", dtype);
      if (!v.contains("shape") || !v["shape"].is_array()) fail("tensor '", it.key(), "': missing array field shape");
      for (const auto& d : v["shape"]) e.shape.push_back(d.get<int64_t>());
      const auto& off = v.at("data_offsets");
      if (!off.is_array() || off.size() != 2) fail("tensor '", it.key(), "': data_offsets must be [begin, end]");
      e.begin = off[0].get<size_t>();
      e.end = off[1].get<size_t>();
      if (e.end < e.begin || e.end > data_size)
        fail("tensor '", it.key(), "': data_offsets [", e.begin, ",", e.end, "] outside the data section of ",
             data_size, " bytes");
      // The element count from the shape, overflow-checked (a hostile header could otherwise wrap it to
      // the byte count it claims).
      uint64_t bytes = es;
      for (int64_t d : e.shape)
        if (d < 0 || __builtin_mul_overflow(bytes, uint64_t(d), &bytes))
          fail("tensor '", it.key(), "': shape ", shape_str(e.shape), " has a negative or too large dimension");
      if (e.end - e.begin != bytes)
        fail("tensor '", it.key(), "': ", e.end - e.begin, " bytes for shape ", shape_str(e.shape), " of ", dtype);
      order_.push_back(it.key());
      entries_[it.key()] = e;
    }
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  } catch (const std::exception& e) {
    fail(path, ": malformed header: ", e.what());
  }
  // File order = order of data offsets, as writers lay tensors out.
  std::sort(order_.begin(), order_.end(),
            [&](const std::string& a, const std::string& b) { return entries_[a].begin < entries_[b].begin; });
}

std::vector<std::string> SafetensorsFile::names() const { return order_; }

Shape SafetensorsFile::shape(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_, ": no tensor named '", name, "'");
  return it->second.shape;
}

std::string SafetensorsFile::dtype_name(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_, ": no tensor named '", name, "'");
  return stored_dtype_name(it->second.dtype);
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_, ": no tensor named '", name, "'");
  const Entry& e = it->second;
  return decode_stored(e.dtype, e.shape, bytes() + data_start_ + e.begin, str_cat(path_, ": tensor '", name, "'"));
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  size_t offset = 0;
  for (const auto& nt : tensors) {
    if (!seen.insert(nt.name).second) fail(path, ": duplicate tensor name '", nt.name, "'");
    size_t bytes = nt.tensor.nbytes();
    header[nt.name] = {{"dtype", st_dtype_name(nt.tensor.dtype())},
                       {"shape", nt.tensor.shape()},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');  // align the data section to 8 bytes
  AtomicFile out(path);
  uint64_t len = h.size();
  unsigned char lenbuf[8];
  for (int i = 0; i < 8; ++i) lenbuf[i] = (len >> (8 * i)) & 0xff;
  out.write(lenbuf, 8);
  out.write(h.data(), h.size());
  for (const auto& nt : tensors) {
    Tensor host = nt.tensor.to(Device::CPU).contiguous();
    out.write(host.raw(), host.nbytes());
  }
  out.commit();
}

}  // namespace tv

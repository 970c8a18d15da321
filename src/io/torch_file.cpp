#include "io/torch_file.h"

#include <charconv>
#include <cstring>
#include <deque>
#include <iterator>
#include <unordered_map>
#include <utility>

#include "io/zip_reader.h"
#include "io/mapped_file.h"

namespace tv {
namespace {

// ---- what the restricted unpickler can build -------------------------------------------------------

// The whitelisted globals: what a GLOBAL opcode may name.
enum class Callable : uint8_t {
  OrderedDict,       // collections.OrderedDict
  Set,               // builtins.set / frozenset: kept as a list
  TorchSize,         // torch.Size: kept as a tuple
  RebuildTensorV2,   // torch._utils._rebuild_tensor_v2
  RebuildTensorV3,   // torch._utils._rebuild_tensor_v3 (dtypes without a typed storage class)
  RebuildParameter,  // torch._utils._rebuild_parameter[_with_state]
  StorageType,       // torch.FloatStorage, ..., torch.UntypedStorage: only named in storage references
  DTypeValue,        // torch.float32, ...: an argument of _rebuild_tensor_v3
};

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

// Objects live in one arena for the whole parse (no reference counting, no recursive destruction, and
// reference cycles a pickle may build are harmless).
struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;  // Int, Bool; Storage / Tensor: index into their tables
  double f = 0;
  std::string s;  // Str, Bytes; Global: "module.name"
  std::vector<Obj*> items;                   // Tuple, List
  std::vector<std::pair<Obj*, Obj*>> dict;   // Dict, in insertion order
  Callable callable = Callable::OrderedDict;  // Global
  StoredDType dtype = StoredDType::Unsupported;  // Global StorageType / DTypeValue
  size_t elem_size = 0;                       // Global StorageType / DTypeValue
};

struct StorageRec {
  std::string key, torch_dtype;
  StoredDType dtype = StoredDType::Unsupported;
  size_t elem_size = 0;
  uint64_t begin = 0, bytes = 0;
  int64_t numel = 0;  // as the persistent id gives it
};

struct TypeInfo {
  const char* name;
  StoredDType dtype;
  size_t size;
};

// torch.<X>Storage classes as torch.save names them (the storage's element type).
constexpr TypeInfo kStorageTypes[] = {
    {"FloatStorage", StoredDType::F32, 4},        {"DoubleStorage", StoredDType::F64, 8},
    {"HalfStorage", StoredDType::F16, 2},         {"BFloat16Storage", StoredDType::BF16, 2},
    {"LongStorage", StoredDType::I64, 8},         {"IntStorage", StoredDType::I32, 4},
    {"ShortStorage", StoredDType::I16, 2},        {"CharStorage", StoredDType::I8, 1},
    {"ByteStorage", StoredDType::U8, 1},          {"BoolStorage", StoredDType::Bool, 1},
    {"ComplexFloatStorage", StoredDType::Unsupported, 8}, {"ComplexDoubleStorage", StoredDType::Unsupported, 16},
    {"QInt8Storage", StoredDType::Unsupported, 1}, {"QUInt8Storage", StoredDType::Unsupported, 1},
    {"QInt32Storage", StoredDType::Unsupported, 4}, {"QUInt4x2Storage", StoredDType::Unsupported, 1},
    {"QUInt2x4Storage", StoredDType::Unsupported, 1}, {"UntypedStorage", StoredDType::U8, 1},
};

// torch dtypes (torch.float32, ...) as _rebuild_tensor_v3 receives them.
constexpr TypeInfo kDTypes[] = {
    {"float32", StoredDType::F32, 4},   {"float", StoredDType::F32, 4},      {"float64", StoredDType::F64, 8},
    {"double", StoredDType::F64, 8},    {"float16", StoredDType::F16, 2},    {"half", StoredDType::F16, 2},
    {"bfloat16", StoredDType::BF16, 2}, {"int64", StoredDType::I64, 8},      {"long", StoredDType::I64, 8},
    {"int32", StoredDType::I32, 4},     {"int", StoredDType::I32, 4},        {"int16", StoredDType::I16, 2},
    {"short", StoredDType::I16, 2},     {"int8", StoredDType::I8, 1},        {"uint8", StoredDType::U8, 1},
    {"bool", StoredDType::Bool, 1},     {"uint16", StoredDType::U16, 2},     {"uint32", StoredDType::U32, 4},
    {"uint64", StoredDType::U64, 8},    {"complex64", StoredDType::Unsupported, 8},
    {"cfloat", StoredDType::Unsupported, 8}, {"complex128", StoredDType::Unsupported, 16},
    {"cdouble", StoredDType::Unsupported, 16}, {"float8_e4m3fn", StoredDType::Unsupported, 1},
    {"float8_e5m2", StoredDType::Unsupported, 1}, {"float8_e4m3fnuz", StoredDType::Unsupported, 1},
    {"float8_e5m2fnuz", StoredDType::Unsupported, 1}, {"float8_e8m0fnu", StoredDType::Unsupported, 1},
    {"complex32", StoredDType::Unsupported, 4}, {"chalf", StoredDType::Unsupported, 4},
    {"float4_e2m1fn_x2", StoredDType::Unsupported, 1}, {"quint8", StoredDType::Unsupported, 1},
    {"qint8", StoredDType::Unsupported, 1}, {"qint32", StoredDType::Unsupported, 4},
    {"quint4x2", StoredDType::Unsupported, 1}, {"quint2x4", StoredDType::Unsupported, 1},
    {"bits1x8", StoredDType::Unsupported, 1}, {"bits2x4", StoredDType::Unsupported, 1},
    {"bits4x2", StoredDType::Unsupported, 1}, {"bits8", StoredDType::Unsupported, 1},
    {"bits16", StoredDType::Unsupported, 2}, {"uint1", StoredDType::Unsupported, 1},
    {"uint2", StoredDType::Unsupported, 1}, {"uint3", StoredDType::Unsupported, 1},
    {"uint4", StoredDType::Unsupported, 1}, {"uint5", StoredDType::Unsupported, 1},
    {"uint6", StoredDType::Unsupported, 1}, {"uint7", StoredDType::Unsupported, 1},
    {"int1", StoredDType::Unsupported, 1}, {"int2", StoredDType::Unsupported, 1},
    {"int3", StoredDType::Unsupported, 1}, {"int4", StoredDType::Unsupported, 1},
    {"int5", StoredDType::Unsupported, 1}, {"int6", StoredDType::Unsupported, 1},
    {"int7", StoredDType::Unsupported, 1},
};
// A view wider than its storage (stride 0 or overlapping rows) is materialised at its full size by get();
// beyond this a file of a few bytes could ask for any amount of memory.
constexpr uint64_t kMaxBroadcastBytes = uint64_t(1) << 30;

const TypeInfo* find_type(const TypeInfo* table, size_t n, const std::string& name) {
  for (size_t i = 0; i < n; ++i)
    if (name == table[i].name) return &table[i];
  return nullptr;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Float: return "a float";
    case Kind::Str: return "a str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "a tuple";
    case Kind::List: return "a list";
    case Kind::Dict: return "a dict";
    case Kind::Global: return "a class or function";
    case Kind::Storage: return "a storage";
    case Kind::Tensor: return "a tensor";
  }
  return "?";
}

// Shortest text that reads back as the same double (Python's repr for finite values).
std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// ---- the unpickler -----------------------------------------------------------------------------------

struct TensorRec {
  size_t storage = 0;
  StoredDType dtype = StoredDType::Unsupported;
  std::string torch_dtype;
  size_t elem_size = 0;
  Shape shape, stride;
  int64_t offset = 0;
};

class Unpickler {
 public:
  Unpickler(const std::string& path, const std::string& archive, const unsigned char* file,
            const std::vector<ZipEntry>& entries, const ZipEntry& pkl)
      : path_(path), archive_(archive), pkl_(pkl), p_(file + pkl.begin), n_(pkl.size) {
    for (const ZipEntry& e : entries) entries_[e.name] = &e;
  }

  Obj* run();
  std::vector<StorageRec> storages;
  std::vector<TensorRec> tensors;

 private:
  template <typename... Args>
  [[noreturn]] void bad(uint64_t at, const Args&... what) const {
    fail(path_, ": ", archive_, "/data.pkl byte ", at, " (file byte ", pkl_.begin + at, "): ", what...);
  }

  Obj* make(Kind k) {
    Obj& o = arena_.emplace_back();
    o.kind = k;
    return &o;
  }
  Obj* make_int(int64_t v) {
    Obj* o = make(Kind::Int);
    o->i = v;
    return o;
  }

  // Operand reads, bounds-checked against the pickle.
  const unsigned char* take(uint64_t len) {
    if (len > n_ - pos_) bad(op_, "truncated: the opcode needs ", len, " more bytes, the pickle has ", n_ - pos_);
    const unsigned char* r = p_ + pos_;
    pos_ += len;
    return r;
  }
  uint64_t le(int bytes) {
    const unsigned char* b = take(uint64_t(bytes));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | b[i];
    return v;
  }
  std::string line() {
    const unsigned char* start = p_ + pos_;
    const void* nl = std::memchr(start, '\n', n_ - pos_);
    if (!nl) bad(op_, "truncated: expected a newline-terminated name");
    size_t len = size_t(static_cast<const unsigned char*>(nl) - start);
    pos_ += len + 1;
    return std::string(reinterpret_cast<const char*>(start), len);
  }
  // Two's-complement little-endian integer of `len` bytes (LONG1 / LONG4).
  int64_t long_value(uint64_t len) {
    const unsigned char* b = take(len);
    if (len == 0) return 0;
    const bool negative = b[len - 1] & 0x80;
    for (uint64_t i = 8; i < len; ++i)
      if (b[i] != (negative ? 0xff : 0x00)) bad(op_, "integer of ", len, " bytes does not fit 64 bits");
    uint64_t v = negative ? ~uint64_t(0) : 0;
    for (uint64_t i = std::min<uint64_t>(len, 8); i-- > 0;) v = v << 8 | b[i];
    if (len < 8 && negative) v |= ~uint64_t(0) << (8 * len);
    if (len >= 8 && ((v >> 63) != 0) != negative) bad(op_, "integer of ", len, " bytes does not fit 64 bits");
    return int64_t(v);
  }

  Obj* pop() {
    if (stack_.size() <= mark_floor()) bad(op_, "the opcode needs a value but the stack is empty");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.size() <= mark_floor()) bad(op_, "the opcode needs a value but the stack is empty");
    return stack_.back();
  }
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) bad(op_, "the opcode needs a MARK, but none is open");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> items(stack_.begin() + std::ptrdiff_t(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj* expect(Obj* o, Kind k, const char* what) {
    if (o->kind != k) bad(op_, what, " should be ", kind_name(k), ", found ", kind_name(o->kind));
    return o;
  }
  Obj* container(Kind k, const char* op) {
    Obj* o = top();
    if (o->kind != k) bad(op_, op, " needs ", kind_name(k), " on the stack, found ", kind_name(o->kind));
    return o;
  }

  Obj* global(const std::string& module, const std::string& name);
  Obj* call(Obj* fn, Obj* args);
  Obj* persistent_load(Obj* pid);
  Obj* rebuild_tensor(const std::vector<Obj*>& a, bool v3);
  Shape int_tuple(Obj* o, const char* what);

  std::string path_, archive_;
  const ZipEntry& pkl_;
  const unsigned char* p_;
  uint64_t n_, pos_ = 0, op_ = 0;
  std::unordered_map<std::string, const ZipEntry*> entries_;
  std::unordered_map<std::string, size_t> storage_index_;
  std::deque<Obj> arena_;
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Obj*> memo_;
  static Obj constant(Kind k, int64_t v) {
    Obj o;
    o.kind = k;
    o.i = v;
    return o;
  }
  Obj none_ = constant(Kind::None, 0), true_ = constant(Kind::Bool, 1), false_ = constant(Kind::Bool, 0);
  // Items copied by set() and OrderedDict(pairs): bounded by the pickle's size, so that a small file cannot
  // copy one big list over and over (each call costs a few bytes of pickle).
  uint64_t copied_ = 0;
  void count_copies(size_t items) {
    copied_ += items;
    if (copied_ > 4 * n_ + (uint64_t(1) << 20))
      bad(op_, "the pickle copies more items than a checkpoint of ", n_, " bytes can hold (", copied_, ")");
  }
};

Obj* Unpickler::global(const std::string& module, const std::string& name) {
  Obj* g = make(Kind::Global);
  g->s = module + "." + name;
  auto is = [&](const char* m, const char* n) { return module == m && name == n; };
  if (is("collections", "OrderedDict")) {
    g->callable = Callable::OrderedDict;
  } else if (is("builtins", "set") || is("builtins", "frozenset") || is("__builtin__", "set") ||
             is("__builtin__", "frozenset")) {
    g->callable = Callable::Set;
  } else if (is("torch", "Size")) {
    g->callable = Callable::TorchSize;
  } else if (is("torch._utils", "_rebuild_tensor_v2")) {
    g->callable = Callable::RebuildTensorV2;
  } else if (is("torch._utils", "_rebuild_tensor_v3")) {
    g->callable = Callable::RebuildTensorV3;
  } else if (is("torch._utils", "_rebuild_parameter") || is("torch._utils", "_rebuild_parameter_with_state")) {
    g->callable = Callable::RebuildParameter;
  } else if (const TypeInfo* t = (module == "torch" || module == "torch.cuda" || module == "torch.storage")
                                     ? find_type(kStorageTypes, std::size(kStorageTypes), name)
                                     : nullptr;
             t && (module != "torch.storage" || name == "UntypedStorage")) {
    g->callable = Callable::StorageType;
    g->dtype = t->dtype;
    g->elem_size = t->size;
  } else if (const TypeInfo* d = module == "torch" ? find_type(kDTypes, std::size(kDTypes), name) : nullptr) {
    g->callable = Callable::DTypeValue;
    g->dtype = d->dtype;
    g->elem_size = d->size;
  } else {
    bad(op_, "the pickle names '", g->s, "', which tinyvlm does not load: a checkpoint may only hold tensors, dicts, "
             "lists, tuples, strings and numbers (loading never runs code from the file)");
  }
  return g;
}

Shape Unpickler::int_tuple(Obj* o, const char* what) {
  expect(o, Kind::Tuple, what);
  Shape s;
  for (Obj* x : o->items) s.push_back(expect(x, Kind::Int, what)->i);
  return s;
}

Obj* Unpickler::persistent_load(Obj* pid) {
  // ('storage', storage class, key, location, numel); the location (cpu, cuda:0) does not matter here.
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage")
    bad(op_, "a persistent id should be ('storage', type, key, location, numel), found ", kind_name(pid->kind),
        pid->kind == Kind::Tuple ? str_cat(" of ", pid->items.size(), " items") : std::string());
  Obj* type = pid->items[1];
  if (type->kind != Kind::Global || type->callable != Callable::StorageType)
    bad(op_, "the storage type should be a torch storage class, found ",
        type->kind == Kind::Global ? type->s : kind_name(type->kind));
  const std::string key = expect(pid->items[2], Kind::Str, "the storage key")->s;
  const int64_t numel = expect(pid->items[4], Kind::Int, "the storage size")->i;
  auto known = storage_index_.find(key);
  size_t index;
  if (known != storage_index_.end()) {
    index = known->second;
    const StorageRec& s = storages[index];
    if (s.dtype != type->dtype || s.elem_size != type->elem_size || s.numel != numel)
      bad(op_, "storage '", key, "' is referred to as ", numel, " elements of ", type->s, " after ", s.numel,
          " elements of ", s.torch_dtype, " (torch.save never writes one storage as two types)");
  } else {
    const std::string entry = archive_ + "/data/" + key;
    auto it = entries_.find(entry);
    if (it == entries_.end()) bad(op_, "storage '", key, "' has no entry '", entry, "' in the archive");
    StorageRec s;
    s.key = key;
    s.torch_dtype = type->s.substr(type->s.rfind('.') + 1);
    s.dtype = type->dtype;
    s.elem_size = type->elem_size;
    s.begin = it->second->begin;
    s.bytes = it->second->size;
    s.numel = numel;
    uint64_t need;
    if (numel < 0 || __builtin_mul_overflow(uint64_t(numel), uint64_t(s.elem_size), &need) || need > s.bytes)
      bad(op_, "storage '", key, "' should hold ", numel, " elements of ", s.torch_dtype, " but its entry '", entry,
          "' has ", s.bytes, " bytes");
    index = storages.size();
    storage_index_[key] = index;
    storages.push_back(std::move(s));
  }
  Obj* o = make(Kind::Storage);
  o->i = int64_t(index);
  return o;
}

Obj* Unpickler::rebuild_tensor(const std::vector<Obj*>& a, bool v3) {
  // v2: (storage, offset, size, stride, requires_grad, backward_hooks[, metadata]);
  // v3: the same plus the dtype after the hooks (the storage is then untyped, counted in bytes).
  const size_t need = v3 ? 7 : 6;
  if (a.size() < need) bad(op_, "_rebuild_tensor_v", v3 ? 3 : 2, " expects ", need, " arguments, got ", a.size());
  TensorRec t;
  t.storage = size_t(expect(a[0], Kind::Storage, "the tensor's storage")->i);
  const StorageRec& s = storages[t.storage];
  t.offset = expect(a[1], Kind::Int, "the storage offset")->i;
  t.shape = int_tuple(a[2], "the tensor size");
  t.stride = int_tuple(a[3], "the tensor stride");
  if (v3) {
    Obj* d = a[6];
    if (d->kind != Kind::Global || d->callable != Callable::DTypeValue)
      bad(op_, "the tensor dtype should be a torch dtype, found ", d->kind == Kind::Global ? d->s : kind_name(d->kind));
    t.dtype = d->dtype;
    t.elem_size = d->elem_size;
    t.torch_dtype = d->s.substr(d->s.rfind('.') + 1);
  } else {
    t.dtype = s.dtype;
    t.elem_size = s.elem_size;
    t.torch_dtype = s.torch_dtype;
  }
  if (t.shape.size() != t.stride.size())
    bad(op_, "tensor size ", shape_str(t.shape), " and stride ", shape_str(t.stride), " differ in length");
  // Every element the view can reach must lie inside the storage.
  bool empty = false;
  uint64_t last = t.offset >= 0 ? uint64_t(t.offset) : 0;
  bool ok = t.offset >= 0;
  int64_t numel = 1, nonzero = 1;  // both must fit: copies are sized by them (an empty tensor too)
  for (size_t i = 0; i < t.shape.size() && ok; ++i) {
    if (t.shape[i] < 0 || t.stride[i] < 0 || __builtin_mul_overflow(numel, t.shape[i], &numel) ||
        (t.shape[i] > 0 && __builtin_mul_overflow(nonzero, t.shape[i], &nonzero)))
      ok = false;
    else if (t.shape[i] == 0)
      empty = true;
  }
  uint64_t total_bytes;
  if (ok && __builtin_mul_overflow(uint64_t(numel), uint64_t(t.elem_size), &total_bytes)) ok = false;
  for (size_t i = 0; i < t.shape.size() && ok && !empty; ++i) {
    uint64_t span;
    if (__builtin_mul_overflow(uint64_t(t.shape[i] - 1), uint64_t(t.stride[i]), &span) ||
        __builtin_add_overflow(last, span, &last))
      ok = false;
  }
  uint64_t end = 0;
  if (ok && !empty && (__builtin_add_overflow(last, 1, &end) || __builtin_mul_overflow(end, t.elem_size, &end)))
    ok = false;
  if (!ok || (!empty && end > s.bytes))
    bad(op_, "tensor of size ", shape_str(t.shape), ", stride ", shape_str(t.stride), " at offset ", t.offset,
        " is malformed or reaches outside its storage '", s.key, "' of ", s.bytes, " bytes (", t.torch_dtype, ", ",
        t.elem_size, " bytes per element)");
  if (total_bytes > s.bytes && total_bytes > kMaxBroadcastBytes)
    bad(op_, "tensor of size ", shape_str(t.shape), ", stride ", shape_str(t.stride), " repeats its storage '", s.key,
        "' of ", s.bytes, " bytes into ", total_bytes, " bytes; views wider than their storage are read up to ",
        kMaxBroadcastBytes, " bytes");
  Obj* o = make(Kind::Tensor);
  o->i = int64_t(tensors.size());
  tensors.push_back(std::move(t));
  return o;
}

Obj* Unpickler::call(Obj* fn, Obj* args) {
  if (fn->kind != Kind::Global) bad(op_, "REDUCE needs a class or function, found ", kind_name(fn->kind));
  expect(args, Kind::Tuple, "the call's arguments");
  const std::vector<Obj*>& a = args->items;
  switch (fn->callable) {
    case Callable::OrderedDict: {
      Obj* d = make(Kind::Dict);
      if (a.empty()) return d;
      // OrderedDict([(key, value), ...])
      if (a.size() != 1 || (a[0]->kind != Kind::List && a[0]->kind != Kind::Tuple))
        bad(op_, "OrderedDict expects no arguments or a list of pairs");
      count_copies(a[0]->items.size());
      for (Obj* kv : a[0]->items) {
        if (kv->kind != Kind::Tuple || kv->items.size() != 2) bad(op_, "OrderedDict expects (key, value) pairs");
        d->dict.emplace_back(kv->items[0], kv->items[1]);
      }
      return d;
    }
    case Callable::Set: {
      Obj* l = make(Kind::List);
      if (a.size() == 1 && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
        count_copies(a[0]->items.size());
        l->items = a[0]->items;
      } else if (!a.empty()) {
        bad(op_, fn->s, " expects a list");
      }
      return l;
    }
    case Callable::TorchSize: {
      if (a.size() != 1) bad(op_, "torch.Size expects one tuple");
      return expect(a[0], Kind::Tuple, "torch.Size's argument");  // tuples never change: no copy
    }
    case Callable::RebuildTensorV2: return rebuild_tensor(a, false);
    case Callable::RebuildTensorV3: return rebuild_tensor(a, true);
    case Callable::RebuildParameter:
      if (a.empty()) bad(op_, fn->s, " expects the parameter's tensor");
      return expect(a[0], Kind::Tensor, "the parameter's data");
    case Callable::StorageType:
    case Callable::DTypeValue: break;
  }
  bad(op_, "'", fn->s, "' cannot be called");
}

Obj* Unpickler::run() {
  while (true) {
    op_ = pos_;
    const unsigned char op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const unsigned v = *take(1);
        if (v < 2 || v > 5) bad(op_, "pickle protocol ", v, "; expected 2 (torch.save) to 5");
        break;
      }
      case 0x95: take(8); break;  // FRAME: a hint for buffered readers
      case '.': {  // STOP
        if (!marks_.empty() || stack_.size() != 1)
          bad(op_, "STOP with ", stack_.size(), " values and ", marks_.size(), " open marks; expected one value");
        return stack_.back();
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                            // POP
      case '1': pop_mark(); break;                       // POP_MARK
      case '2': stack_.push_back(top()); break;          // DUP
      case 'N': stack_.push_back(&none_); break;  // shared: nothing ever changes these three
      case 0x88: stack_.push_back(&true_); break;  // NEWTRUE
      case 0x89: stack_.push_back(&false_); break;  // NEWFALSE
      case 'J': stack_.push_back(make_int(int64_t(int32_t(uint32_t(le(4)))))); break;  // BININT
      case 'K': stack_.push_back(make_int(int64_t(le(1)))); break;                     // BININT1
      case 'M': stack_.push_back(make_int(int64_t(le(2)))); break;                     // BININT2
      case 0x8a: stack_.push_back(make_int(long_value(le(1)))); break;                 // LONG1
      case 0x8b: {                                                                      // LONG4
        const int64_t len = int64_t(int32_t(uint32_t(le(4))));
        if (len < 0) bad(op_, "LONG4 with negative length ", len);
        stack_.push_back(make_int(long_value(uint64_t(len))));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const unsigned char* b = take(8);
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = u << 8 | b[i];
        Obj* f = make(Kind::Float);
        std::memcpy(&f->f, &u, 8);
        stack_.push_back(f);
        break;
      }
      case 'X': case 0x8c: case 0x8d:             // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
      case 'T': case 'U':                         // BINSTRING, SHORT_BINSTRING (py2 str)
      case 'B': case 'C': case 0x8e: case 0x96: {  // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
        const bool text = op == 'X' || op == 0x8c || op == 0x8d || op == 'T' || op == 'U';
        const int width = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
        const uint64_t len = le(width);
        const unsigned char* b = take(len);
        Obj* s = make(text ? Kind::Str : Kind::Bytes);
        s->s.assign(reinterpret_cast<const char*>(b), size_t(len));
        stack_.push_back(s);
        break;
      }
      case ')': stack_.push_back(make(Kind::Tuple)); break;  // EMPTY_TUPLE
      case 't': {                                             // TUPLE
        Obj* t = make(Kind::Tuple);
        t->items = pop_mark();
        stack_.push_back(t);
        break;
      }
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        Obj* t = make(Kind::Tuple);
        t->items.resize(size_t(op - 0x84));
        for (size_t i = t->items.size(); i-- > 0;) t->items[i] = pop();
        stack_.push_back(t);
        break;
      }
      case ']': stack_.push_back(make(Kind::List)); break;  // EMPTY_LIST
      case 'l': {                                            // LIST
        Obj* l = make(Kind::List);
        l->items = pop_mark();
        stack_.push_back(l);
        break;
      }
      case 0x8f: stack_.push_back(make(Kind::List)); break;  // EMPTY_SET (kept as a list)
      case 'a': {                                             // APPEND
        Obj* v = pop();
        container(Kind::List, "APPEND")->items.push_back(v);
        break;
      }
      case 'e': case 0x90: {  // APPENDS, ADDITEMS
        std::vector<Obj*> items = pop_mark();
        Obj* l = container(Kind::List, op == 'e' ? "APPENDS" : "ADDITEMS");
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      case 0x91: {  // FROZENSET
        Obj* l = make(Kind::List);
        l->items = pop_mark();
        stack_.push_back(l);
        break;
      }
      case '}': stack_.push_back(make(Kind::Dict)); break;  // EMPTY_DICT
      case 'd': case 'u': {                                  // DICT, SETITEMS
        std::vector<Obj*> items = pop_mark();
        if (items.size() % 2)
          bad(op_, op == 'd' ? "DICT" : "SETITEMS", " with an odd number (", items.size(), ") of keys and values");
        Obj* d = op == 'd' ? make(Kind::Dict) : container(Kind::Dict, "SETITEMS");
        for (size_t i = 0; i < items.size(); i += 2) d->dict.emplace_back(items[i], items[i + 1]);
        if (op == 'd') stack_.push_back(d);
        break;
      }
      case 's': {  // SETITEM
        Obj* v = pop();
        Obj* k = pop();
        container(Kind::Dict, "SETITEM")->dict.emplace_back(k, v);
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module = line();
        std::string name = line();
        stack_.push_back(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Obj* name = expect(pop(), Kind::Str, "STACK_GLOBAL's name");
        Obj* module = expect(pop(), Kind::Str, "STACK_GLOBAL's module");
        stack_.push_back(global(module->s, name->s));
        break;
      }
      case 'R': case 0x81: {  // REDUCE, NEWOBJ: both only ever reach whitelisted callables
        Obj* args = pop();
        Obj* fn = pop();
        stack_.push_back(call(fn, args));
        break;
      }
      case 0x92: {  // NEWOBJ_EX
        Obj* kwargs = expect(pop(), Kind::Dict, "NEWOBJ_EX's keyword arguments");
        Obj* args = pop();
        Obj* cls = pop();
        if (!kwargs->dict.empty()) bad(op_, "NEWOBJ_EX with keyword arguments");
        stack_.push_back(call(cls, args));
        break;
      }
      case 'b': {  // BUILD: object state (an OrderedDict's _metadata); not needed, dropped
        pop();
        top();
        break;
      }
      case 'Q': {  // BINPERSID
        Obj* pid = pop();
        stack_.push_back(persistent_load(pid));
        break;
      }
      case 'q': memo_[le(1)] = top(); break;   // BINPUT
      case 'r': memo_[le(4)] = top(); break;   // LONG_BINPUT
      case 0x94: {                             // MEMOIZE
        const uint64_t key = memo_.size();
        memo_[key] = top();
        break;
      }
      case 'h': case 'j': {  // BINGET, LONG_BINGET
        const uint64_t key = le(op == 'h' ? 1 : 4);
        auto it = memo_.find(key);
        if (it == memo_.end()) bad(op_, "memo entry ", key, " is read before it is written");
        stack_.push_back(it->second);
        break;
      }
      default:
        bad(op_, "opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15],
            " is not one torch.save writes (a pickle of protocol 2 holding only data and tensors is expected)");
    }
  }
}

}  // namespace

// ---- TorchFile ---------------------------------------------------------------------------------------

TorchFile::TorchFile(const std::string& path) : path_(path), map_(std::make_unique<MappedFile>(path)) {
  const auto* data = reinterpret_cast<const unsigned char*>(map_->data());
  const std::vector<ZipEntry> entries = read_zip_directory(path, data, map_->size());

  // The archive's entries share one top folder ("<archive>/", named after the file torch.save wrote).
  const ZipEntry* pkl = nullptr;
  std::string archive;
  for (const ZipEntry& e : entries) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos || e.name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    if (pkl) fail(path, ": two pickles ('", pkl->name, "' and '", e.name, "'); expected one <archive>/data.pkl");
    pkl = &e;
    archive = e.name.substr(0, slash);
  }
  if (!pkl) {
    std::string listing;
    for (size_t i = 0; i < entries.size() && i < 5; ++i) {
      if (i) listing += ", ";
      listing += entries[i].name;
    }
    fail(path, ": a zip archive but not a torch.save checkpoint: no '<archive>/data.pkl' entry (entries: ",
         listing.empty() ? "none" : listing, entries.size() > 5 ? ", ..." : "", ")");
  }
  for (const ZipEntry& e : entries) {
    if (e.name == archive + "/constants.pkl")
      fail(path, ": a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save the model's "
                 "state_dict() with torch.save instead");
    if (e.name == archive + "/byteorder" && !(e.size == 6 && std::memcmp(data + e.begin, "little", 6) == 0)) {
      const std::string order(reinterpret_cast<const char*>(data + e.begin), size_t(std::min<uint64_t>(e.size, 16)));
      fail(path, ": entry '", e.name, "' at byte ", e.begin, " says '", order, e.size > 16 ? "...'" : "'",
           "; expected 'little' (tinyvlm reads little-endian checkpoints)");
    }
  }

  Unpickler up(path, archive, data, entries, *pkl);
  Obj* root = up.run();

  // The weights: model_state_dict, or the top-level dict itself.
  auto where = str_cat(path, ": ", archive, "/data.pkl");
  if (root->kind != Kind::Dict)
    fail(where, " holds ", kind_name(root->kind), "; expected a dict (a state_dict, or a checkpoint dict with "
                "model_state_dict)");
  const Obj* state = nullptr;
  for (const auto& [k, v] : root->dict)
    if (k->kind == Kind::Str && k->s == "model_state_dict") state = v;
  if (state) {
    state_key_ = "model_state_dict";
    if (state->kind != Kind::Dict) fail(where, ": model_state_dict is ", kind_name(state->kind), "; expected a dict");
    for (const auto& [k, v] : root->dict) {
      if (k->kind != Kind::Str) continue;
      if (v->kind == Kind::Int) metadata_[k->s] = std::to_string(v->i);
      else if (v->kind == Kind::Float) metadata_[k->s] = number_text(v->f);
      else if (v->kind == Kind::Bool) metadata_[k->s] = v->i ? "true" : "false";
    }
  } else {
    bool any_tensor = false;
    for (const auto& kv : root->dict) any_tensor = any_tensor || kv.second->kind == Kind::Tensor;
    if (!any_tensor) {
      std::string keys;
      for (size_t i = 0; i < root->dict.size() && i < 8; ++i) {
        const Obj* k = root->dict[i].first;
        if (i) keys += ", ";
        keys += k->kind == Kind::Str ? "'" + k->s + "'" : std::string(kind_name(k->kind));
      }
      fail(where, " holds a dict without tensors and without model_state_dict (keys: ", keys.empty() ? "none" : keys,
           root->dict.size() > 8 ? ", ..." : "", "); expected a checkpoint dict or a state_dict");
    }
    state = root;
  }
  for (const auto& [k, v] : state->dict) {
    if (k->kind != Kind::Str || v->kind != Kind::Tensor) {
      ++skipped_;
      continue;
    }
    const TensorRec& t = up.tensors[size_t(v->i)];
    const StorageRec& s = up.storages[t.storage];
    Layout l;
    l.dtype = t.dtype;
    l.torch_dtype = t.torch_dtype;
    l.elem_size = t.elem_size;
    l.shape = t.shape;
    l.stride = t.stride;
    l.offset = t.offset;
    l.storage = s.key;
    l.storage_begin = s.begin;
    l.storage_bytes = s.bytes;
    if (!entries_.count(k->s)) order_.push_back(k->s);
    entries_[k->s] = std::move(l);  // a repeated key: the last value wins, as in Python
  }
}

TorchFile::~TorchFile() = default;

const TorchFile::Layout& TorchFile::layout(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_, ": no tensor named '", name, "'");
  return it->second;
}

Shape TorchFile::shape(const std::string& name) const { return layout(name).shape; }

std::string TorchFile::dtype_name(const std::string& name) const {
  const Layout& l = layout(name);
  return l.dtype == StoredDType::Unsupported ? l.torch_dtype : stored_dtype_name(l.dtype);
}

Tensor TorchFile::get(const std::string& name) const {
  const Layout& l = layout(name);
  const std::string what = str_cat(path_, ": tensor '", name, "'");
  if (l.dtype == StoredDType::Unsupported) fail(what, " has dtype ", l.torch_dtype, ", which tinyvlm cannot load");
  const auto* base = reinterpret_cast<const unsigned char*>(map_->data()) + l.storage_begin;
  const size_t es = l.elem_size, nd = l.shape.size();
  const int64_t n = shape_numel(l.shape);
  // Row-major (dims of size 1 aside): the bytes can be decoded where they are.
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t i = nd; i-- > 0;) {
    if (l.shape[i] != 1 && l.stride[i] != expect) contiguous = false;
    expect *= l.shape[i];
  }
  if (n == 0) return decode_stored(l.dtype, l.shape, base, what);  // its offset may lie anywhere: unused
  if (contiguous) return decode_stored(l.dtype, l.shape, base + uint64_t(l.offset) * es, what);

  // A strided view: gather it, a row of the last dimension at a time.
  std::vector<unsigned char> buf(size_t(n) * es);
  std::vector<int64_t> idx(nd, 0);
  const int64_t inner = l.shape[nd - 1], inner_stride = l.stride[nd - 1];
  unsigned char* out = buf.data();
  for (int64_t done = 0; done < n; done += inner) {
    int64_t at = l.offset;
    for (size_t d = 0; d + 1 < nd; ++d) at += idx[d] * l.stride[d];
    const unsigned char* src = base + uint64_t(at) * es;
    if (inner_stride == 1) {
      std::memcpy(out, src, size_t(inner) * es);
      out += size_t(inner) * es;
    } else {
      for (int64_t j = 0; j < inner; ++j, out += es) std::memcpy(out, src + uint64_t(j * inner_stride) * es, es);
    }
    for (size_t d = nd - 1; d-- > 0;) {  // next index of the outer dimensions
      if (++idx[d] < l.shape[d]) break;
      idx[d] = 0;
    }
  }
  return decode_stored(l.dtype, l.shape, buf.data(), what);
}

}  // namespace tv

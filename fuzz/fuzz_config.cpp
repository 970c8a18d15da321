// TOML configs: parsing and flattening, the key table, the model shape, and the round trip
// through to_toml (what checkpoints store) that must read back to the same values.
#include <cmath>
#include <cstdint>
#include <string>
#include <variant>

#include "core/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    tv::Config c = tv::Config::from_string(text, "fuzz.toml");
    bool has_nan = false;
    for (const auto& [k, v] : c.values())
      if (const double* d = std::get_if<double>(&v); d && std::isnan(*d)) has_nan = true;
    tv::Config back = tv::Config::from_string(c.to_toml(), "fuzz.toml (stored)");
    if (!has_nan && back.values() != c.values()) __builtin_trap();  // a stored config must read back
    try {
      c.check_keys();
    } catch (const tv::Error&) {
    }
    try {
      tv::ModelConfig::from(c);
    } catch (const tv::Error&) {
    }
  } catch (const tv::Error&) {
  }
  return 0;
}

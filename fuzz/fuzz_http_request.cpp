// libFuzzer harness for the server's request-body parser and validator (src/server/api.cpp): any bytes
// as a chat or completions body must either parse or throw ApiError with a 4xx status, never crash,
// hang or throw anything else. The first byte picks the endpoint and whether local images are allowed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace tv::server;
  RequestLimits limits;
  limits.max_image_bytes = 1 << 16;
  limits.max_image_pixels = 1 << 16;
  const Endpoint endpoint = data[0] & 1 ? Endpoint::Completion : Endpoint::Chat;
  if (data[0] & 2) limits.allow_local_images = "/nonexistent-folder";
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    CompletionRequest r = parse_request(body, endpoint, limits);
    if (endpoint == Endpoint::Chat && (r.turns.empty() || !r.turns.back().user)) std::abort();
    if (r.image_bytes.size() > limits.max_image_bytes) std::abort();
  } catch (const ApiError& e) {
    if (e.status < 400 || e.status >= 500) std::abort();
    (void)error_json(e);
  }
  return 0;
}

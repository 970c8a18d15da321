// The OpenAI-compatible HTTP API's requests and answers (docs/server.md): a request body is parsed and
// checked here, without the HTTP layer and without the model, into a plain CompletionRequest; every
// mistake a client can make becomes an ApiError carrying the HTTP status and OpenAI's error JSON.
// The fuzz harness fuzz/fuzz_http_request.cpp drives parse_request directly.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_prompt.h"

namespace tv::server {

// An error for the client: status 400/401/404/413/503, OpenAI's type ("invalid_request_error", ...),
// the offending field (param, may be empty) and the message.
struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;
  ApiError(int status, std::string message, std::string param = "", std::string type = "invalid_request_error",
           std::string code = "");
};
// {"error": {"message", "type", "param", "code"}} (null for an empty param or code).
std::string error_json(const ApiError& e);

// What the server accepts; set from the command line.
struct RequestLimits {
  size_t max_image_bytes = 8u << 20;        // decoded bytes of one image
  int64_t max_image_pixels = 4096 * 4096;   // width * height, read from the header before decoding
  size_t max_messages = 256;
  size_t max_stop = 4;                      // as OpenAI
  size_t max_stop_bytes = 256;
  std::string allow_local_images;           // a folder: file paths under it may be given as image URLs
};

enum class Endpoint { Chat, Completion };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::vector<ChatTurn> turns;   // chat: the conversation, a system message already merged into the first user turn
  std::string prompt;            // completions: the text to continue
  bool has_image = false;
  std::string image_bytes;       // a data: URL's decoded bytes, or a file's under --allow-local-images
                                 // (PNG or JPEG by its header, byte and pixel limits checked)
  int64_t max_tokens = -1;       // -1: as many as the context allows (capped by the server's default)
  double temperature = 1.0;      // OpenAI's default
  double top_p = 1.0;
  int64_t top_k = 0;             // extension, as llama.cpp and vLLM take it
  double repetition_penalty = 1.0;  // extension (multiplicative, HuggingFace's rule)
  double frequency_penalty = 0, presence_penalty = 0;  // OpenAI's additive ones, over the answer's tokens
  uint64_t seed = 0;
  bool has_seed = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;   // stream_options.include_usage
  bool return_token_ids = false;  // extension: choices[0].token_ids
  std::string model;
};

// Parses and checks a request body of `endpoint`. Throws ApiError (never anything else for any input).
CompletionRequest parse_request(std::string_view body, Endpoint endpoint, const RequestLimits& limits);

// Strict standard base64 (padding required, no whitespace); false on any other byte.
bool decode_base64(std::string_view in, std::string& out);

// The width and height a PNG or JPEG header declares; false when the bytes are neither or cut short.
bool image_dimensions(std::string_view bytes, int64_t& width, int64_t& height);

// The real path of `path` when it names a regular file under folder `root` (both made canonical, so
// neither `..` nor a symbolic link leaves it); throws ApiError 400 otherwise.
std::string resolve_local_image(const std::string& path, const std::string& root);

// Constant-time comparison of a client's Authorization header with "Bearer " + key.
bool bearer_matches(std::string_view header, std::string_view key);

}  // namespace tv::server

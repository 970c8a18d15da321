#include "server/api.h"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace tv::server {

using nlohmann::json;

ApiError::ApiError(int status_, std::string message, std::string param_, std::string type_, std::string code_)
    : std::runtime_error(std::move(message)), status(status_), type(std::move(type_)), param(std::move(param_)),
      code(std::move(code_)) {}

std::string error_json(const ApiError& e) {
  json j = {{"error",
             {{"message", e.what()},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

// Deeper nesting than any valid request has is refused before parsing (the JSON library recurses to
// destroy nested values).
void check_nesting(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) bad("", "the request nests deeper than " + std::to_string(max_depth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  return std::string("a") + (v.is_object() || v.is_array() ? "n " : " ") + v.type_name();
}

std::string num(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", x);
  return b;
}

double get_number(const json& v, const std::string& name, double lo, double hi, bool lo_open = false) {
  if (!v.is_number()) bad(name, "'" + name + "' must be a number, got " + type_name(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    bad(name, "'" + name + "' must be in " + (lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + "], got " + v.dump());
  return x;
}

int64_t get_int(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(name, "'" + name + "' must be an integer, got " + type_name(v));
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    bad(name, "'" + name + "' is out of range: " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad(name, "'" + name + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  return x;
}

bool get_bool(const json& v, const std::string& name) {
  if (!v.is_boolean()) bad(name, "'" + name + "' must be a boolean, got " + type_name(v));
  return v.get<bool>();
}

const std::string& get_string(const json& v, const std::string& name) {
  if (!v.is_string()) bad(name, "'" + name + "' must be a string, got " + type_name(v));
  return v.get_ref<const std::string&>();
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return o;
}

void check_image_bytes(const std::string& bytes, const std::string& param, const RequestLimits& lim) {
  int64_t w = 0, h = 0;
  if (!image_dimensions(bytes, w, h)) bad(param, "the image is neither PNG nor JPEG (or its header is cut short)");
  if (w <= 0 || h <= 0) bad(param, "the image declares an empty size");
  if (w > lim.max_image_pixels / h)
    throw ApiError(413, "the image is " + std::to_string(w) + "x" + std::to_string(h) + ", more than the limit of " +
                            std::to_string(lim.max_image_pixels) + " pixels", param);
}

void take_image_url(const std::string& url, const std::string& param, const RequestLimits& lim, CompletionRequest& r) {
  if (r.has_image)
    bad(param, "only one image per conversation: the model sees one image, at the start of the conversation");
  const std::string head = lower(std::string_view(url).substr(0, 16));
  if (starts_with(head, "data:")) {
    const size_t comma = url.find(',');
    if (comma == std::string::npos) bad(param, "the data URL has no ',' before its data");
    const std::string meta = lower(std::string_view(url).substr(5, comma - 5));
    if (!starts_with(meta, "image/"))
      bad(param, "the data URL is not an image (media type '" + meta.substr(0, meta.find(';')) + "')");
    if (meta.size() < 7 || meta.compare(meta.size() - 7, 7, ";base64") != 0)
      bad(param, "the image data URL must be base64 (data:image/png;base64,...)");
    const std::string_view data = std::string_view(url).substr(comma + 1);
    if (data.size() / 4 * 3 > lim.max_image_bytes + 3)
      throw ApiError(413, "the image is larger than the limit of " + std::to_string(lim.max_image_bytes) + " bytes",
                     param);
    std::string bytes;
    if (!decode_base64(data, bytes)) bad(param, "the image data URL holds invalid base64");
    if (bytes.size() > lim.max_image_bytes)
      throw ApiError(413, "the image is larger than the limit of " + std::to_string(lim.max_image_bytes) + " bytes",
                     param);
    check_image_bytes(bytes, param, lim);
    r.image_bytes = std::move(bytes);
    r.has_image = true;
    return;
  }
  if (starts_with(head, "http://") || starts_with(head, "https://") || head.find("://") != std::string::npos) {
    if (!starts_with(head, "file://"))
      bad(param, "remote image URLs are not fetched: send the image as a data:image/...;base64, URL");
  }
  if (lim.allow_local_images.empty())
    bad(param, "image URLs must be data:image/...;base64, URLs (local files are refused unless the server runs with "
               "--allow-local-images DIR)");
  const std::string path = resolve_local_image(starts_with(head, "file://") ? url.substr(7) : url,
                                               lim.allow_local_images);
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) bad(param, "the image file cannot be read");
  if (size > lim.max_image_bytes)
    throw ApiError(413, "the image is larger than the limit of " + std::to_string(lim.max_image_bytes) + " bytes",
                   param);
  std::ifstream f(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!f.read(bytes.data(), std::streamsize(size))) bad(param, "the image file cannot be read");
  check_image_bytes(bytes, param, lim);
  r.image_bytes = std::move(bytes);
  r.has_image = true;
}

// A message's content: a string, or parts of type text (and image_url for user messages).
std::string take_content(const json& content, const std::string& param, bool images_allowed, const RequestLimits& lim,
                         CompletionRequest& r) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  if (!content.is_array()) bad(param, "'" + param + "' must be a string or an array of content parts, got " + type_name(content));
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) bad(p, "'" + p + "' must be an object, got " + type_name(part));
    if (!part.contains("type")) bad(p + ".type", "'" + p + "' has no 'type'");
    const std::string& type = get_string(part["type"], p + ".type");
    if (type == "text") {
      for (const auto& [k, v] : part.items())
        if (k != "type" && k != "text") bad(p + "." + k, "unknown field '" + k + "' in a text part");
      if (!part.contains("text")) bad(p + ".text", "'" + p + "' has no 'text'");
      if (!text.empty()) text += "\n";
      text += get_string(part["text"], p + ".text");
    } else if (type == "image_url") {
      if (!images_allowed) bad(p, "only user messages may hold images");
      for (const auto& [k, v] : part.items())
        if (k != "type" && k != "image_url") bad(p + "." + k, "unknown field '" + k + "' in an image_url part");
      if (!part.contains("image_url")) bad(p + ".image_url", "'" + p + "' has no 'image_url'");
      const json& iu = part["image_url"];
      std::string url;
      if (iu.is_string()) {
        url = iu.get<std::string>();
      } else if (iu.is_object()) {
        for (const auto& [k, v] : iu.items())
          if (k != "url" && k != "detail") bad(p + ".image_url." + k, "unknown field '" + k + "' in image_url");
        if (!iu.contains("url")) bad(p + ".image_url.url", "'" + p + ".image_url' has no 'url'");
        url = get_string(iu["url"], p + ".image_url.url");
        if (iu.contains("detail")) get_string(iu["detail"], p + ".image_url.detail");  // one resolution: ignored
      } else {
        bad(p + ".image_url", "'image_url' must be an object {\"url\": ...}, got " + type_name(iu));
      }
      take_image_url(url, p + ".image_url.url", lim, r);
    } else {
      bad(p + ".type", "content parts of type '" + type + "' are not supported (text, image_url)");
    }
  }
  return text;
}

void parse_messages(const json& msgs, const RequestLimits& lim, CompletionRequest& r) {
  if (!msgs.is_array()) bad("messages", "'messages' must be an array, got " + type_name(msgs));
  if (msgs.empty()) bad("messages", "'messages' is empty");
  if (msgs.size() > lim.max_messages)
    bad("messages", "more than " + std::to_string(lim.max_messages) + " messages");
  std::string system;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(p, "'" + p + "' must be an object, got " + type_name(m));
    for (const auto& [k, v] : m.items())
      if (k != "role" && k != "content" && k != "name") bad(p + "." + k, "unknown field '" + k + "' in a message");
    if (!m.contains("role")) bad(p + ".role", "'" + p + "' has no 'role'");
    const std::string& role = get_string(m["role"], p + ".role");
    if (m.contains("name")) get_string(m["name"], p + ".name");
    if (!m.contains("content")) bad(p + ".content", "'" + p + "' has no 'content'");
    if (role == "system" || role == "developer") {
      if (!r.turns.empty()) bad(p + ".role", "a system message must come before the conversation's first user message");
      const std::string t = take_content(m["content"], p + ".content", false, lim, r);
      system += system.empty() ? t : "\n" + t;
    } else if (role == "user") {
      std::string t = take_content(m["content"], p + ".content", true, lim, r);
      const bool first_user = std::none_of(r.turns.begin(), r.turns.end(), [](const ChatTurn& x) { return x.user; });
      if (first_user && !clean_chat_message(system).empty()) t = system + "\n" + t;
      r.turns.push_back({true, std::move(t)});
    } else if (role == "assistant") {
      if (std::none_of(r.turns.begin(), r.turns.end(), [](const ChatTurn& x) { return x.user; }))
        bad(p + ".role", "the conversation must begin with a user message (after any system message)");
      r.turns.push_back({false, take_content(m["content"], p + ".content", false, lim, r)});
    } else {
      bad(p + ".role", "role '" + role + "' is not supported (system, user, assistant)");
    }
  }
  if (r.turns.empty() || !r.turns.back().user) bad("messages", "the last message must be a user message");
}

}  // namespace

CompletionRequest parse_request(std::string_view body, Endpoint endpoint, const RequestLimits& lim) {
  check_nesting(body, 32);
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) bad("", "the request body is not valid JSON");
  if (!j.is_object()) bad("", "the request body must be a JSON object, got " + type_name(j));
  CompletionRequest r;
  r.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::Chat;
  for (const auto& [k, v] : j.items()) {
    if (k == "messages" && chat) {
      parse_messages(v, lim, r);
    } else if (k == "prompt" && !chat) {
      if (v.is_string()) {
        r.prompt = v.get<std::string>();
      } else if (v.is_array() && v.size() == 1 && v[0].is_string()) {
        r.prompt = v[0].get<std::string>();
      } else {
        bad("prompt", "'prompt' must be a string (or an array of one string), got " + type_name(v));
      }
    } else if (k == "model") {
      r.model = get_string(v, k);
    } else if (k == "max_tokens" || k == "max_completion_tokens") {
      if (!v.is_null()) r.max_tokens = get_int(v, k, 1, INT64_MAX);
    } else if (k == "temperature") {
      if (!v.is_null()) r.temperature = get_number(v, k, 0, 2);
    } else if (k == "top_p") {
      if (!v.is_null()) r.top_p = get_number(v, k, 0, 1, true);
    } else if (k == "top_k") {
      if (!v.is_null()) r.top_k = get_int(v, k, 0, INT32_MAX);
    } else if (k == "repetition_penalty") {
      if (!v.is_null()) r.repetition_penalty = get_number(v, k, 0, 10, true);
    } else if (k == "frequency_penalty") {
      if (!v.is_null()) r.frequency_penalty = get_number(v, k, -2, 2);
    } else if (k == "presence_penalty") {
      if (!v.is_null()) r.presence_penalty = get_number(v, k, -2, 2);
    } else if (k == "seed") {
      if (!v.is_null()) {
        r.seed = uint64_t(get_int(v, k, INT64_MIN, INT64_MAX));
        r.has_seed = true;
      }
    } else if (k == "n" || k == "best_of") {
      if (!v.is_null() && get_int(v, k, 1, INT64_MAX) != 1) bad(k, "only '" + k + "' = 1 is supported");
    } else if (k == "stop") {
      if (v.is_null()) continue;
      std::vector<std::string> stops;
      if (v.is_string()) {
        stops.push_back(v.get<std::string>());
      } else if (v.is_array()) {
        if (v.size() > lim.max_stop) bad(k, "at most " + std::to_string(lim.max_stop) + " stop sequences");
        for (size_t i = 0; i < v.size(); ++i) stops.push_back(get_string(v[i], "stop[" + std::to_string(i) + "]"));
      } else {
        bad(k, "'stop' must be a string or an array of strings, got " + type_name(v));
      }
      for (const std::string& s : stops) {
        if (s.empty()) bad(k, "a stop sequence is empty");
        if (s.size() > lim.max_stop_bytes)
          bad(k, "a stop sequence is longer than " + std::to_string(lim.max_stop_bytes) + " bytes");
      }
      r.stop = std::move(stops);
    } else if (k == "stream") {
      if (!v.is_null()) r.stream = get_bool(v, k);
    } else if (k == "stream_options") {
      if (v.is_null()) continue;
      if (!v.is_object()) bad(k, "'stream_options' must be an object, got " + type_name(v));
      for (const auto& [sk, sv] : v.items()) {
        if (sk != "include_usage") bad(k + "." + sk, "unknown field '" + sk + "' in stream_options");
        r.include_usage = get_bool(sv, k + "." + sk);
      }
    } else if (k == "return_token_ids") {
      r.return_token_ids = get_bool(v, k);
    } else if (k == "user") {
      get_string(v, k);
    } else if (k == "logprobs" || k == "echo") {
      if (!v.is_null() && !(v.is_boolean() && !v.get<bool>()) && !(v.is_number_integer() && v.get<int64_t>() == 0))
        bad(k, "'" + k + "' is not supported");
    } else if (k == "logit_bias") {
      if (!v.is_null() && !(v.is_object() && v.empty())) bad(k, "'logit_bias' is not supported");
    } else if (k == "response_format") {
      if (!v.is_null() && !(v.is_object() && v.size() == 1 && v.contains("type") && v["type"] == "text"))
        bad(k, "only the response_format {\"type\": \"text\"} is supported");
    } else {
      bad(k, "unknown field '" + k + "'");
    }
  }
  if (chat && r.turns.empty()) bad("messages", "the request has no 'messages'");
  if (!chat && !j.contains("prompt")) bad("prompt", "the request has no 'prompt'");
  return r;
}

bool decode_base64(std::string_view in, std::string& out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out.clear();
  if (in.size() % 4 != 0) return false;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + size_t(k)];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;  // data after padding
        v[k] = value(c);
        if (v[k] < 0) return false;
      }
    }
    const uint32_t n = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(char(n >> 16));
    if (pad < 2) out.push_back(char(n >> 8 & 0xff));
    if (pad < 1) out.push_back(char(n & 0xff));
  }
  return true;
}

bool image_dimensions(std::string_view b, int64_t& w, int64_t& h) {
  auto u8 = [&](size_t i) { return uint32_t(uint8_t(b[i])); };
  auto be16 = [&](size_t i) { return u8(i) << 8 | u8(i + 1); };
  auto be32 = [&](size_t i) { return u8(i) << 24 | u8(i + 1) << 16 | u8(i + 2) << 8 | u8(i + 3); };
  if (b.size() >= 24 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8) && b.substr(12, 4) == "IHDR") {
    w = be32(16);
    h = be32(20);
    return true;
  }
  if (b.size() < 4 || u8(0) != 0xff || u8(1) != 0xd8) return false;
  // JPEG: walk the marker segments to the first start-of-frame.
  size_t i = 2;
  while (i + 4 <= b.size()) {
    if (u8(i) != 0xff) return false;
    const uint32_t marker = u8(i + 1);
    if (marker == 0xff) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0x01) {
      i += 2;
      continue;
    }
    const size_t len = be16(i + 2);
    if (len < 2) return false;
    const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (sof) {
      if (i + 9 > b.size()) return false;
      h = be16(i + 5);
      w = be16(i + 7);
      return true;
    }
    if (marker == 0xd9 || marker == 0xda) return false;  // end of image or scan before any frame header
    i += 2 + len;
  }
  return false;
}

std::string resolve_local_image(const std::string& path, const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty() || path.find('\0') != std::string::npos) bad("image_url", "the image path is empty or invalid");
  const fs::path root_real = fs::canonical(root, ec);
  if (ec) throw ApiError(400, "the local image folder is not available", "image_url");
  const fs::path real = fs::canonical(fs::path(path).is_absolute() ? fs::path(path) : root_real / path, ec);
  if (ec) bad("image_url", "no such image file under the allowed folder");
  const std::string r = root_real.string(), p = real.string();
  if (p.size() <= r.size() || p.compare(0, r.size(), r) != 0 || (r != "/" && p[r.size()] != '/'))
    bad("image_url", "the image path is outside the allowed folder");
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) bad("image_url", "the image path is not a regular file");
  return p;
}

bool bearer_matches(std::string_view header, std::string_view key) {
  const std::string expected = "Bearer " + std::string(key);
  // Every byte of the expected value is looked at whatever the header holds, so the time taken says
  // nothing about how much of the key matched.
  unsigned diff = header.size() == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char c = i < header.size() ? header[i] : 0;
    diff |= unsigned(uint8_t(c ^ expected[i]));
  }
  return diff == 0;
}

}  // namespace tv::server

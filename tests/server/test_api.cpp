// The server's request parser and validator (src/server/api.cpp): shapes OpenAI clients send, every
// kind of mistake with its status and field, base64 and image headers, local-image paths, the key
// check, and a bounded random-mutation loop in which nothing but ApiError may come out.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/rng.h"
#include "server/api.h"

using namespace tv::server;

namespace {

std::string png_header(uint32_t w, uint32_t h) {
  std::string s("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  for (uint32_t v : {w, h})
    for (int k = 3; k >= 0; --k) s.push_back(char(v >> (8 * k) & 0xff));
  return s + std::string("\x08\x02\0\0\0", 5);
}

std::string b64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) n |= uint32_t(uint8_t(in[i + 1])) << 8;
    if (i + 2 < in.size()) n |= uint32_t(uint8_t(in[i + 2]));
    o += t[n >> 18 & 63];
    o += t[n >> 12 & 63];
    o += i + 1 < in.size() ? t[n >> 6 & 63] : '=';
    o += i + 2 < in.size() ? t[n & 63] : '=';
  }
  return o;
}

std::string image_body(const std::string& url, const std::string& text = "What is it?") {
  return R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":")" + url +
         R"("}},{"type":"text","text":")" + text + R"("}]}]})";
}

int status_of(const std::string& body, Endpoint e = Endpoint::Chat, const RequestLimits& lim = {}) {
  try {
    parse_request(body, e, lim);
    return 200;
  } catch (const ApiError& err) {
    return err.status;
  }
}

}  // namespace

TEST(ServerApi, ParsesChatWithImageSystemAndOptions) {
  const std::string url = "data:image/png;base64," + b64(png_header(32, 32));
  const std::string body = R"({"model":"m","messages":[{"role":"system","content":"Be brief."},
    {"role":"user","content":[{"type":"image_url","image_url":{"url":")" + url + R"(","detail":"low"}},
    {"type":"text","text":"What?"}]},{"role":"assistant","content":"Red."},{"role":"user","content":"Sure?"}],
    "max_tokens":7,"temperature":0,"top_p":0.5,"seed":-3,"stop":"\n","stream":true,
    "stream_options":{"include_usage":true},"repetition_penalty":1.2,"n":1,"frequency_penalty":0.5,
    "presence_penalty":-1})";
  CompletionRequest r = parse_request(body, Endpoint::Chat, {});
  ASSERT_EQ(r.turns.size(), 3u);
  EXPECT_TRUE(r.turns[0].user);
  EXPECT_EQ(r.turns[0].text, "Be brief.\nWhat?");  // the system message leads the first user turn
  EXPECT_FALSE(r.turns[1].user);
  EXPECT_EQ(r.turns[2].text, "Sure?");
  EXPECT_TRUE(r.has_image);
  EXPECT_EQ(r.image_bytes, png_header(32, 32));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0);
  EXPECT_EQ(r.top_p, 0.5);
  EXPECT_TRUE(r.has_seed);
  EXPECT_EQ(r.seed, uint64_t(int64_t(-3)));
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_DOUBLE_EQ(r.repetition_penalty, 1.2);
  EXPECT_EQ(r.frequency_penalty, 0.5);
  EXPECT_EQ(r.presence_penalty, -1);
  EXPECT_EQ(r.model, "m");
}

TEST(ServerApi, ParsesCompletion) {
  CompletionRequest r = parse_request(R"({"prompt":["Once"],"max_tokens":3})", Endpoint::Completion, {});
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_EQ(status_of(R"({"prompt":5})", Endpoint::Completion), 400);
  EXPECT_EQ(status_of(R"({"max_tokens":5})", Endpoint::Completion), 400);
  EXPECT_EQ(status_of(R"({"prompt":"a","messages":[]})", Endpoint::Completion), 400);  // not a completions field
}

TEST(ServerApi, RefusesEveryKindOfMistake) {
  const std::string ok = R"({"messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(status_of(ok), 200);
  const char* bad[] = {
      "", "{", "[1]", "null", R"({"messages":"hi"})", R"({"messages":[]})", R"({})",
      R"({"messages":[{"role":"user"}]})", R"({"messages":[{"content":"x"}]})",
      R"({"messages":[{"role":"robot","content":"x"}]})", R"({"messages":[{"role":"user","content":5}]})",
      R"({"messages":[{"role":"assistant","content":"x"}]})",
      R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]})",
      R"({"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"},{"role":"user","content":"c"}]})",
      R"({"messages":[{"role":"user","content":"x","extra":1}]})",
      R"({"messages":[{"role":"user","content":[{"type":"audio","audio":1}]}]})",
      R"({"messages":[{"role":"user","content":[{"text":"x"}]}]})",
      R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})",
      R"({"messages":[{"role":"user","content":"x"}],"temperature":3})",
      R"({"messages":[{"role":"user","content":"x"}],"top_p":0})",
      R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})",
      R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2.5})",
      R"({"messages":[{"role":"user","content":"x"}],"max_tokens":18446744073709551615})",
      R"({"messages":[{"role":"user","content":"x"}],"n":2})",
      R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})",
      R"({"messages":[{"role":"user","content":"x"}],"stop":[""]})",
      R"({"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})",
      R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})",
      R"({"messages":[{"role":"user","content":"x"}],"frequency_penalty":2.5})",
      R"({"messages":[{"role":"user","content":"x"}],"presence_penalty":"a"})",
      R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})",
      R"({"messages":[{"role":"user","content":"x"}],"tools":[]})",
      R"({"messages":[{"role":"user","content":"x"}],"temprature":0})",
  };
  for (const char* b : bad) EXPECT_EQ(status_of(b), 400) << b;
  // Deep nesting is refused before parsing.
  EXPECT_EQ(status_of(std::string(100000, '[') + std::string(100000, ']')), 400);
}

TEST(ServerApi, ChecksImages) {
  RequestLimits lim;
  lim.max_image_bytes = 4096;
  lim.max_image_pixels = 64 * 64;
  EXPECT_EQ(status_of(image_body("data:image/png;base64," + b64(png_header(64, 64))), Endpoint::Chat, lim), 200);
  EXPECT_EQ(status_of(image_body("data:image/png;base64," + b64(png_header(65, 64))), Endpoint::Chat, lim), 413);
  EXPECT_EQ(status_of(image_body("data:image/png;base64," + b64(png_header(1u << 31, 1u << 31))), Endpoint::Chat, lim), 413);
  EXPECT_EQ(status_of(image_body("data:image/png;base64," + b64(png_header(0, 5))), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("data:image/png;base64," + b64(png_header(8, 8) + std::string(5000, 'x'))),
                      Endpoint::Chat, lim), 413);
  EXPECT_EQ(status_of(image_body("data:text/plain;base64," + b64("hello")), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("data:image/png," + b64("hello")), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("data:image/png;base64,AAA"), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("data:image/png;base64," + b64("GIF89a........")), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("https://example.com/a.png"), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("/etc/passwd"), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("file:///etc/passwd"), Endpoint::Chat, lim), 400);
  // A second image in one conversation.
  const std::string url = "data:image/png;base64," + b64(png_header(8, 8));
  const std::string two = R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":")" + url +
                          R"("},{"type":"image_url","image_url":")" + url + R"("}]}]})";
  EXPECT_EQ(status_of(two, Endpoint::Chat, lim), 400);
  // An image in an assistant message.
  EXPECT_EQ(status_of(R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"image_url","image_url":")" +
                          url + R"("}]},{"role":"user","content":"b"}]})", Endpoint::Chat, lim), 400);
}

TEST(ServerApi, ReadsImageDimensions) {
  int64_t w = 0, h = 0;
  ASSERT_TRUE(image_dimensions(png_header(300, 200), w, h));
  EXPECT_EQ(w, 300);
  EXPECT_EQ(h, 200);
  // JPEG: SOI, an APP0 segment, SOF0 with height 0x0102 and width 0x0304.
  const std::string jpg("\xff\xd8\xff\xe0\x00\x04\x00\x00\xff\xc0\x00\x11\x08\x01\x02\x03\x04\x03", 18);
  ASSERT_TRUE(image_dimensions(jpg, w, h));
  EXPECT_EQ(h, 0x0102);
  EXPECT_EQ(w, 0x0304);
  EXPECT_FALSE(image_dimensions(jpg.substr(0, 12), w, h));
  EXPECT_FALSE(image_dimensions(png_header(3, 3).substr(0, 20), w, h));
  EXPECT_FALSE(image_dimensions("GIF89a", w, h));
  EXPECT_FALSE(image_dimensions(std::string("\xff\xd8\xff\xda\x00\x02", 6), w, h));
}

TEST(ServerApi, Base64IsStrict) {
  std::string out;
  EXPECT_TRUE(decode_base64("aGVsbG8=", out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(decode_base64("", out));
  EXPECT_EQ(out, "");
  for (const char* bad : {"aGVsbG8", "aGV sbG8=", "a===", "aG=v", "aGVs\nbG8=", "====", "aGVsbG8=aGVs"})
    EXPECT_FALSE(decode_base64(bad, out)) << bad;
  tv::Rng rng(5);
  for (int n = 0; n < 40; ++n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(char(rng.next_u64() & 0xff));
    ASSERT_TRUE(decode_base64(b64(s), out));
    EXPECT_EQ(out, s);
  }
}

TEST(ServerApi, LocalImagesOnlyUnderTheAllowedFolder) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("tv_serve_" + std::to_string(getpid()));
  fs::create_directories(root / "inside");
  { std::ofstream(root / "inside" / "a.png", std::ios::binary) << png_header(8, 8); }
  { std::ofstream(root / "secret.png", std::ios::binary) << png_header(8, 8); }
  fs::create_symlink(root / "secret.png", root / "inside" / "link.png");
  RequestLimits lim;
  lim.allow_local_images = (root / "inside").string();
  EXPECT_EQ(status_of(image_body((root / "inside" / "a.png").string()), Endpoint::Chat, lim), 200);
  EXPECT_EQ(status_of(image_body("a.png"), Endpoint::Chat, lim), 200);
  EXPECT_EQ(status_of(image_body("file://" + (root / "inside" / "a.png").string()), Endpoint::Chat, lim), 200);
  EXPECT_EQ(status_of(image_body("../secret.png"), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("link.png"), Endpoint::Chat, lim), 400);  // a link out of the folder
  EXPECT_EQ(status_of(image_body((root / "secret.png").string()), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("missing.png"), Endpoint::Chat, lim), 400);
  EXPECT_EQ(status_of(image_body("."), Endpoint::Chat, lim), 400);  // the folder itself
  fs::remove_all(root);
}

TEST(ServerApi, BearerCheck) {
  EXPECT_TRUE(bearer_matches("Bearer k3y", "k3y"));
  EXPECT_FALSE(bearer_matches("Bearer k3", "k3y"));
  EXPECT_FALSE(bearer_matches("Bearer k3yy", "k3y"));
  EXPECT_FALSE(bearer_matches("bearer k3y", "k3y"));
  EXPECT_FALSE(bearer_matches("", "k3y"));
  EXPECT_FALSE(bearer_matches("Bearer k4y", "k3y"));
}

TEST(ServerApi, ErrorShape) {
  const std::string j = error_json(ApiError(400, "bad \xff value", "temperature"));
  EXPECT_NE(j.find(R"("param":"temperature")"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("type":"invalid_request_error")"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("code":null)"), std::string::npos) << j;
}

// A bounded random loop: valid bodies with bytes changed, cut, duplicated or swapped for JSON tokens.
// Whatever comes in, the parser returns or throws ApiError with a 4xx status.
TEST(ServerApi, RandomBodiesOnlyGiveApiErrors) {
  const std::string url = "data:image/png;base64," + b64(png_header(16, 16));
  const std::vector<std::string> seeds = {
      image_body(url),
      R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}],"max_tokens":5,"temperature":0.5,"top_p":0.9,"seed":1,"stop":["x","y"],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"prompt":"abc","max_tokens":3,"top_k":2,"repetition_penalty":1.1})",
  };
  const std::vector<std::string> tokens = {"{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1", "1e999", "0",
                                           "\"image_url\"", "\"data:image/png;base64,\"", "\\u0000", "\\ud800", "\xff"};
  tv::Rng rng(77);
  int parsed = 0, refused = 0;
  for (int it = 0; it < 20000; ++it) {
    std::string b = seeds[rng.next_u64() % seeds.size()];
    const int edits = 1 + int(rng.next_u64() % 6);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      const size_t p = rng.next_u64() % b.size();
      switch (rng.next_u64() % 4) {
        case 0: b[p] = char(rng.next_u64() & 0xff); break;
        case 1: b.resize(p); break;
        case 2: b.insert(p, tokens[rng.next_u64() % tokens.size()]); break;
        default: b.insert(p, b.substr(p, rng.next_u64() % 16)); break;
      }
    }
    const Endpoint ep = rng.next_u64() % 2 ? Endpoint::Chat : Endpoint::Completion;
    try {
      parse_request(b, ep, {});
      ++parsed;
    } catch (const ApiError& err) {
      ASSERT_GE(err.status, 400) << b;
      ASSERT_LT(err.status, 500) << b;
      ++refused;
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(parsed, 10);  // the loop reaches past the first checks
}

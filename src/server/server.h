// `tinyvlm serve`: the HTTP side of the OpenAI-compatible server (cpp-httplib). Routes, the API key,
// limits, the OpenAI response and streaming chunk shapes; the model work happens in the Scheduler.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "server/api.h"
#include "server/scheduler.h"

namespace tv::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0: any free port (printed)
  int parallel = 4;           // requests decoding together
  bool batch = true;          // false (--no-batch): the running requests step one after another
  size_t max_queue = 64;      // requests waiting for a slot; beyond: 503
  std::string api_key;        // empty: no check
  size_t max_body_bytes = 16u << 20;
  double timeout_s = 600;     // per request, from arrival to the last token
  int64_t default_max_tokens = 256;  // when a request gives none (capped by the context)
  int http_threads = 0;       // 0: parallel + max_queue + 4
  RequestLimits limits;
};

// Serves until stop() is called from another thread or SIGINT/SIGTERM; on_listening gets the port.
int run_server(const ServedModel& model, const ServerOptions& options,
               const std::function<void(int port)>& on_listening = {});

}  // namespace tv::server

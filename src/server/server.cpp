#include "server/server.h"

// cpp-httplib listens with a backlog of 5: a burst of clients (16 connecting at once while the machine is
// busy and the accept thread waits for a core) overflowed it and some connections were reset. A burst of
// up to the slots plus the queue is what the server is sized for.
#define CPPHTTPLIB_LISTEN_BACKLOG 128
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <ctime>
#include <random>
#include <semaphore>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/image.h"
#include "model/chat_prompt.h"
#include "tokenizer/bpe.h"

namespace tv::server {

using nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_json(e), "application/json");
}

const char* status_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 503: return "server_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

struct Server {
  const ServedModel& model;
  const ServerOptions& opt;
  Metrics metrics;
  std::unique_ptr<Scheduler> scheduler;
  std::atomic<uint64_t> next_id{1};
  std::vector<int32_t> user_cue;  // " USER:": the next turn, which ends an answer as in `chat`
  std::counting_semaphore<> decode_slots{4};

  Server(const ServedModel& m, const ServerOptions& o) : model(m), opt(o) {
    scheduler = std::make_unique<Scheduler>(model, opt.parallel, opt.max_queue, metrics, opt.batch);
    user_cue = model.tokenizer->encode(" USER:");
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (opt.api_key.empty()) return true;
    if (bearer_matches(req.get_header_value("Authorization"), opt.api_key)) return true;
    send_error(res, ApiError(401, "invalid or missing API key (Authorization: Bearer KEY)", "", "authentication_error",
                             "invalid_api_key"));
    return false;
  }

  // Request -> a job ready to queue: the prompt ids, the preprocessed image, the generation options.
  std::shared_ptr<Job> make_job(const CompletionRequest& r) {
    auto job = std::make_shared<Job>();
    const tok::Tokenizer& tk = *model.tokenizer;
    if (r.endpoint == Endpoint::Chat) {
      for (const ChatTurn& t : r.turns) {
        const std::vector<int32_t> ids = encode_chat_turn(tk, t);
        job->prompt.insert(job->prompt.end(), ids.begin(), ids.end());
      }
      const std::vector<int32_t> cue = encode_answer_cue(tk);
      job->prompt.insert(job->prompt.end(), cue.begin(), cue.end());
      job->gen.stop_sequences = {user_cue};
    } else {
      if (model.vlm)
        throw ApiError(400, "this is a vision-language model, trained on conversations about an image: use "
                            "/v1/chat/completions", "prompt");
      job->prompt = tk.encode(r.prompt);
      if (job->prompt.empty()) throw ApiError(400, "the prompt is empty", "prompt");
    }
    int64_t positions = int64_t(job->prompt.size());
    if (r.has_image) {
      if (!model.vlm)
        throw ApiError(400, "this is a text model: it takes no images", "messages");
      job->pixels = Tensor::empty({3, model.image_size, model.image_size});
      // A few decodes at a time: each may hold up to --max-image-pixels x 3 bytes while it runs.
      decode_slots.acquire();
      struct Release {
        std::counting_semaphore<>& s;
        ~Release() { s.release(); }
      } release{decode_slots};
      try {
        preprocess_image_memory(reinterpret_cast<const uint8_t*>(r.image_bytes.data()), r.image_bytes.size(),
                                job->pixels.data<float>(), int(model.image_resize), int(model.image_size), "image_url");
      } catch (const std::exception& e) {
        throw ApiError(400, std::string("cannot decode the image: ") + e.what(), "image_url");
      }
      positions += model.vision_tokens;
    }
    const int64_t room = model.context - positions;
    if (room < 1)
      throw ApiError(400, "the prompt takes " + std::to_string(positions) + " positions: the context of " +
                              std::to_string(model.context) + " leaves no room for an answer", "messages",
                     "invalid_request_error", "context_length_exceeded");
    const int64_t asked = r.max_tokens > 0 ? r.max_tokens : opt.default_max_tokens;
    job->gen.max_new_tokens = std::min(asked, room);  // capped by the context
    job->capacity = positions + job->gen.max_new_tokens;
    job->gen.sampling.temperature = r.temperature;
    job->gen.sampling.top_p = r.top_p;
    job->gen.sampling.top_k = r.top_k;
    job->gen.sampling.repetition_penalty = r.repetition_penalty;
    job->gen.frequency_penalty = r.frequency_penalty;
    job->gen.presence_penalty = r.presence_penalty;
    job->gen.seed = r.has_seed ? r.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull + next_id;
    job->gen.stop_ids = {model.eos};
    job->stop_strings = r.stop;
    try {
      validate_generation_options(job->gen);
    } catch (const std::exception& e) {
      throw ApiError(400, e.what());
    }
    job->submitted = Clock::now();
    job->deadline = job->submitted + std::chrono::milliseconds(int64_t(opt.timeout_s * 1e3));
    return job;
  }

  json usage(const Job& j) const {
    const int64_t c = int64_t(j.ids.size());
    return {{"prompt_tokens", j.prompt_tokens}, {"completion_tokens", c}, {"total_tokens", j.prompt_tokens + c}};
  }

  void completion(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    const char* name = endpoint == Endpoint::Chat ? "chat" : "completions";
    if (!authorized(req, res)) return metrics.count_request(name, res.status);
    std::shared_ptr<Job> job;
    CompletionRequest r;
    try {
      r = parse_request(req.body, endpoint, opt.limits);
      job = make_job(r);
    } catch (const ApiError& e) {
      send_error(res, e);
      return metrics.count_request(name, res.status);
    }
    if (!scheduler->submit(job)) {
      ++metrics.rejected_full;
      res.set_header("Retry-After", "1");
      send_error(res, ApiError(503, "the server is busy: every slot and the queue are full; retry later", "",
                               "server_error", "server_busy"));
      return metrics.count_request(name, res.status);
    }
    const std::string id = (endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
    const int64_t created = int64_t(std::time(nullptr));
    const bool chat = endpoint == Endpoint::Chat;
    const std::string object = chat ? "chat.completion" : "text_completion";
    if (!r.stream) {
      std::unique_lock<std::mutex> lk(job->m);
      job->cv.wait(lk, [&] { return job->finished; });
      if (job->error_status) {
        send_error(res, ApiError(job->error_status, job->error_message, "", status_type(job->error_status),
                                 job->error_code));
        return metrics.count_request(name, res.status);
      }
      json choice = {{"index", 0}, {"finish_reason", job->finish_reason}, {"logprobs", nullptr}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", job->text}};
      } else {
        choice["text"] = job->text;
      }
      if (r.return_token_ids) choice["token_ids"] = job->ids;
      json out = {{"id", id},         {"object", object},          {"created", created},
                  {"model", model.name}, {"choices", json::array({choice})}, {"usage", usage(*job)}};
      res.set_content(dump(out), "application/json");
      return metrics.count_request(name, 200);
    }
    // Server-sent events: one chunk per piece of text, then the finish reason with the usage, then [DONE].
    const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
    res.set_header("Cache-Control", "no-cache");
    metrics.count_request(name, 200);
    auto sent_role = std::make_shared<bool>(false);
    auto done = std::make_shared<bool>(false);
    auto chunk = [=, this](const json& delta_or_text, const json& finish) {
      json c = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
      if (chat) c["delta"] = delta_or_text;
      else c["text"] = delta_or_text;
      return json{{"id", id}, {"object", chunk_object}, {"created", created}, {"model", model.name},
                  {"choices", json::array({c})}};
    };
    auto send = [](httplib::DataSink& sink, const json& j) {
      const std::string s = "data: " + dump(j) + "\n\n";
      return sink.write(s.data(), s.size());
    };
    res.set_chunked_content_provider(
        "text/event-stream",
        [=, this](size_t, httplib::DataSink& sink) {
          if (*done) return false;
          if (chat && !*sent_role) {
            *sent_role = true;
            if (!send(sink, chunk({{"role", "assistant"}, {"content", ""}}, nullptr))) {
              job->cancelled = true;
              return false;
            }
          }
          std::string piece;
          bool finished = false;
          {
            std::unique_lock<std::mutex> lk(job->m);
            job->cv.wait_for(lk, std::chrono::milliseconds(500),
                             [&] { return job->finished || job->text.size() > job->text_taken; });
            piece = job->text.substr(job->text_taken);
            job->text_taken = job->text.size();
            finished = job->finished;
          }
          if (!piece.empty() && !send(sink, chunk(chat ? json{{"content", piece}} : json(piece), nullptr))) {
            job->cancelled = true;
            return false;
          }
          if (!finished) {
            // Nothing new: a comment line, so that a client gone away is noticed at the next step.
            if (piece.empty() && !sink.write(": ping\n\n", 8)) {
              job->cancelled = true;
              return false;
            }
            return true;
          }
          if (job->error_status) {
            json err = json::parse(error_json(ApiError(job->error_status, job->error_message, "",
                                                       status_type(job->error_status), job->error_code)));
            send(sink, err);
          } else {
            json last = chunk(chat ? json::object() : json(""), job->finish_reason);
            last["usage"] = usage(*job);
            send(sink, last);
          }
          const std::string end = "data: [DONE]\n\n";
          sink.write(end.data(), end.size());
          *done = true;
          sink.done();
          return true;
        },
        [job](bool success) {
          if (!success) job->cancelled = true;
        });
  }

  std::string metrics_text() {
    std::ostringstream o;
    o << "# HELP tinyvlm_requests_total HTTP requests answered, by endpoint and status.\n"
         "# TYPE tinyvlm_requests_total counter\n";
    {
      std::lock_guard<std::mutex> lk(metrics.m);
      for (const auto& [key, n] : metrics.requests) {
        const size_t sp = key.find(' ');
        o << "tinyvlm_requests_total{endpoint=\"" << key.substr(0, sp) << "\",status=\"" << key.substr(sp + 1)
          << "\"} " << n << "\n";
      }
    }
    o << "# HELP tinyvlm_prompt_tokens_total Prompt positions prefilled (vision tokens included).\n"
         "# TYPE tinyvlm_prompt_tokens_total counter\ntinyvlm_prompt_tokens_total "
      << metrics.prompt_tokens.load() << "\n"
      << "# HELP tinyvlm_completion_tokens_total Tokens generated.\n"
         "# TYPE tinyvlm_completion_tokens_total counter\ntinyvlm_completion_tokens_total "
      << metrics.completion_tokens.load() << "\n"
      << "# HELP tinyvlm_rejected_total Requests refused with 503 because the queue was full.\n"
         "# TYPE tinyvlm_rejected_total counter\ntinyvlm_rejected_total "
      << metrics.rejected_full.load() << "\n"
      << "# HELP tinyvlm_timeouts_total Requests that ran past the per-request timeout.\n"
         "# TYPE tinyvlm_timeouts_total counter\ntinyvlm_timeouts_total "
      << metrics.timeouts.load() << "\n"
      << "# HELP tinyvlm_cancelled_total Requests whose client went away before the end.\n"
         "# TYPE tinyvlm_cancelled_total counter\ntinyvlm_cancelled_total "
      << metrics.cancelled.load() << "\n"
      << "# HELP tinyvlm_queue_depth Requests waiting for a slot.\n# TYPE tinyvlm_queue_depth gauge\n"
         "tinyvlm_queue_depth "
      << scheduler->queue_depth() << "\n"
      << "# HELP tinyvlm_slots_busy Requests decoding.\n# TYPE tinyvlm_slots_busy gauge\ntinyvlm_slots_busy "
      << scheduler->active() << "\n"
      << "# HELP tinyvlm_slots Requests that may decode together (--parallel).\n# TYPE tinyvlm_slots gauge\n"
         "tinyvlm_slots "
      << scheduler->parallel() << "\n"
      << "# HELP tinyvlm_time_to_first_token_seconds From arrival to the first answer text.\n"
         "# TYPE tinyvlm_time_to_first_token_seconds histogram\n";
    std::lock_guard<std::mutex> lk(metrics.m);
    int64_t cum = 0;
    for (size_t b = 0; b < std::size(Metrics::kTtftBuckets); ++b) {
      cum += metrics.ttft_counts[b];
      o << "tinyvlm_time_to_first_token_seconds_bucket{le=\"" << Metrics::kTtftBuckets[b] << "\"} " << cum << "\n";
    }
    cum += metrics.ttft_counts[std::size(Metrics::kTtftBuckets)];
    o << "tinyvlm_time_to_first_token_seconds_bucket{le=\"+Inf\"} " << cum << "\n"
      << "tinyvlm_time_to_first_token_seconds_sum " << metrics.ttft_sum << "\n"
      << "tinyvlm_time_to_first_token_seconds_count " << metrics.ttft_n << "\n";
    return o.str();
  }
};

}  // namespace

int run_server(const ServedModel& model, const ServerOptions& opt, const std::function<void(int)>& on_listening) {
  // SIGINT and SIGTERM stop the server from a thread of their own; a client gone away must not kill it
  // (SIGPIPE).
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // before any thread starts: they inherit it

  Server s(model, opt);
  httplib::Server http;
  const size_t threads = opt.http_threads > 0 ? size_t(opt.http_threads) : size_t(opt.parallel) + opt.max_queue + 4;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);

  http.Post("/v1/chat/completions",
            [&](const httplib::Request& q, httplib::Response& r) { s.completion(q, r, Endpoint::Chat); });
  http.Post("/v1/completions",
            [&](const httplib::Request& q, httplib::Response& r) { s.completion(q, r, Endpoint::Completion); });
  http.Get("/v1/models", [&](const httplib::Request& q, httplib::Response& r) {
    if (!s.authorized(q, r)) return;
    json m = {{"id", model.name}, {"object", "model"}, {"created", 0}, {"owned_by", "tinyvlm"},
              {"vision", model.vlm != nullptr}, {"context_length", model.context}};
    r.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(dump(json{{"status", "ok"}, {"slots", s.scheduler->parallel()}, {"slots_busy", s.scheduler->active()},
                            {"queue_depth", s.scheduler->queue_depth()}}),
                  "application/json");
  });
  http.Get("/metrics", [&](const httplib::Request& q, httplib::Response& r) {
    if (!s.authorized(q, r)) return;
    r.set_content(s.metrics_text(), "text/plain; version=0.0.4");
  });
  // Whatever httplib answers by itself (404 for an unknown path, 413 for a body over the limit, 400 for
  // a malformed request) gets OpenAI's error shape too.
  http.set_error_handler([](const httplib::Request& q, httplib::Response& r) {
    if (!r.body.empty()) return;
    std::string msg = r.status == 404   ? "no such endpoint: " + q.method + " " + q.path
                      : r.status == 413 ? std::string("the request body is larger than the limit")
                                        : "the request cannot be handled (HTTP " + std::to_string(r.status) + ")";
    send_error(r, ApiError(r.status, msg, "", status_type(r.status)));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string msg = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      msg += std::string(": ") + e.what();
    } catch (...) {
    }
    send_error(r, ApiError(500, msg, "", "server_error"));
  });

  int port = opt.port;
  if (port == 0) {
    port = http.bind_to_any_port(opt.host);
    if (port < 0) throw std::runtime_error("cannot listen on " + opt.host);
  } else if (!http.bind_to_port(opt.host, port)) {
    throw std::runtime_error("cannot listen on " + opt.host + ":" + std::to_string(port) +
                             " (in use, or not an address of this machine)");
  }
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig != 0) http.stop();
  });
  if (on_listening) on_listening(port);
  const bool ok = http.listen_after_bind();
  s.scheduler->shutdown();
  // Wake the stopper thread if the server ended on its own.
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  return ok ? 0 : 1;
}

}  // namespace tv::server
